"""The LTE head's CPU fp32 inference MLP input through the fused C kernel (``kernels/csrc/lte.c``).

For a block of queries, one C pass gathers each member's ``cat(coef, freq)`` row, forms the Fourier phase
``f_y·rel_y + f_x·rel_x + phase(cell)``, its ``cos π·``/``sin π·`` and ``coef ⊙ [cos, sin]`` straight into the
contiguous (4·m, D) MLP input, replacing five PyTorch elementwise passes over block-sized temporaries. The
geometry (rows, relative coordinates, phases, area weights) and the MLP stay those of
:func:`~liif_sr.models.heads.lte_blocks.decode_blocks`. :func:`basis_writer` checks once, at the chunk's entry,
and returns None when the kernel does not apply (not fp32, not CPU, grad, no compiler, disabled).
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable

import torch
from torch import Tensor

from liif_sr import kernels

_I64, _PTR = ctypes.c_int64, ctypes.c_void_p
_BASIS_ARGS = [_PTR, _I64, _I64, _PTR, _PTR, _PTR, _I64, _I64, _PTR]

BasisWriter = Callable[[int, int], Tensor]


def library() -> ctypes.CDLL | None:
    """The compiled kernel with its signature declared, or None (no compiler, disabled, failed build)."""
    lib = kernels.load("lte")
    if lib is not None and lib.lte_basis.argtypes is None:
        lib.lte_basis.argtypes, lib.lte_basis.restype = _BASIS_ARGS, _I64
    return lib


def _dense_cpu_fp32(table: Tensor) -> bool:
    return table.device.type == "cpu" and table.dtype == torch.float32 and table.is_contiguous()


def basis_writer(table: Tensor, index: Tensor, rel: Tensor, phase: Tensor) -> BasisWriter | None:
    """A function ``(start, stop) → (4·(stop-start), D)`` fp32 MLP input of queries ``[start, stop)``, or None.

    Args:
        table: (N, 2D) per-latent rows ``cat(coef, freq)``.
        index: (n, 4) int64 rows of the queries' members.
        rel: (n, 4, 2) fp32 relative coordinates.
        phase: (n, 1, D/2) or (n, D/2) fp32 ``phase(rel_cell)``.
    """
    if torch.is_grad_enabled() and any(t.requires_grad for t in (table, rel, phase)):
        return None
    if not _dense_cpu_fp32(table) or index.device.type != "cpu" or index.dtype != torch.int64:
        return None
    if rel.dtype != torch.float32 or phase.dtype != torch.float32 or rel.device.type != "cpu":
        return None
    n, d = index.shape[0], table.shape[1] // 2
    if table.shape[1] != 2 * d or d < 2 or d % 2 or rel.numel() != 8 * n or phase.numel() != n * (d // 2):
        return None
    lib = library()
    if lib is None:
        return None
    keep = (table, index.contiguous(), rel.contiguous(), phase.contiguous())  # alive while write() is
    head = [keep[0].data_ptr(), table.shape[0], d, *(t.data_ptr() for t in keep[1:])]

    def write(start: int, stop: int) -> Tensor:
        x = torch.empty(4 * (stop - start), d, dtype=torch.float32)
        if lib.lte_basis(*head, start, stop, x.data_ptr()) or not keep:
            raise RuntimeError(
                "LTEHead: a query reads a latent outside the prepared window (margin too small?)"
            )
        return x

    return write
