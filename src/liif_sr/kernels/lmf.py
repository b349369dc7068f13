"""The fused LM-head decode kernel (``csrc/lmf.c``): ctypes binding, one check of its tensors at the entry.

Used by :func:`liif_sr.models.heads.lmf_common.kernel_decode` (the LM heads' CPU inference decode).
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from liif_sr.kernels.build import load
from liif_sr.kernels.parallel import parallel_rows

NAME = "lmf"
WIDTH = 16  # the render width the kernel supports (one AVX-512 register per row)
MAX_OUT = 16
MIN_ROWS = 2048  # queries per thread before the rows are split over threads
_P, _I = ctypes.c_void_p, ctypes.c_int64
_ARGTYPES = [_P, _P, _I, _I, _I, _P, _P, _I, _I, _I, _P, _I, _P, _P, _P, _I, _P, _I, _P]
ERR_WINDOW, ERR_ARGS = 1, 2


def bind(lib: ctypes.CDLL) -> ctypes.CDLL:
    """Declare the kernel's argument and result types on a loaded library (once)."""
    if lib.lmf_decode.argtypes is None:
        lib.lmf_decode.argtypes, lib.lmf_decode.restype = _ARGTYPES, ctypes.c_int
        lib.lmf_simd.argtypes, lib.lmf_simd.restype = [], ctypes.c_int
        lib.lmf_sincos.argtypes, lib.lmf_sincos.restype = [_P, _P, _I, _I], None
    return lib


def _lib() -> ctypes.CDLL | None:
    lib = load(NAME)
    return bind(lib) if lib is not None else None


def available() -> bool:
    """Whether the kernel is built (or can be): see :func:`liif_sr.kernels.load` (and :func:`fast`)."""
    return _lib() is not None


@dataclass(frozen=True)
class Net:
    """The render MLP as the kernel reads it (all fp32, CPU, contiguous).

    Attributes:
        table: (L, stride) per-latent rows ``[1 + s_i | t'_i]`` per layer (biases folded), then for mode 1 the
            latent code ``[coef' | freq']``.
        mode: 0: layer 0's per-query part is ``w_first`` (n_geo, 16) times ``[rel | rel_cell]`` (its
            per-latent part folded into the table); 1 (LM-LTE): the input ``coef' ⊙ [cos πφ, sin πφ]`` with
            ``imphase`` weights ``w_first`` (8, 2) and a full layer 0.
        w_hidden: (depth, 16, 16) transposed hidden weights (layer 0 read in mode 1 only).
        w_out: (16, 16) transposed output weights, zero-padded columns; ``b_out`` (out_dim,).
        lr: (L, out_dim) channels-last LR rows for the bilinear skip, or None.
    """

    table: Tensor
    depth: int
    mode: int
    w_first: Tensor
    n_geo: int
    w_hidden: Tensor
    w_out: Tensor
    b_out: Tensor
    lr: Tensor | None


def _check(name: str, t: Tensor) -> None:
    if t.dtype != torch.float32 or t.device.type != "cpu" or not t.is_contiguous():
        raise ValueError(f"lmf kernel: {name} must be a contiguous fp32 CPU tensor, got {t.dtype} {t.device}")


def decode(
    net: Net, coord: Tensor, cell: Tensor, geom: Sequence[int], out_dim: int, head: str = "LM head"
) -> Tensor:
    """(B, Q, 2) coordinates and cells → (B, Q, out_dim). ``geom``: ``(h, w, off_y, off_x, th, tw, whole)``.

    Raises:
        RuntimeError: a query reads a latent outside a proper window (as ``geometry.local_rows``).
    """
    lib = _lib()
    if lib is None:
        raise RuntimeError("lmf kernel: not available (check liif_sr.kernels.lmf.available() first)")
    tensors = {"coord": coord, "cell": cell, "table": net.table, "w_first": net.w_first}
    tensors |= {"w_hidden": net.w_hidden, "w_out": net.w_out, "b_out": net.b_out}
    if net.lr is not None:
        tensors["lr"] = net.lr
    for name, t in tensors.items():
        _check(name, t)
    b, q = coord.shape[:2]
    out = torch.empty(b, q, out_dim, dtype=torch.float32)
    geo = (ctypes.c_int64 * 7)(*[int(v) for v in geom])
    lr_ptr = net.lr.data_ptr() if net.lr is not None else None
    lr_dim = net.lr.shape[1] if net.lr is not None else 0
    codes: list[int] = []

    def work(start: int, stop: int) -> None:
        codes.append(
            lib.lmf_decode(
                coord.data_ptr(), cell.data_ptr(), q, start, stop, geo, net.table.data_ptr(),
                net.table.shape[1], net.depth, net.mode, net.w_first.data_ptr(), net.n_geo,
                net.w_hidden.data_ptr(), net.w_out.data_ptr(), net.b_out.data_ptr(), out_dim, lr_ptr, lr_dim,
                out.data_ptr(),
            )
        )  # fmt: skip

    parallel_rows(work, b * q, MIN_ROWS)
    if ERR_WINDOW in codes:
        raise RuntimeError(f"{head}: a query reads a latent outside the prepared window (margin too small?)")
    if any(codes):
        raise ValueError(
            f"lmf kernel: unsupported sizes (depth {net.depth}, out_dim {out_dim}, mode {net.mode})"
        )
    return out


def sincos(x: Tensor, cos: bool) -> Tensor:
    """The decode's sin (or cos) of a 1-D fp32 tensor whose length is a multiple of 16 (a test hook)."""
    lib = _lib()
    if lib is None or x.dim() != 1 or x.numel() % 16:
        raise ValueError("lmf kernel: sincos needs the kernel and a 1-D tensor of a multiple of 16 values")
    _check("x", x)
    out = torch.empty_like(x)
    lib.lmf_sincos(x.data_ptr(), out.data_ptr(), x.numel(), int(cos))
    return out


SIMD_NAMES = {2: "AVX-512", 1: "AVX2", 0: "portable C"}


def simd() -> int:
    """The built kernel's path: 2 AVX-512, 1 AVX2 + FMA, 0 portable C (or no kernel)."""
    lib = _lib()
    return int(lib.lmf_simd()) if lib is not None else 0


def fast() -> bool:
    """Whether the kernel is built with a SIMD path (AVX-512 or AVX2): the heads use it only then (the portable
    C path is a reference, slower than their PyTorch path)."""
    return simd() > 0
