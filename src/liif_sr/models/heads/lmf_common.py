"""What the latent modulated function heads share (LMF, He et al., CVPR 2024: LM-LIIF, LM-LTE, LM-CiaoSR).

An LM head runs its heavy *latent MLP* (hypernet) once per latent pixel; it gives per-layer scale and shift
modulations ``[s_1..s_D | t_1..t_D]`` (each ``hidden_dim`` wide) and a head-specific latent code. Each
output pixel is decoded by a tiny :class:`ModulatedMLP` whose hidden layer ``i`` computes
``x ← ReLU((W_i x + b_i) ⊙ (1 + s_i) + t_i)`` with the modulations of the member's nearest latent, in
LIIF's local ensemble (4 shifted members, area weights with the diagonal swap).

The latent MLP's input includes the *cell* (the official code takes it from the output grid's cells,
``cell[:, :h*w]``), so the modulations are computed lazily in ``decode``, once per distinct cell, and cached
in the state (:func:`modulations`): ``prepare`` keeps the cell-free latent input (:class:`LMState`).
Each batch item uses its own cell (the cell of its first query; the render loop and training give every
query of an item the same cell): training batches with per-item random scales work.

The module's pieces (used by :mod:`.lmliif`, :mod:`.lmlte` and LM-CiaoSR):

* :class:`ModulatedMLP` — the render MLP (official ``lmmlp``; parameters ``layers.{0,2,...}``).
* :class:`LMState` — the prepared window: ``latent`` (cell-free hypernet input), ``lr``, the cache.
* :func:`item_cells` — each batch item's cell (B, 2) from (B, Q, 2) cells (checked uniform outside training).
* :func:`modulations` — the cached per-latent rows (B*th*tw, M) for a cell: ``compute(state, rel_cell)``;
  :func:`fast_rows` turns ``[s | t | ...]`` into ``[1 + s | t | ...]`` (then :func:`layer_tables`).
* :func:`layer_tables` — per-layer ``[1 + s_i | t'_i]`` tables (biases folded) for :meth:`ModulatedMLP.forward_tables`.
* :func:`member_rows` — fast path: the 4 members' relative coordinates and row indices (global frame, windows).
* :func:`decode_pieces` — the fast decode over cache-sized pieces of queries (CPU).
* :func:`reference_members` — reference path: the same by ``grid_sample`` (official steps, whole grid).
* :func:`blend` — area-weighted merge of the members' predictions.

CPU fp32 inference runs the whole fast decode in one fused C kernel instead (:mod:`.lmf_kernel`, the heads'
one switch: :func:`~.lmf_kernel.kernel_decode`); training, autograd, GPU and autocast use the functions above.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from liif_sr.coords import make_coord
from liif_sr.models.heads.base import HeadState
from liif_sr.models.heads.geometry import (
    area_blend,
    const,
    ensemble_geometry,
    ensemble_shifts,
    local_rows,
)


class ModulatedMLP(nn.Module):
    """The render MLP: ``hidden_depth`` modulated hidden layers of ``hidden_dim``, an unmodulated output layer.

    Parameters ``layers.{0,2,...}`` as the official ``lmmlp`` (``Linear``, ``ReLU``, ..., ``Linear``).
    """

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int, hidden_depth: int) -> None:
        super().__init__()
        if hidden_depth < 1 or hidden_dim < 1:
            raise ValueError(
                f"ModulatedMLP: hidden_dim and hidden_depth must be >= 1, got {hidden_dim}, {hidden_depth}"
            )
        layers: list[nn.Module] = []
        last = in_dim
        for _ in range(hidden_depth):
            layers += [nn.Linear(last, hidden_dim), nn.ReLU()]
            last = hidden_dim
        layers.append(nn.Linear(last, out_dim))
        self.layers = nn.Sequential(*layers)
        self.in_dim, self.out_dim, self.hidden_dim, self.hidden_depth = (
            in_dim,
            out_dim,
            hidden_dim,
            hidden_depth,
        )

    @property
    def mod_dim(self) -> int:
        """Modulation channels per latent: ``2 * hidden_dim * hidden_depth`` (scales, then shifts)."""
        return 2 * self.hidden_dim * self.hidden_depth

    def forward(self, x: Tensor, mods: Tensor) -> Tensor:
        """``x`` (..., in_dim) and ``mods`` (..., ≥ mod_dim; extra trailing channels ignored) → (..., out_dim)."""
        shape = x.shape[:-1]
        x = x.reshape(-1, x.shape[-1])
        mods = mods.reshape(-1, mods.shape[-1])
        hd, half = self.hidden_dim, self.hidden_dim * self.hidden_depth
        for i in range(self.hidden_depth):
            lin = self.layers[2 * i]
            x = lin(x)
            scale = mods[:, i * hd : (i + 1) * hd]
            shift = mods[:, half + i * hd : half + (i + 1) * hd]
            x = torch.relu(x * (scale + 1.0) + shift)
        return self.layers[-1](x).reshape(*shape, -1)

    def forward_tables(self, x0: Tensor, tables: list[Tensor], flat: Tensor, weights: list[Tensor]) -> Tensor:
        """The modulated layers from layer 0's bias-free per-query linear part ``x0`` (N, hidden_dim) and the
        per-layer tables of :func:`layer_tables` (``flat``: the (N,) table row of each member). Layer ``i``
        gathers its ``[1 + s_i | t'_i]`` just before its use (a contiguous, cache-resident (N, 2·hidden_dim)
        piece instead of one (N, M) row per member); the bias (for layer 0 also a per-latent part) is folded
        into ``t'_i``, so each layer is a plain ``mm``, one fused multiply-add and an in-place ReLU (the
        function of :meth:`forward`, rounded in another order). ``weights``: :meth:`transposed_weights`."""
        hd = self.hidden_dim
        x = x0
        for i in range(self.hidden_depth):
            if i:
                x = torch.mm(x, weights[i])
            mods = tables[i].index_select(0, flat)
            x = torch.addcmul(mods[:, hd:], x, mods[:, :hd]).relu_()
        return torch.addmm(self.layers[-1].bias.to(x.dtype), x, weights[-1])

    def transposed_weights(self, dtype: torch.dtype) -> list[Tensor]:
        """Every linear layer's weight transposed, contiguous, in ``dtype`` (index i: layer i; -1: output)."""
        return [m.weight.t().to(dtype).contiguous() for m in self.layers if isinstance(m, nn.Linear)]


