"""The LM-CiaoSR head (He et al., CVPR 2024, HeZongyao/LMF ``lmciaosr``): CiaoSR's attention-in-attention
ensemble computed once per *latent* pixel, decoded per query by a small modulated MLP (docs/method.md).

:meth:`LMCiaoSRHead.prepare` (once per image): the cross-scale attention ``nl`` (C channels,
:mod:`.cross_scale_attention`, by 48x48 blocks on large grids). At the image's cell (once per cell, cached in
the state: :func:`~.lmf_common.modulations`): the 3x3-unfolded latent ``U`` (9C), four gated key/value pairs
per latent pixel, a softmax over them against ``prenet_q(U)``, and the hypernetwork that turns the result
into ``D`` scale and ``D`` shift vectors per render layer plus a latent code ``z`` (2D).
:meth:`LMCiaoSRHead.decode` (per query chunk): LIIF's 4-member nearest-latent ensemble; each member renders
``[z(p), rel]`` (no cell) with the modulated MLP and the area-weighted blend gets the bilinear LR skip
(``lr_skip``).

Quirks of the official evaluation route, copied for parity (README "LM-CiaoSR"):

* the key of member ``(vx, vy)`` reads ``U`` as if its channels were laid out ``(3, 3, C)`` (they are
  ``(C, 3, 3)``): rows ``t, t+1`` with ``t = (vy+1)/2``, columns ``l, l+1`` with ``l = (vx+1)/2`` of that view;
* its relative offset is divided by the grid size twice: ``rel = (-vx/h, -vy/w)``, computed in fp32 as the
  official ``(c - (c + vx·(1/h)/h))·h`` per latent centre ``c``;
* LMF's ``base_c = 64`` is our ``C`` (equal for its encoders, which all give 64 channels).

The official latent MLP gives latent pixel ``i`` the cell of query ``i`` (``cell[:, :h*w]``); as every LM
head here it takes each image's one cell (non-uniform cells are refused at inference), equal whenever the
official route runs (its test grid and training samples have one cell per image).

**Not tileable** (``reach = None``): the attention looks across the whole latent grid (or its 48x48 block),
so tiles would change the output, and tiling refuses this head. A window state is computed on the window
alone (gathers are exact, the attention and unfold see only the window).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from liif_sr.coords import make_coord
from liif_sr.models.heads.base import DecoderHead, window_of
from liif_sr.models.heads.cross_scale_attention import CrossScaleAttention, blockwise
from liif_sr.models.heads.geometry import validate_latent, validate_lr, validate_queries
from liif_sr.models.heads.lmf_common import (
    LMState,
    ModulatedMLP,
    blend,
    decode_pieces,
    fast_rows,
    layer_tables,
    member_rows,
    modulations,
    reference_members,
    rows_to_map,
)
from liif_sr.models.heads.lmf_kernel import decode_bytes_per_query as lm_decode_bytes
from liif_sr.models.heads.lmf_kernel import kernel_decode, planned
from liif_sr.models.heads.lte import bilinear_border
from liif_sr.models.mlp import MLP
from liif_sr.models.registry import register_head

LRSkip = Literal["always", "eval", "never"]
MEMBERS = ((-1, -1), (-1, 1), (1, -1), (1, 1))  # the official (vx, vy) order


@register_head("lmciaosr")
class LMCiaoSRHead(DecoderHead):
    """Latent-modulated CiaoSR head.

    Args:
        in_channels: latent channels ``C`` (64 for LMF's encoders).
        hidden_dim, hidden_depth: the render MLP's width ``D`` (16) and modulated layers (8).
        attn_hidden: hidden sizes of ``prenet_q``, ``imnet_k`` and ``imnet_v`` ([256]).
        hidden_list: hidden sizes of the hypernetwork (the latent MLP, ``[288]``).
        out_dim: output channels (3).
        lr_skip: when the bilinear LR skip is added: ``"always"`` (default: the model is trained as it is
            evaluated), ``"eval"`` (the official code: in eval mode only, its training forward has none;
            official checkpoints load with it) or ``"never"``.
        fast: gathered rows (default) or the official ``grid_sample`` steps (reference, whole grid).
    """

    reach = None  # non-local: no exact tiling
    paper_cell_clip = 4.0

    def __init__(
        self,
        in_channels: int = 64,
        hidden_dim: int = 16,
        hidden_depth: int = 8,
        attn_hidden: Sequence[int] = (256,),
        hidden_list: Sequence[int] = (288,),
        out_dim: int = 3,
        lr_skip: LRSkip = "always",
        fast: bool = True,
    ) -> None:
        super().__init__()
        if lr_skip not in ("always", "eval", "never"):
            raise ValueError(f"LMCiaoSRHead: lr_skip must be 'always', 'eval' or 'never', got {lr_skip!r}")
        c = in_channels
        self.in_channels, self.fast, self.lr_skip = c, bool(fast), lr_skip
        self.render = ModulatedMLP(2 * hidden_dim + 2, out_dim, hidden_dim, hidden_depth)
        self.attention = CrossScaleAttention(c)
        self.prenet_q = MLP(9 * c, 4 * c, list(attn_hidden))
        self.imnet_k = MLP(4 * c + 4, 4 * c, list(attn_hidden))
        self.imnet_v = MLP(5 * c + 4, 5 * c, list(attn_hidden))
        self.hypernet = MLP(5 * c, self.render.mod_dim + 2 * hidden_dim, list(hidden_list))
        self.config = {
            "hidden_dim": hidden_dim,
            "hidden_depth": hidden_depth,
            "attn_hidden": [int(x) for x in attn_hidden],
            "hidden_list": [int(x) for x in hidden_list],
            "out_dim": out_dim,
            "lr_skip": lr_skip,
        }

    def state_bytes_per_latent(self, dtype_bytes: int = 4) -> int:
        # feat + attention + the cached rows and their per-layer tables; the per-cell work holds
        # ~(9 + 4·4 + 4·5 + 4)·C per latent
        # (on the kernel path: its packed table lmf_kernel.packed_table instead of the per-layer tables, the
        # same width, and its channels-last copy of the LR when the skip is added)
        lr = 6 if self.lr_skip != "never" and planned(self, self.render, dtype_bytes) else 3
        return (2 * self.in_channels + 2 * self.hypernet.out_dim + lr + 49 * self.in_channels) * dtype_bytes

    def decode_bytes_per_query(self, dtype_bytes: int = 4) -> int:
        return lm_decode_bytes(self, self.render, self.hypernet.out_dim, dtype_bytes)

    # ------------------------------------------------------------------ contract
    def prepare(
        self,
        feat: Tensor,
        lr: Tensor | None = None,
        offset: tuple[int, int] | None = None,
        full_size: tuple[int, int] | None = None,
    ) -> LMState:
        """The window ``feat`` (B, C, th, tw), its cross-scale attention, and its normalised LR ``lr``."""
        validate_latent("LMCiaoSRHead", feat, self.in_channels)
        validate_lr("LMCiaoSRHead", feat, lr)
        offset, full, size = window_of(feat, offset, full_size)
        attention = blockwise(self.attention, feat)
        return LMState(offset, full, size, latent=feat, lr=lr, extra={"attention": attention})

    def _modulate(self, state: LMState, rel_cell: Tensor) -> Tensor:
        """The latent MLP on every latent of the window at each item's ``rel_cell`` (B, 2) → (B, th·tw, M)."""
        feat = state.latent
        b, c, h, w = feat.shape
        hw = h * w
        u = F.unfold(feat, 3, padding=1).view(b, 9 * c, h, w)
        nl = state.extra["attention"].reshape(b, c, hw).transpose(1, 2)
        rel_cell = rel_cell.to(feat.dtype).view(b, 1, 2).expand(b, hw, 2)
        centre = make_coord((h, w), device=feat.device).to(feat.dtype)  # (hw, 2)
        blocks = u.view(b, 3, 3, c, h, w)  # the official (3, 3, C) reading of the (C, 3, 3) unfold
        keys, values = [], []
        for vx, vy in MEMBERS:
            top, left = (vy + 1) // 2, (vx + 1) // 2
            key = blocks[:, top : top + 2, left : left + 2].reshape(b, 4 * c, hw).transpose(1, 2)
            value = torch.cat([key, nl], dim=-1)
            shifted = centre.clone()
            shifted[:, 0] += vx * (2 / h / 2) / h  # the official offset, divided by h twice
            shifted[:, 1] += vy * (2 / w / 2) / w
            rel = centre - shifted
            rel[:, 0] *= h
            rel[:, 1] *= w
            geo = torch.cat([rel.expand(b, hw, 2), rel_cell], dim=-1)
            keys.append(key * self.imnet_k(torch.cat([key, geo], dim=-1)))
            values.append(value * self.imnet_v(torch.cat([value, geo], dim=-1)))
        query = self.prenet_q(u.view(b, 9 * c, hw).transpose(1, 2)).unsqueeze(2)  # (B, hw, 1, 4C)
        attn = (query @ torch.stack(keys, dim=-1)).softmax(dim=-1)  # (B, hw, 1, 4)
        return self.hypernet((attn @ torch.stack(values, dim=-2)).squeeze(2))

    def skips(self) -> bool:
        """Whether the bilinear LR skip is added now (``lr_skip`` and the module's train/eval mode)."""
        return self.lr_skip == "always" or (self.lr_skip == "eval" and not self.training)

    def _fast_rows(self, state: LMState, rel_cell: Tensor) -> Tensor:
        """``[1 + s | t | a]`` with the render's layer-0 per-latent part ``a = W_z z + b`` (the query adds
        ``W_rel rel``)."""
        rows = self._modulate(state, rel_cell)
        rows = rows.reshape(-1, rows.shape[-1])
        first, mod_dim = self.render.layers[0], self.render.mod_dim
        a = F.linear(rows[:, mod_dim:], first.weight[:, : rows.shape[-1] - mod_dim], first.bias)
        return fast_rows(torch.cat([rows[:, :mod_dim], a], dim=-1), self.render)

    def decode(self, state: LMState, coord: Tensor, cell: Tensor | None = None) -> Tensor:
        """(B, Q, 2) global coordinates and cells → (B, Q, out_dim) in the normalised output space."""
        validate_queries("LMCiaoSRHead", state.latent.shape[0], coord, cell, need_cell=True)
        if coord.shape[1] == 0:  # no cell to run the latent MLP at, nothing to decode
            return coord.new_zeros(coord.shape[0], 0, self.render.out_dim, dtype=torch.float32)
        check, mod_dim, skip = not torch.is_grad_enabled(), self.render.mod_dim, self.skips()
        if not self.fast and state.size == state.full_size:
            rows = modulations(state, cell, state.full_size, self._modulate, check, tag="reference")
            members = reference_members(rows_to_map(rows, coord.shape[0], state.size), coord)
            preds = [self.render(torch.cat([r[..., mod_dim:], rel], -1), r) for r, rel in members]
            out = blend(torch.stack(preds, 1).float(), torch.stack([rel for _, rel in members], 1))
            return out + bilinear_border(state.lr, coord, state.offset, state.full_size) if skip else out
        rows = modulations(state, cell, state.full_size, self._fast_rows, check, tag="fast")
        w_rel = self.render.layers[0].weight[:, -2:].t().to(rows.dtype).contiguous()
        fused = kernel_decode(
            state,
            coord,
            cell,
            self.render,
            rows,
            head="LMCiaoSRHead",
            w_first=w_rel,
            first=rows[:, mod_dim:],
            skip=skip,
        )
        if fused is not None:
            return fused
        weights = self.render.transposed_weights(rows.dtype)
        tables = layer_tables(state, rows, self.render, first=rows[:, mod_dim:])

        def piece(c: Tensor, ce: Tensor) -> Tensor:
            rel_coord, flat = member_rows(state, c, "LMCiaoSRHead")
            b, _, q, _ = rel_coord.shape
            x0 = torch.mm(rel_coord.to(rows.dtype).reshape(-1, 2), w_rel)
            pred = self.render.forward_tables(x0, tables, flat, weights).view(b, 4, q, -1)
            out = blend(pred.float(), rel_coord)
            return out + bilinear_border(state.lr, c, state.offset, state.full_size) if skip else out

        return decode_pieces(coord, cell, self.render.out_dim, piece)
