"""The LTE head (Lee & Jin, CVPR 2022): a local texture estimator in front of the LIIF-style decoder.

Per latent: amplitude ``coef = Conv3x3(C → D)`` and frequency ``freq = Conv3x3(C → D)`` maps (D = 256).
Per query and ensemble member (the same 4-shift nearest lookup, relative coordinate and area weights with
the diagonal swap as LIIF): the D frequency channels are D/2 interleaved 2-D frequencies
``θ_k = f[2k] · rel_row + f[2k+1] · rel_col + phase(rel_cell)_k`` with ``phase = Linear(2 → D/2, no
bias)`` and ``rel_cell = cell · (h, w)``; the MLP (D → [256]*3 → 3) decodes ``coef ⊙ [cos πθ, sin πθ]``.
The blended prediction gets a global skip: the bilinear sample (border padding, ``align_corners=False``)
of the normalised LR at the unshifted query (docs/method.md: LTE head).

Two paths (:attr:`LTEHead.fast`): the reference (``fast=False``) follows the official steps with
``grid_sample`` on whole-grid states; the fast path (default, and for every window state) computes both
convolutions as one, gathers ``coef`` and ``freq`` of the four members in one gather, runs one MLP pass
over all members, and computes the bilinear skip with explicit global indices (so it works on a window).

``reach = 2``: a query reads the latents one cell around its own LR pixel (ensemble, as LIIF), each of
which depends on its 3x3 neighbourhood (the ``coef``/``freq`` convolutions); the bilinear skip reads LR
pixels ``floor(u - 1/2)`` and the next one, i.e. also at most one pixel around the query's own.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from liif_sr.coords import make_coord
from liif_sr.models.heads.base import DecoderHead, HeadState, cpu_inference, window_of
from liif_sr.models.heads.cpu_pool import single_threaded
from liif_sr.models.heads.geometry import (
    area_blend,
    channels_last_rows,
    const,
    ensemble_geometry,
    ensemble_shifts,
    local_rows,
    validate_latent,
    validate_lr,
    validate_queries,
)
from liif_sr.models.heads.lte_blocks import decode_blocks
from liif_sr.models.mlp import MLP
from liif_sr.models.registry import register_head

# CPU inference decode, per query of a chunk: the 4 members' nearest latents, rows and relative coordinates
# and ensemble_geometry's temporaries (measured ~300 B), on top of the phases, the skip and the output
_GEOMETRY_BYTES = 384


@dataclass
class LTEState(HeadState):
    """Prepared LTE latent window.

    Attributes:
        lr: (B, 3, th, tw) the normalised LR pixels of the window, in [-1, 1] (for the global skip).
        coef_freq: (B, 2D, th, tw) channels-last ``cat(coef, freq)`` (fast path), or None.
        coef, freq: (B, D, h, w) each, the whole grid's maps (reference path), or None.
    """

    lr: Tensor
    coef_freq: Tensor | None = None
    coef: Tensor | None = None
    freq: Tensor | None = None


def bilinear_border(lr: Tensor, coord: Tensor, offset: tuple[int, int], full_size: tuple[int, int]) -> Tensor:
    """``grid_sample(lr_full, coord.flip(-1), bilinear, padding_mode="border", align_corners=False)`` from a window.

    Args:
        lr: (B, 3, th, tw), the window at global pixel ``offset`` of an image of size ``full_size``.
        coord: (B, Q, 2) in [-1, 1], global frame, (y, x).

    Returns:
        (B, Q, 3) fp32. The source position ``((c + 1) n - 1) / 2`` is clamped to ``[0, n - 1]`` per axis (the
        border padding) and its two neighbours are gathered by global index minus ``offset``.
    """
    b, _, th, tw = lr.shape
    size = const(list(full_size), coord.device)
    pos = (((coord.float() + 1) * size - 1) / 2).clamp_min(0)
    pos = torch.minimum(pos, size - 1)
    lo = torch.floor(pos)
    frac = pos - lo  # (B, Q, 2)
    hi = torch.minimum(lo + 1, size - 1)
    corners = torch.stack(
        [
            torch.stack([lo[..., 0], lo[..., 1]], -1),
            torch.stack([lo[..., 0], hi[..., 1]], -1),
            torch.stack([hi[..., 0], lo[..., 1]], -1),
            torch.stack([hi[..., 0], hi[..., 1]], -1),
        ],
        dim=1,
    )  # (B, 4, Q, 2)
    rows = local_rows(corners, HeadState(offset, full_size, (th, tw)), "LTEHead skip")
    values = channels_last_rows(lr.float()).index_select(0, rows.view(-1)).view(b, 4, -1, lr.shape[1])
    fy, fx = frac[..., 0:1], frac[..., 1:2]
    weights = [(1 - fy) * (1 - fx), (1 - fy) * fx, fy * (1 - fx), fy * fx]
    return sum(values[:, i] * weights[i] for i in range(4))


@register_head("lte")
class LTEHead(DecoderHead):
    """Local texture estimator head.

    Args:
        in_channels: latent channels ``C`` of the encoder (64).
        hidden_dim: ``D``, channels of ``coef`` and ``freq`` (even; 256 in the paper); the MLP input width.
        hidden_list: MLP hidden sizes (``[256] * 3`` in the paper).
        out_dim: output channels (3).
        fast: the factorised path (default) or the official step-by-step reference (whole-grid states).
    """

    reach = 2
    paper_cell_clip = 4.0
    auto_bf16 = True  # bf16 decode measured within 0.0006 dB of fp32 (Set5/Set14 x2-x4, a trained test head)

    def __init__(
        self,
        in_channels: int = 64,
        hidden_dim: int = 256,
        hidden_list: Sequence[int] = (256, 256, 256),
        out_dim: int = 3,
        fast: bool = True,
    ) -> None:
        super().__init__()
        if hidden_dim < 2 or hidden_dim % 2:
            raise ValueError(f"LTEHead: hidden_dim must be even and >= 2, got {hidden_dim}")
        if len(hidden_list) < 1:
            raise ValueError("LTEHead: hidden_list needs at least one layer")
        self.in_channels, self.hidden_dim, self.fast = in_channels, hidden_dim, bool(fast)
        self.coef = nn.Conv2d(in_channels, hidden_dim, 3, padding=1)
        self.freq = nn.Conv2d(in_channels, hidden_dim, 3, padding=1)
        self.phase = nn.Linear(2, hidden_dim // 2, bias=False)
        self.mlp = MLP(hidden_dim, out_dim, list(hidden_list))
        self.config = {
            "hidden_dim": hidden_dim,
            "hidden_list": [int(h) for h in hidden_list],
            "out_dim": out_dim,
        }

    def state_bytes_per_latent(self, dtype_bytes: int = 4) -> int:
        return (2 * self.hidden_dim + 3) * dtype_bytes

    def decode_bytes_per_query(self, dtype_bytes: int = 4) -> int:
        if cpu_inference(self):
            # cache-sized blocks (lte_blocks): the chunk's geometry, fp32 phases, skip and output
            return 4 * (self.hidden_dim // 2 + 2 * self.mlp.out_dim) + _GEOMETRY_BYTES
        return 4 * (4 * self.hidden_dim + 2 * max(self.mlp.hidden_list)) * dtype_bytes

    # ------------------------------------------------------------------ contract
    def prepare(
        self,
        feat: Tensor,
        lr: Tensor | None = None,
        offset: tuple[int, int] | None = None,
        full_size: tuple[int, int] | None = None,
    ) -> LTEState:
        """``coef``/``freq`` of the window ``feat`` (B, C, th, tw) and its normalised LR ``lr`` (B, 3, th, tw)."""
        validate_latent("LTEHead", feat, self.in_channels)
        validate_lr("LTEHead", feat, lr)
        offset, full, size = window_of(feat, offset, full_size)
        if not self.fast and size == full:
            return LTEState(offset, full, size, lr=lr, coef=self.coef(feat), freq=self.freq(feat))
        weight = torch.cat([self.coef.weight, self.freq.weight]).to(feat.dtype)
        bias = torch.cat([self.coef.bias, self.freq.bias]).to(feat.dtype)
        coef_freq = F.conv2d(feat, weight, bias, padding=1).contiguous(memory_format=torch.channels_last)
        return LTEState(offset, full, size, lr=lr, coef_freq=coef_freq)

    def decode(self, state: LTEState, coord: Tensor, cell: Tensor | None = None) -> Tensor:
        """(B, Q, 2) global coordinates and cells → (B, Q, out_dim) in the normalised output space."""
        validate_queries("LTEHead", state.lr.shape[0], coord, cell, need_cell=True)
        if state.coef_freq is None:
            return self._decode_reference(state, coord, cell)
        h, w = state.full_size
        table = channels_last_rows(state.coef_freq)
        grad = torch.is_grad_enabled() and (table.requires_grad or self.phase.weight.requires_grad)
        blocks = table.device.type == "cpu" and not grad  # CPU inference: cache-sized blocks (lte_blocks.py)
        # CPU inference: the chunk-level elementwise work on one thread (cpu_pool.single_threaded)
        chunk_level = single_threaded if blocks else contextlib.nullcontext
        with chunk_level():
            idx, rel_coord = ensemble_geometry(coord, h, w)  # (B, 4, Q, 2)
            flat = local_rows(idx, state, "LTEHead")
            rel_cell = cell.float() * const([h, w], coord.device)
            if blocks:
                with torch.autocast(
                    "cpu", enabled=False
                ):  # fp32 phases also under autocast / in a half model
                    phase = F.linear(rel_cell, self.phase.weight.float())
        if blocks:
            out = decode_blocks(self.mlp.layers, table, flat, rel_coord, phase)
        else:
            out = self._decode_members(table, flat, rel_coord, self.phase(rel_cell))
        with chunk_level():
            return out + bilinear_border(state.lr, coord, state.offset, state.full_size)

    def _decode_members(self, table: Tensor, flat: Tensor, rel_coord: Tensor, phase: Tensor) -> Tensor:
        """All members of the chunk at once (training, GPU): one gather, one MLP pass → (B, Q, out) fp32."""
        b, _, q = flat.shape
        d = self.hidden_dim
        rows = table.index_select(0, flat.view(-1)).view(b, 4, q, 2 * d)
        q_coef, q_freq = rows[..., :d], rows[..., d:].reshape(b, 4, q, d // 2, 2)
        theta = (q_freq * rel_coord.unsqueeze(-2).to(q_freq.dtype)).sum(-1) + phase.unsqueeze(1)
        basis = torch.cat([torch.cos(math.pi * theta), torch.sin(math.pi * theta)], dim=-1)
        pred = self.mlp(q_coef * basis)  # (B, 4, Q, out)
        return area_blend(pred.float(), rel_coord)

    # ------------------------------------------------------------------ reference
    def _decode_reference(self, state: LTEState, coord: Tensor, cell: Tensor) -> Tensor:
        """The official query step by step on whole-grid maps (``grid_sample`` lookups per member)."""
        coef, freq, lr = state.coef, state.freq, state.lr
        b, _, h, w = coef.shape
        shifts, eps = ensemble_shifts(h, w, coef.device)
        feat_coord = make_coord((h, w), flatten=False, device=coef.device).permute(2, 0, 1)
        feat_coord = feat_coord.unsqueeze(0).expand(b, 2, h, w)
        scale = const([h, w], coef.device)
        rel_cell = cell * scale
        preds, areas = [], []
        for shift in shifts:
            coord_ = (coord + shift + eps).clamp(-1 + 1e-6, 1 - 1e-6)
            grid = coord_.flip(-1).unsqueeze(1)
            q_coef, q_freq, q_coord = (
                F.grid_sample(x, grid, mode="nearest", align_corners=False)[:, :, 0, :].permute(0, 2, 1)
                for x in (coef, freq, feat_coord)
            )
            rel_coord = (coord - q_coord) * scale
            q_freq = torch.stack(torch.split(q_freq, 2, dim=-1), dim=-1)  # (B, Q, 2, D/2)
            q_freq = (q_freq * rel_coord.unsqueeze(-1)).sum(dim=-2) + self.phase(rel_cell)
            basis = torch.cat([torch.cos(math.pi * q_freq), torch.sin(math.pi * q_freq)], dim=-1)
            preds.append(self.mlp(q_coef * basis))
            areas.append((rel_coord[..., 0] * rel_coord[..., 1]).abs() + 1e-9)
        tot = torch.stack(areas).sum(dim=0)
        out = sum(p * (a / tot).unsqueeze(-1) for p, a in zip(preds, areas[::-1], strict=True))
        skip = F.grid_sample(
            lr, coord.flip(-1).unsqueeze(1), mode="bilinear", padding_mode="border", align_corners=False
        )
        return out + skip[:, :, 0, :].permute(0, 2, 1)
