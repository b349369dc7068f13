"""MetaSR CPU inference decode through the fused C kernel (``kernels/csrc/metasr.c``).

One pass per query, nothing chunk-sized in between: the corner geometry (bit for bit as
:func:`liif_sr.models.heads.metasr.corner_geometry` and :func:`~liif_sr.models.heads.geometry.local_rows`),
the weight MLP's hidden layer and ReLU (in registers), and ``G_r · t + β_r`` against the latent's table row.
Used for fp32 CPU inference of a one-hidden-layer weight MLP (the official ``[256]``) when the kernel builds
with a vector path (AVX-512 or AVX2 + FMA: :func:`fast_library`); :func:`kernel_decode` returns None otherwise
and the head's torch path runs (the kernel's portable C loops are ~4x slower than that path). The C code is single-threaded;
ctypes releases the GIL, so with several torch threads the queries are split over :func:`run_blocks`.
"""

from __future__ import annotations

import ctypes
import functools
import sys

import torch
from torch import Tensor, nn

from liif_sr import kernels
from liif_sr.models.heads.base import HeadState, cpu_inference

MIN_PER_THREAD = 4096  # fewer queries per thread than this run in the calling thread
_I64, _PTR = ctypes.c_int64, ctypes.c_void_p
_DECODE_ARGS = [_PTR, _PTR, *[_I64] * 8, _PTR, _I64, _PTR, _PTR, _I64, _I64, _PTR, _I64, _I64]
_GEOMETRY_ARGS = [_PTR, _PTR, *[_I64] * 8, _PTR, _PTR, _I64, _I64]
SIMD_NAMES = ("portable C", "AVX2", "AVX-512")  # metasr_simd() -> the build's path


def library() -> ctypes.CDLL | None:
    """The compiled kernel with its signatures declared, or None (no compiler, disabled, failed build)."""
    lib = kernels.load("metasr")
    if lib is not None and lib.metasr_decode.argtypes is None:
        lib.metasr_decode.argtypes, lib.metasr_decode.restype = _DECODE_ARGS, _I64
        lib.metasr_geometry.argtypes, lib.metasr_geometry.restype = _GEOMETRY_ARGS, _I64
        lib.metasr_simd.argtypes, lib.metasr_simd.restype = [], _I64
    return lib


def fast_library() -> ctypes.CDLL | None:
    """:func:`library` when its build has a vector path (AVX-512, or AVX2 + FMA), else None: the portable C
    loops decode at ~0.03 of the FLOP floor against the torch path's ~0.12 (``decode_floor.py``, 128² → 256²)."""
    lib = library()
    return lib if lib is not None and lib.metasr_simd() > 0 else None


def planned(head: nn.Module, hidden: nn.Sequential, dtype_bytes: int) -> bool:
    """Whether the head's inference decode will run on the kernel (for its memory estimates): fp32 CPU
    inference (:func:`~.base.cpu_inference`) of a ``Linear(3, H), ReLU`` weight MLP with a vector build."""
    fused = len(hidden) == 2 and isinstance(hidden[0], nn.Linear) and isinstance(hidden[1], nn.ReLU)
    return dtype_bytes == 4 and fused and cpu_inference(head) and fast_library() is not None


HUGE_PAGE = 2 << 20  # bytes of a transparent huge page (x86-64, arm64 with 4 KiB base pages)
MIN_HUGE_BYTES = 8 << 20  # smaller tables stay on ordinary pages (their TLB reach suffices)
_MADV_HUGEPAGE = 14


@functools.cache
def _madvise():  # libc's madvise with its signature, or None (not Linux, or no such symbol)
    if not sys.platform.startswith("linux"):
        return None
    try:
        madvise = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return None
    madvise.argtypes, madvise.restype = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int], ctypes.c_int
    return madvise


def _madvise_huge(address: int, length: int) -> bool:
    """``madvise(MADV_HUGEPAGE)`` on Linux; False where it is unavailable or refused."""
    madvise = _madvise()
    return madvise is not None and madvise(address, length, _MADV_HUGEPAGE) == 0


