"""The LTE head's CPU inference kernel: every query's four ensemble members decoded in cache-sized blocks.

The whole-chunk form of the fast path materialises ``(B, 4, Q, 2D)`` gathered rows, ``(B, 4, Q, D/2)``
phases and their cos/sin and ``(B, 4, Q, 256)`` activations per chunk (~0.5 GB each at the default 65536
queries): memory-bound elementwise passes and, as each chunk maps fresh pages, millions of page faults.
Here a block of :data:`BLOCK_QUERIES` queries (4 rows each) runs the whole decode — gather, Fourier
features, ``coef ⊙ [cos, sin]``, the MLP (in-place ReLU), the area-weighted blend — while its data sit in
cache, on the worker threads of :func:`~liif_sr.models.heads.cpu_pool.run_blocks`. The arithmetic is the
fast path's (for fp32, the C kernel of :mod:`~liif_sr.models.heads.lte_kernel` builds the MLP input of a
block in one pass where it is available): the Fourier phase ``f_y·rel_y + f_x·rel_x + phase(cell)`` and its cos/sin in fp32 (also under
bf16 autocast, where only the MLP runs in bf16), the MLP in the table's dtype.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from liif_sr.models.heads.cpu_pool import caller_modes, run_blocks, single_threaded
from liif_sr.models.heads.lte_kernel import basis_writer

BLOCK_QUERIES = 256  # queries per block: 1024 MLP rows, ~1 MiB of gathered rows + activations


def area_weights(rel_coord: Tensor) -> Tensor:
    """(B, 4, Q, 2) relative coordinates → (B, Q, 4) fp32 blend weights (area of the opposite member / total)."""
    area = (rel_coord[..., 0] * rel_coord[..., 1]).abs() + 1e-9  # (B, 4, Q)
    tot = area.sum(dim=1, keepdim=True)
    return (area.flip(1) / tot).permute(0, 2, 1)


def decode_blocks(
    mlp: nn.Sequential, table: Tensor, flat: Tensor, rel_coord: Tensor, phase: Tensor
) -> Tensor:
    """The blended MLP prediction of every query (without the bilinear skip).

    Args:
        mlp: the decoding MLP's layers (``D → … → out``).
        table: (N, 2D) per-latent rows ``cat(coef, freq)`` (``freq`` interleaved (y, x) pairs).
        flat: (B, 4, Q) long, each member's row in ``table``.
        rel_coord: (B, 4, Q, 2) fp32 relative coordinates of the members.
        phase: (B, Q, D/2) fp32 ``phase(rel_cell)``, shared by the members.

    Returns:
        (B, Q, out) fp32.
    """
    b, s, q = flat.shape
    d = table.shape[1] // 2
    n = b * q
    with single_threaded():  # chunk-level elementwise work
        index = flat.permute(0, 2, 1).reshape(n, s)  # (B*Q, 4): a query's members side by side
        rel = rel_coord.permute(0, 2, 1, 3).reshape(n, s, 2).float()
        weight = area_weights(rel_coord).reshape(n, s, 1)
        phase = phase.reshape(n, 1, d // 2).float()
    fused = basis_writer(table, index, rel, phase)  # fp32: the C kernel writes the MLP input (lte_kernel.py)
    layers = list(mlp)
    out = torch.empty(n, layers[-1].out_features, dtype=torch.float32)
    modes = caller_modes()

    def basis(start: int, stop: int) -> Tensor:  # the PyTorch form of lte_kernel's C pass
        m = stop - start
        rows = table.index_select(0, index[start:stop].reshape(-1))  # (4m, 2D)
        freq = rows[:, d:].float().view(m, s, d // 2, 2)
        r = rel[start:stop]  # (m, 4, 2)
        theta = freq[..., 0] * r[..., 0:1]
        theta.addcmul_(freq[..., 1], r[..., 1:2]).add_(phase[start:stop]).mul_(math.pi)  # (m, 4, D/2)
        cos_sin = torch.empty(m, s, d)
        torch.cos(theta, out=cos_sin[..., : d // 2])
        torch.sin(theta, out=cos_sin[..., d // 2 :])
        x = cos_sin.view(m * s, d).mul_(rows[:, :d])
        return x if x.dtype == rows.dtype else x.to(rows.dtype)

    make_input = fused or basis

    def work(start: int) -> None:
        stop = min(start + BLOCK_QUERIES, n)
        with modes():
            x = make_input(start, stop)
            for layer in layers:
                x = x.clamp_min_(0) if isinstance(layer, nn.ReLU) else layer(x)
            out[start:stop] = (x.float().view(stop - start, s, -1) * weight[start:stop]).sum(dim=1)

    run_blocks(work, range(0, n, BLOCK_QUERIES))
    return out.view(b, q, -1)
