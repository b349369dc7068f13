"""Query geometry shared by the heads, computed in the global frame and gathered locally (exact tiling).

All functions work on fp32 coordinates bit for bit as the official ``grid_sample(mode="nearest",
align_corners=False)`` lookups and ``make_coord`` centres do (see :meth:`LIIFHead.query_geometry` for why
single ulps matter), so a head decodes a window of the latent grid exactly as the whole grid.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from liif_sr.models.heads.base import HeadState

EPS_SHIFT = 1e-6  # the official ensemble shift eps, also MetaSR's corner eps
CLAMP = 1 - 1e-6  # shifted coordinates are clamped to [-CLAMP, CLAMP]


def const(values: Sequence[float], device: torch.device, dtype: torch.dtype = torch.float32) -> Tensor:
    """``torch.tensor(values, device=device)`` without a host-device synchronisation.

    On CUDA, ``torch.tensor(list, device=...)`` is a blocking copy that waits for the stream every call (the
    training step would stall the CPU each time); fill kernels take the values as arguments instead.
    """
    if device.type == "cpu":
        return torch.tensor(values, dtype=dtype, device=device)
    return torch.cat([torch.full((1,), float(v), dtype=dtype, device=device) for v in values])


def validate_queries(head: str, batch: int, coord: Tensor, cell: Tensor | None, need_cell: bool) -> None:
    """Raise a ValueError unless ``coord`` is (B, Q, 2) with B = ``batch`` and ``cell`` matches it."""
    if coord.dim() != 3 or coord.shape[-1] != 2 or coord.shape[0] != batch:
        raise ValueError(f"{head}: coord must be (B, Q, 2) with B={batch}, got {tuple(coord.shape)}")
    if need_cell:
        if cell is None:
            raise ValueError(f"{head}: needs a cell tensor (B, Q, 2)")
        if cell.shape != coord.shape:
            raise ValueError(f"{head}: cell {tuple(cell.shape)} must match coord {tuple(coord.shape)}")


def validate_latent(head: str, feat: Tensor, in_channels: int) -> None:
    """Raise a ValueError unless ``feat`` is (B, in_channels, h, w)."""
    if feat.dim() != 4 or feat.shape[1] != in_channels:
        raise ValueError(f"{head}: feat must be (B, {in_channels}, h, w), got {tuple(feat.shape)}")


def validate_lr(head: str, feat: Tensor, lr: Tensor | None) -> Tensor:
    """``lr`` must be the normalised LR (B, 3, th, tw) of the latent window ``feat`` (B, C, th, tw)."""
    if lr is None or lr.shape != (feat.shape[0], 3, *feat.shape[-2:]):
        got = None if lr is None else tuple(lr.shape)
        raise ValueError(f"{head}: needs the normalised LR (B, 3, th, tw) of the latent window, got {got}")
    return lr


def ensemble_shifts(
    h: int, w: int, device: torch.device, local_ensemble: bool = True
) -> tuple[Tensor, float]:
    """Ensemble shifts ``(S, 2)`` in global units (order (-1,-1), (-1,+1), (+1,-1), (+1,+1)) and eps."""
    if not local_ensemble:
        return torch.zeros(1, 2, device=device), 0.0
    sy, sx = 1.0 / h, 1.0 / w  # rounded to float32 exactly as torch.tensor([1/h, 1/w]) * (+-1)
    return const([-sy, -sx, -sy, sx, sy, -sx, sy, sx], device).view(4, 2), EPS_SHIFT


def nearest_index(coord: Tensor, h: int, w: int) -> Tensor:
    """Latent ``(row, col)`` that ``grid_sample(nearest, align_corners=False)`` picks at ``coord`` (..., 2)."""
    size = const([h, w], coord.device)
    idx = torch.round(((coord + 1) * size - 1) / 2)
    return torch.minimum(idx.clamp_min(0), size - 1)


def latent_centres(idx: Tensor, h: int, w: int) -> Tensor:
    """Centres of latents ``idx`` (..., 2) as :func:`make_coord` computes them: ``(-1 + r) + 2r * i``."""
    ry, rx = 2.0 / (2 * h), 2.0 / (2 * w)
    return idx * const([2 * ry, 2 * rx], idx.device) + const([-1.0 + ry, -1.0 + rx], idx.device)


def ensemble_geometry(coord: Tensor, h: int, w: int, local_ensemble: bool = True) -> tuple[Tensor, Tensor]:
    """Nearest latent and relative coordinate of each ensemble member.

    Args:
        coord: (B, Q, 2) in [-1, 1], global frame.
        h, w: the whole latent grid's size.

    Returns:
        ``idx`` (B, S, Q, 2) fp32 integral global latent (row, col) and ``rel_coord`` (B, S, Q, 2) fp32
        ``(coord - centre) * (h, w)`` with the unshifted coord (S = 4, or 1 without ensemble).
    """
    shifts, eps = ensemble_shifts(h, w, coord.device, local_ensemble)
    s = shifts.shape[0]
    coord32 = coord.float().unsqueeze(1)
    coord_ = (coord32 + shifts.view(1, s, 1, 2) + eps).clamp(-CLAMP, CLAMP)
    idx = nearest_index(coord_, h, w)
    rel_coord = (coord32 - latent_centres(idx, h, w)) * const([h, w], coord.device)
    return idx, rel_coord


def area_blend(pred: Tensor, rel_coord: Tensor, swap: bool = True) -> Tensor:
    """Area-weighted merge (diagonal swap) of per-member ``pred`` (B, S, Q, out) → (B, Q, out)."""
    area = (rel_coord[..., 0] * rel_coord[..., 1]).abs() + 1e-9  # (B, S, Q), fp32
    tot = area.sum(dim=1, keepdim=True)
    if swap:
        area = area.flip(1)  # 0<->3, 1<->2
    return (pred * (area / tot).unsqueeze(-1)).sum(dim=1)


def local_rows(idx: Tensor, state: HeadState, head: str = "head") -> Tensor:
    """Row of each global latent ``idx`` (B, ..., 2) in the state window's ``(B*th*tw, C)`` channels-last rows.

    Raises:
        RuntimeError: a latent lies outside a proper window (a tile margin smaller than the head's reach).
            A whole-grid state is not checked: indices are clamped to the grid, and the check would be a
            host-device synchronisation (and a graph break under ``torch.compile``) in every training step.
    """
    b = idx.shape[0]
    th, tw = state.size
    ly = idx[..., 0].long() - state.offset[0]
    lx = idx[..., 1].long() - state.offset[1]
    whole = state.size == state.full_size
    if not whole and ly.numel() and (ly.min() < 0 or ly.max() >= th or lx.min() < 0 or lx.max() >= tw):
        raise RuntimeError(f"{head}: a query reads a latent outside the prepared window (margin too small?)")
    base = (torch.arange(b, device=idx.device) * (th * tw)).view(b, *([1] * (idx.dim() - 2)))
    return ly * tw + lx + base


def channels_last_rows(x: Tensor) -> Tensor:
    """(B, C, th, tw) → (B*th*tw, C) rows (a view when ``x`` is channels-last)."""
    b, c, th, tw = x.shape
    return x.permute(0, 2, 3, 1).reshape(b * th * tw, c)