@dataclass
class LMState(HeadState):
    """A prepared latent window of an LM head.

    Attributes:
        latent: (B, L, th, tw) the cell-free per-latent input of the latent MLP (head-specific).
        lr: (B, 3, th, tw) normalised LR of the window (heads with a bilinear skip), or None.
        extra: head-specific per-latent maps (e.g. LM-CiaoSR's attention), by name.
        cache: the modulation rows of the last cell (:func:`modulations`); filled by ``decode``.
    """

    latent: Tensor
    lr: Tensor | None = None
    extra: dict[str, Tensor] = field(default_factory=dict)
    cache: dict[str, Tensor] = field(default_factory=dict)


def item_cells(cell: Tensor, check: bool) -> Tensor:
    """Each batch item's cell (B, 2): its first query's; ``check`` → ValueError unless all queries share it.

    The check is a host-device synchronisation, so training (per-item uniform cells by construction) skips it.
    """
    first = cell[:, 0, :]
    if check and not bool((cell == first.unsqueeze(1)).all()):
        raise ValueError(
            "latent modulated heads need one cell per image (the latent MLP runs once per image at its scale); "
            "got different cells within an image"
        )
    return first


def modulations(
    state: LMState,
    cell: Tensor,
    full_size: tuple[int, int],
    compute: Callable[[LMState, Tensor], Tensor],
    check: bool,
    tag: str = "rows",
) -> Tensor:
    """The per-latent rows (B*th*tw, M) of the latent MLP at each item's cell, cached in ``state``.

    Args:
        cell: (B, Q, 2) query cells; each item's first cell (:func:`item_cells`) times ``full_size`` is the
            ``rel_cell`` (B, 2) given to ``compute(state, rel_cell)``, which returns (B, th, tw, M) or rows.
        check: check uniform cells and reuse the cache when the cell is unchanged (inference); without it
            (training) the rows are computed afresh, with no host-device synchronisation.
        tag: the cache entry (a head's fast and reference paths keep different rows).
    """
    first = item_cells(cell, check).float()
    rel_cell = first * const(list(full_size), cell.device)
    cached = state.cache.get(tag + ".cell")
    if check and cached is not None and cached.shape == first.shape and torch.equal(cached, first):
        return state.cache[tag]
    rows = compute(state, rel_cell)
    rows = rows.reshape(-1, rows.shape[-1])
    if check:
        state.cache.update({tag: rows, tag + ".cell": first})
    return rows


def fast_rows(rows: Tensor, render: ModulatedMLP) -> Tensor:
    """Rows ``[s | t | rest]`` → ``[1 + s | t | rest]`` (contiguous), the fast path's cached rows."""
    half = render.mod_dim // 2
    return torch.cat([rows[:, :half] + 1.0, rows[:, half:]], dim=-1).contiguous()


