"""The LM heads' CPU inference decode through the fused C kernel (:mod:`liif_sr.kernels.lmf`).

:func:`kernel_decode` is the one switch point: it decodes with the kernel when the call is CPU inference in
fp32 (no autograd, no CPU autocast), the render MLP is 16 wide, and the kernel is built with a SIMD path
(AVX-512 or AVX2 + FMA: :func:`liif_sr.kernels.lmf.fast`; its portable C path is slower than PyTorch's;
:func:`liif_sr.kernels.load`; ``LIIF_SR_KERNELS=0`` turns it off); otherwise it returns None and the head
runs its PyTorch fast path. Same function as that path (the same formulas; the blend is applied before the
linear output layer and sums run in another order: ~1e-6 relative).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from liif_sr.kernels import lmf
from liif_sr.models.heads.base import cpu_inference
from liif_sr.models.heads.geometry import channels_last_rows
from liif_sr.models.heads.lmf_common import LMState, ModulatedMLP, layer_parts


def _cpu_autocast() -> bool:
    try:
        return torch.is_autocast_enabled("cpu")
    except TypeError:  # torch < 2.4
        return torch.is_autocast_cpu_enabled()


def usable(render: ModulatedMLP, rows: Tensor, coord: Tensor) -> bool:
    """Whether this decode may run on the kernel (see the module docstring)."""
    return (
        not torch.is_grad_enabled()
        and coord.device.type == "cpu"
        and rows.dtype == torch.float32
        and render.hidden_dim == lmf.WIDTH
        and render.out_dim <= lmf.MAX_OUT
        and not _cpu_autocast()
        and lmf.fast()
    )


def planned(head: nn.Module, render: ModulatedMLP, dtype_bytes: int) -> bool:
    """Whether the head's inference decode will run on the kernel (for its memory estimates): fp32 CPU
    inference (:func:`~.base.cpu_inference`) of a 16-wide render MLP with a SIMD build (:func:`usable`)."""
    return (
        dtype_bytes == 4
        and cpu_inference(head)
        and render.hidden_dim == lmf.WIDTH
        and render.out_dim <= lmf.MAX_OUT
        and lmf.fast()
    )


def query_bytes(out_dim: int) -> int:
    """Working bytes per query of a kernel decode: the fp32 output and fp32 copies of coord and cell (the
    kernel keeps a 16-query block on its stack)."""
    return (out_dim + 4) * 4


def decode_bytes_per_query(head: nn.Module, render: ModulatedMLP, rows: int, dtype_bytes: int) -> int:
    """An LM head's working bytes per query: the kernel's (:func:`query_bytes`) when it will run, else the
    PyTorch chunk form's (4 members × the ``rows``-wide cached rows twice, the render activations, geometry)."""
    if planned(head, render, dtype_bytes):
        return query_bytes(render.out_dim)
    return 4 * (2 * rows + 4 * render.hidden_dim + 8) * dtype_bytes


def packed_table(
    state: LMState, rows: Tensor, render: ModulatedMLP, first: Tensor | None, code: bool
) -> Tensor:
    """(L, 32·depth [+ 32]) rows ``[1 + s_0 | t'_0 | 1 + s_1 | t'_1 | ... (| coef' | freq')]`` of the fast rows
    ``rows`` (:func:`~.lmf_common.layer_parts`), cached in ``state`` beside them (once per cell)."""
    if state.cache.get("kernel.table_of") is rows:
        return state.cache["kernel.table"]
    parts = [t for pair in layer_parts(rows, render, first) for t in pair]
    table = torch.cat(parts + ([rows[:, render.mod_dim :]] if code else []), dim=-1).contiguous()
    state.cache.update({"kernel.table": table, "kernel.table_of": rows})
    return table


def _lr_rows(state: LMState) -> Tensor:
    if state.cache.get("kernel.lr_of") is not state.lr:
        state.cache.update(
            {"kernel.lr": channels_last_rows(state.lr.float()).contiguous(), "kernel.lr_of": state.lr}
        )
    return state.cache["kernel.lr"]


def kernel_decode(
    state: LMState,
    coord: Tensor,
    cell: Tensor,
    render: ModulatedMLP,
    rows: Tensor,
    *,
    head: str,
    w_first: Tensor,
    first: Tensor | None = None,
    lte: bool = False,
    skip: bool = False,
) -> Tensor | None:
    """The whole decode (B, Q, out_dim) on the kernel, or None when it does not apply (:func:`usable`).

    Args:
        rows: the head's cached fast rows ``[1 + s | t | rest]`` (:func:`~.lmf_common.modulations`).
        w_first: LM-LIIF / LM-CiaoSR: layer 0's per-query weights (n_geo, 16) for ``[rel | rel_cell]``
            (``first``: its per-latent part); LM-LTE (``lte``): the ``imphase`` weight (8, 2).
        skip: add the bilinear skip of ``state.lr``.
    """
    if not usable(render, rows, coord):
        return None
    weights = render.transposed_weights(torch.float32)
    w_out = torch.zeros(lmf.WIDTH, lmf.WIDTH)
    w_out[:, : render.out_dim] = weights[-1]
    net = lmf.Net(
        table=packed_table(state, rows, render, first, code=lte),
        depth=render.hidden_depth,
        mode=1 if lte else 0,
        w_first=w_first.detach().float().contiguous(),
        n_geo=0 if lte else w_first.shape[0],
        w_hidden=torch.stack([weights[0] if lte else torch.zeros(lmf.WIDTH, lmf.WIDTH), *weights[1:-1]]),
        w_out=w_out,
        b_out=render.layers[-1].bias.detach().float().contiguous(),
        lr=_lr_rows(state) if skip else None,
    )
    geom = (*state.full_size, *state.offset, *state.size, int(state.size == state.full_size))
    return lmf.decode(net, coord.float().contiguous(), cell.float().contiguous(), geom, render.out_dim, head)