def table_buffer(numel: int) -> Tensor:
    """An uninitialised (numel,) fp32 CPU buffer for the kernel's table, on huge pages where it can be.

    A table of at least ``MIN_HUGE_BYTES`` starts on a 2 MiB boundary and is advised for transparent huge pages
    (``MADV_HUGEPAGE``, Linux) before anything is written to it, so the kernel's stream through it crosses a
    page every 2 MiB instead of every 4 KiB (fewer TLB misses; the x2 decode ~5-10 % faster, BENCHMARKS.md).
    Elsewhere, or when the system refuses, the buffer is ordinary memory; the values are the same either way.
    """
    if numel * 4 < MIN_HUGE_BYTES or not sys.platform.startswith("linux"):
        return torch.empty(numel, dtype=torch.float32)
    base = torch.empty(numel + HUGE_PAGE // 4, dtype=torch.float32)
    start = -(-base.data_ptr() // HUGE_PAGE) * HUGE_PAGE
    offset = (start - base.data_ptr()) // 4
    _madvise_huge(start, numel * 4 // HUGE_PAGE * HUGE_PAGE)
    return base[offset : offset + numel]  # a view: keeps ``base`` alive


def query_bytes(out_dim: int) -> int:
    """Working bytes per query of a kernel decode: the fp32 output and fp32 copies of coord and cell."""
    return (out_dim + 4) * 4


def _cpu_fp32(*tensors: Tensor) -> bool:  # the kernel reads them as dense fp32 arrays
    return all(t.device.type == "cpu" and t.dtype == torch.float32 and t.is_contiguous() for t in tensors)


def _autocast_cpu() -> bool:
    try:
        return torch.is_autocast_enabled("cpu")
    except TypeError:  # torch < 2.4
        return torch.is_autocast_cpu_enabled()


def _window(state: HeadState) -> list[int]:
    (fh, fw), (oy, ox), (th, tw) = state.full_size, state.offset, state.size
    return [fh, fw, oy, ox, th, tw, int(state.size == state.full_size)]


NO_MEMORY = -(2**63)  # metasr_decode: its working arrays could not be allocated (nothing written)


def _check(code: int, head: str) -> None:
    if code == NO_MEMORY:
        raise MemoryError(f"{head}: the C kernel could not allocate its working arrays")
    if code:
        raise RuntimeError(f"{head}: a query reads a latent outside the prepared window (margin too small?)")


def kernel_decode(
    state: HeadState, table: Tensor, coord: Tensor, cell: Tensor, hidden: nn.Sequential, out_dim: int
) -> Tensor | None:
    """(B, Q, out_dim) fp32 through the kernel, or None when it does not apply (the caller's path runs).

    Args:
        state: the prepared window (offset, size, full size).
        table: (B·th·tw, out·H + out) per-latent ``G`` (row-major ``(out, H)``) then ``β``.
        coord, cell: (B, Q, 2) global frame.
        hidden: the weight MLP without its last layer; only ``Linear(3, H), ReLU`` is fused.
        out_dim: ``out``.
    """
    if len(hidden) != 2 or not isinstance(hidden[0], nn.Linear) or not isinstance(hidden[1], nn.ReLU):
        return None
    lin = hidden[0]
    if lin.in_features != 3 or lin.bias is None or _autocast_cpu():
        return None
    tensors = (table, lin.weight, lin.bias, coord, cell)
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):  # autograd: the torch path
        return None
    if not _cpu_fp32(table, lin.weight, lin.bias) or coord.device.type != "cpu":
        return None
    lib = fast_library()
    if lib is None:
        return None
    coord, cell = coord.float().contiguous(), cell.float().contiguous()
    b, q = coord.shape[:2]
    hid = lin.out_features
    w1t = lin.weight.t().contiguous()
    out = torch.empty(b, q, out_dim, dtype=torch.float32)
    head = [coord.data_ptr(), cell.data_ptr(), q, *_window(state), table.data_ptr(), table.shape[1]]
    tail = [w1t.data_ptr(), lin.bias.data_ptr(), hid, out_dim, out.data_ptr()]
    codes: list[int] = []

    def work(start: int, stop: int) -> None:
        codes.append(lib.metasr_decode(*head, *tail, start, stop))

    kernels.parallel_rows(work, b * q, MIN_PER_THREAD)
    _check(min(codes, default=0), "MetaSRHead")
    return out


def kernel_geometry(state: HeadState, coord: Tensor, cell: Tensor) -> tuple[Tensor, Tensor]:
    """The kernel's geometry alone: (B·Q,) int64 table rows and (B·Q, 3) MLP inputs (for tests)."""
    lib = library()
    if lib is None:
        raise RuntimeError("the metasr kernel is not available")
    coord, cell = coord.float().contiguous(), cell.float().contiguous()
    b, q = coord.shape[:2]
    rows = torch.empty(b * q, dtype=torch.int64)
    inp = torch.empty(b * q, 3, dtype=torch.float32)
    args = [coord.data_ptr(), cell.data_ptr(), q, *_window(state), rows.data_ptr(), inp.data_ptr()]
    _check(lib.metasr_geometry(*args, 0, b * q), "MetaSRHead")
    return rows, inp