def layer_tables(
    state: LMState, rows: Tensor, render: ModulatedMLP, first: Tensor | None = None, tag: str = "fast"
) -> list[Tensor]:
    """Fast rows ``[1 + s | t | rest]`` (L, M) → ``hidden_depth`` contiguous (L, 2·hidden_dim) tables
    ``[1 + s_i | c_i (1 + s_i) + t_i]`` with each layer's bias ``c_i = b_i`` folded in (``(W x + c)(1 + s) +
    t = (W x)(1 + s) + (c (1 + s) + t)``), then the contiguous ``rest`` (L, M - mod_dim), for
    :meth:`ModulatedMLP.forward_tables`. ``first`` (L, hidden_dim): layer 0's per-latent part (e.g. ``W_z z +
    b_0`` of a latent code) used as ``c_0`` instead of ``b_0``. Cached in ``state`` beside the rows they come
    from (built once per cell, not per decode call)."""
    if state.cache.get(tag + ".tables_of") is rows:
        return state.cache[tag + ".tables"]
    tables = [torch.cat(parts, dim=-1) for parts in layer_parts(rows, render, first)]
    tables.append(rows[:, render.mod_dim :].contiguous())
    if state.cache.get(tag) is rows:  # cached rows (inference): keep their tables beside them
        state.cache.update({tag + ".tables": tables, tag + ".tables_of": rows})
    return tables


def layer_parts(
    rows: Tensor, render: ModulatedMLP, first: Tensor | None = None
) -> list[tuple[Tensor, Tensor]]:
    """Per modulated layer ``i`` of fast rows ``[1 + s | t | rest]``: ``(1 + s_i, c_i (1 + s_i) + t_i)`` with
    ``c_i = b_i`` (``first`` for layer 0 when given), the parts of :func:`layer_tables` and the kernel's table."""
    hd, half = render.hidden_dim, render.mod_dim // 2
    parts = []
    for i in range(render.hidden_depth):
        scale, shift = rows[:, i * hd : (i + 1) * hd], rows[:, half + i * hd : half + (i + 1) * hd]
        bias = first if i == 0 and first is not None else render.layers[2 * i].bias.to(rows.dtype)
        parts.append((scale, torch.addcmul(shift, scale, bias)))
    return parts


def member_rows(state: HeadState, coord: Tensor, head: str) -> tuple[Tensor, Tensor]:
    """The local ensemble's rows without gathering: ``rel_coord`` (B, 4, Q, 2) fp32 and ``flat`` (B·4·Q,), the
    row (in the window's (B·th·tw, ·) rows) of each member, in (B, 4, Q) order ."""
    h, w = state.full_size
    idx, rel_coord = ensemble_geometry(coord, h, w)
    return rel_coord, local_rows(idx, state, head).reshape(-1)


def piece_size(device: torch.device, q: int) -> int:
    """Queries per piece of the fast decode: on CPU 2048 (8192 member rows of 16 channels stay in cache,
    ~6x faster than whole chunks); elsewhere the whole chunk (one kernel per op)."""
    return 2048 if device.type == "cpu" else max(q, 1)


def decode_pieces(
    coord: Tensor, cell: Tensor, out_dim: int, fn: Callable[[Tensor, Tensor], Tensor]
) -> Tensor:
    """``fn(coord_piece, cell_piece)`` → (B, q, out_dim) over pieces of the queries (:func:`piece_size`),
    joined into (B, Q, out_dim) fp32."""
    b, q = coord.shape[:2]
    step = piece_size(coord.device, q)
    if step >= q:
        return fn(coord, cell)
    out = torch.empty(b, q, out_dim, device=coord.device, dtype=torch.float32)
    for start in range(0, q, step):
        out[:, start : start + step] = fn(coord[:, start : start + step], cell[:, start : start + step])
    return out


def reference_members(maps: Tensor, coord: Tensor) -> list[tuple[Tensor, Tensor]]:
    """The official steps on the whole grid: for each member, ``grid_sample(nearest)`` of ``maps``
    (B, M, h, w) and of the latent centres at the shifted, clamped coordinate → ``(rows (B, Q, M),
    rel_coord (B, Q, 2))``."""
    b, _, h, w = maps.shape
    shifts, eps = ensemble_shifts(h, w, maps.device)
    feat_coord = make_coord((h, w), flatten=False, device=maps.device).permute(2, 0, 1)
    feat_coord = feat_coord.unsqueeze(0).expand(b, 2, h, w)
    out = []
    for shift in shifts:
        grid = (coord + shift + eps).clamp(-1 + 1e-6, 1 - 1e-6).flip(-1).unsqueeze(1)
        q_rows, q_coord = (
            F.grid_sample(x, grid, mode="nearest", align_corners=False)[:, :, 0, :].permute(0, 2, 1)
            for x in (maps, feat_coord.to(maps.dtype))
        )
        out.append((q_rows, (coord - q_coord) * const([h, w], maps.device, maps.dtype)))
    return out


def blend(pred: Tensor, rel_coord: Tensor) -> Tensor:
    """Area-weighted merge (diagonal swap) of the members' ``pred`` (B, 4, Q, out) → (B, Q, out)."""
    return area_blend(pred, rel_coord)


def rows_to_map(rows: Tensor, b: int, size: tuple[int, int]) -> Tensor:
    """(B*th*tw, M) rows → (B, M, th, tw) maps (for the reference path's ``grid_sample``)."""
    return rows.view(b, size[0], size[1], -1).permute(0, 3, 1, 2)
