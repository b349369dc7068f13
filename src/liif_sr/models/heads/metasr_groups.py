"""MetaSR CPU decode grouped by latent: no per-query gather of the latent's ``G`` row.

MetaSR's output is ``pred_r = G_r(p) · t_q + β_r(p)`` (:mod:`liif_sr.models.heads.metasr`): ``G``/``β``
(3·H + 3 values) depend only on the query's one latent ``p``, ``t_q`` (H values) is the weight MLP's hidden
activation of the query's 3 inputs. The per-query form gathers a 3 KB ``G`` row for each query to do 1.5 kFLOP
with it (memory-bound). Here the queries are sorted by latent once per chunk (the permutation is inverted at
the end), laid out as ``U`` latents × ``n_max`` slots (``n_max`` = the most queries of one latent; empty
slots are computed on zero offsets and dropped), and per block of latents::

    T = hidden(inputs)                  (nb, n_max, H)   the weight MLP per query, in cache
    out = T @ G[latents]ᵀ + β           (nb, n_max, out) one batched product, G read once per latent

Each ``G`` row is read once per latent instead of once per query (``n_max ≈ s_h · s_w`` queries share it on
a regular grid of scale ``s``). Not class-deduplicated: on a ``make_coord`` grid the corner offsets of the
latents are not bitwise equal (fp32 rounding of the coordinates differs per latent column): a 65536-query
chunk of 100² → 800² has 1,400 distinct inputs, not 64, so one class GEMM over all latents cannot be exact.

The layout's memory is ``U · n_max`` rows; when that exceeds :data:`DENSITY` × the queries (very uneven
queries per latent) :func:`decode_grouped` returns None and the caller's per-query path runs, so memory
stays bounded by the chunk.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from liif_sr.models.heads.cpu_pool import caller_modes, run_blocks, single_threaded

DENSITY = 2  # at most this many padded slots per query, else the per-query path
BLOCK_ROWS = 1024  # slots per block (the MLP activations of a block stay in cache)


def _hidden(layers: nn.Sequential, first: Tensor, x: Tensor) -> Tensor:
    """The weight MLP's hidden layers on ``x`` = (inputs, 1): the first layer as one product with its bias
    folded in as a column of ``first`` (``addmm`` would copy the bias into the output first), the ReLUs in place."""
    x = x @ first.t()
    for layer in list(layers)[1:]:
        x = x.clamp_min_(0) if isinstance(layer, nn.ReLU) else layer(x)
    return x


def latent_layout(index: Tensor) -> tuple[Tensor, Tensor, Tensor, int]:
    """Queries sorted by latent: ``(order, latents, slot, n_max)`` — query ``order[i]`` sits in padded row
    ``slot[i]`` = ``group · n_max + rank in its group`` of latent ``latents[group]``."""
    order = torch.argsort(index, stable=True)
    latents, counts = torch.unique_consecutive(index.index_select(0, order), return_counts=True)
    n_max = int(counts.max())
    group = torch.repeat_interleave(torch.arange(latents.numel()), counts)
    starts = counts.cumsum(0) - counts
    slot = group * n_max + torch.arange(index.numel()) - starts.index_select(0, group)
    return order, latents, slot, n_max


def decode_grouped(
    table: Tensor, index: Tensor, inp: Tensor, hidden: nn.Sequential, out_dim: int
) -> Tensor | None:
    """``G_r · t + β_r`` (R, out) fp32 grouped by latent, or None when the layout would exceed the budget.

    Args:
        table: (N, ≥ out·H + out) per-latent ``G`` (row-major ``(out, H)``), ``β``, any padding.
        index: (R,) each query's row in ``table``.
        inp: (R, 3) fp32 weight-MLP inputs.
        hidden: the weight MLP without its last layer (inputs → ``t``, H values), a ``Linear`` first.
        out_dim: ``out``.
    """
    r = index.numel()
    if r == 0:
        return None
    with single_threaded():  # chunk-level sort and layout
        order, latents, slot, n_max = latent_layout(index)
        n_u = latents.numel()
        if n_u * n_max > DENSITY * r:
            return None
        padded = inp.new_zeros(n_u * n_max, inp.shape[1] + 1)
        padded[:, -1] = 1.0  # the bias column
        padded[slot, :-1] = inp.index_select(0, order)
    hid = [m for m in hidden if isinstance(m, nn.Linear)][-1].out_features
    lin = hidden[0]
    first = torch.cat([lin.weight, lin.bias.unsqueeze(1)], dim=1).to(table.dtype)
    out = torch.empty(n_u, n_max, out_dim, dtype=torch.float32)
    per_block = max(1, BLOCK_ROWS // n_max)
    modes = caller_modes()

    def work(a: int) -> None:
        with modes():
            b = min(a + per_block, n_u)
            rows = table.index_select(0, latents[a:b])  # (nb, out·H + out)
            t = _hidden(hidden, first, padded[a * n_max : b * n_max].to(rows.dtype)).view(b - a, n_max, hid)
            g = rows[:, : out_dim * hid].view(b - a, out_dim, hid)
            beta = rows[:, out_dim * hid : out_dim * hid + out_dim].unsqueeze(2).expand(b - a, out_dim, n_max)
            # (out, H) @ (H, n_max) per latent: ~25 % faster on a CPU than (n_max, H) @ (H, out)
            out[a:b] = torch.baddbmm(beta, g, t.transpose(1, 2)).transpose(1, 2)

    run_blocks(work, range(0, n_u, per_block))
    with single_threaded():
        result = torch.empty(r, out_dim, dtype=torch.float32)
        result[order] = out.view(-1, out_dim).index_select(0, slot)
    return result
