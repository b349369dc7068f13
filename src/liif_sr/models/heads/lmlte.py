"""The LM-LTE head (He et al., CVPR 2024): LTE with a latent modulated render MLP.

Per latent: ``coef``, ``freq`` = Conv3x3(C → 128) each and ``phase = Linear(2 → 64, no bias)``; the latent
MLP (``hypernet``, ``128 → [288] → 2·16·D + 32``) reads ``coef ⊙ [cos πf, sin πf]`` with
``f_k = freq_{2k} + freq_{2k+1} + phase(rel_cell)_k`` (no coordinate) and gives D scale and D shift vectors,
then ``coef'`` (16) and ``freq'`` (16). Per query and ensemble member (LIIF's four shifted nearest latents,
relative coordinate, area weights with the diagonal swap): ``φ_k = freq'_{2k} rel_0 + freq'_{2k+1} rel_1 +
imphase(rel_cell)_k`` with ``imphase = Linear(2 → 8, no bias)``, and the :class:`~.lmf_common.ModulatedMLP`
(width 16, depth D = 8) decodes ``coef' ⊙ [cos πφ, sin πφ]``. The blended prediction gets LTE's bilinear
skip of the normalised LR (border padding, ``align_corners=False``). (docs/method.md: LM-LTE head;
``liif_spec.md`` §12.)

As LM-LIIF, the latent MLP runs once per image and cell in the first ``decode``; ``fast=False`` is the
official step-by-step reference on whole-grid states. ``reach = 2``: members one latent around the query's
own, each depending on its 3x3 neighbourhood (the convolutions); the skip reads at most one LR pixel around.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from liif_sr.models.heads.base import DecoderHead, window_of
from liif_sr.models.heads.geometry import const, validate_latent, validate_lr, validate_queries
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


@register_head("lmlte")
class LMLTEHead(DecoderHead):
    """Latent modulated LTE head.

    Args:
        in_channels: latent channels ``C`` of the encoder (64).
        latent_dim: channels of ``coef`` and ``freq`` (even; 128), the latent MLP's input width.
        hidden_dim: width of the render MLP (even; 16); ``coef'`` and ``freq'`` are as wide.
        hidden_depth: modulated hidden layers of the render MLP (8).
        hidden_list: hidden sizes of the latent MLP (``[288]``).
        out_dim: output channels (3).
        fast: the gather path (default) or the official step-by-step reference (whole-grid states).
    """

    reach = 2
    paper_cell_clip = 4.0  # LMF test.py: cell * max(scale / scale_max, 1), scale_max = 4

    def __init__(
        self,
        in_channels: int = 64,
        latent_dim: int = 128,
        hidden_dim: int = 16,
        hidden_depth: int = 8,
        hidden_list: Sequence[int] = (288,),
        out_dim: int = 3,
        fast: bool = True,
    ) -> None:
        super().__init__()
        for name, v in (("latent_dim", latent_dim), ("hidden_dim", hidden_dim)):
            if v < 2 or v % 2:
                raise ValueError(f"LMLTEHead: {name} must be even and >= 2, got {v}")
        self.in_channels, self.fast = in_channels, bool(fast)
        self.coef = nn.Conv2d(in_channels, latent_dim, 3, padding=1)
        self.freq = nn.Conv2d(in_channels, latent_dim, 3, padding=1)
        self.phase = nn.Linear(2, latent_dim // 2, bias=False)
        self.render = ModulatedMLP(hidden_dim, out_dim, hidden_dim, hidden_depth)
        self.hypernet = MLP(latent_dim, self.render.mod_dim + 2 * hidden_dim, list(hidden_list))
        self.imphase = nn.Linear(2, hidden_dim // 2, bias=False)
        self.config = {
            "latent_dim": latent_dim,
            "hidden_dim": hidden_dim,
            "hidden_depth": hidden_depth,
            "hidden_list": [int(h) for h in hidden_list],
            "out_dim": out_dim,
        }

    def state_bytes_per_latent(self, dtype_bytes: int = 4) -> int:
        # coef/freq + LR + the cached rows and their per-layer tables (layer_tables; on the kernel path its
        # packed table lmf_kernel.packed_table instead, the same width, and its channels-last copy of the LR)
        lr = 6 if planned(self, self.render, dtype_bytes) else 3
        return (2 * self.coef.out_channels + 2 * self.hypernet.out_dim + lr) * dtype_bytes

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
        """``coef``/``freq`` of the window ``feat`` (B, C, th, tw) and its normalised LR ``lr`` (B, 3, th, tw)."""
        validate_latent("LMLTEHead", feat, self.in_channels)
        validate_lr("LMLTEHead", feat, lr)
        offset, full, size = window_of(feat, offset, full_size)
        latent = torch.cat([self.coef(feat), self.freq(feat)], dim=1)
        return LMState(offset, full, size, latent=latent, lr=lr)

    def _modulate(self, state: LMState, rel_cell: Tensor) -> Tensor:
        """The latent MLP on every latent of the window at each item's ``rel_cell`` (B, 2) → (B, th, tw, M)."""
        d = self.coef.out_channels
        x = state.latent.permute(0, 2, 3, 1)  # (B, th, tw, 2D)
        coef, freq = x[..., :d], x[..., d:]
        freq = torch.stack(torch.split(freq, 2, dim=-1), dim=-1).sum(dim=-2)  # f_{2k} + f_{2k+1}
        freq = freq + self.phase(rel_cell.to(x.dtype)).view(-1, 1, 1, d // 2)
        basis = torch.cat([torch.cos(math.pi * freq), torch.sin(math.pi * freq)], dim=-1)
        return self.hypernet(coef * basis)

    def _render_input(self, code: Tensor, rel_coord: Tensor, phase: Tensor, literal: bool = False) -> Tensor:
        """``coef' ⊙ [cos πφ, sin πφ]`` from members' latent codes ``[coef' | freq']`` (..., 2H), ``rel_coord``
        (..., 2), ``imphase`` (..., H/2).

        ``literal``: the official steps (split/stack/sum, reference path); else strided pairs and fused ops."""
        hd = self.render.hidden_dim
        coef, freq = code[..., :hd], code[..., hd:]
        if literal:
            freq = torch.stack(torch.split(freq, 2, dim=-1), dim=-1)  # (..., 2, H/2)
            theta = (freq * rel_coord.unsqueeze(-1).to(freq.dtype)).sum(dim=-2) + phase
            return coef * torch.cat([torch.cos(math.pi * theta), torch.sin(math.pi * theta)], dim=-1)
        rel = rel_coord.to(
            freq.dtype
        )  # φ_k = f_{2k} rel_0 + f_{2k+1} rel_1 + phase_k (the official pair sum)
        theta = torch.addcmul(freq[..., 0::2] * rel[..., 0:1], freq[..., 1::2], rel[..., 1:2]).add_(phase)
        theta = theta.mul_(math.pi)
        return coef * torch.cat([torch.cos(theta), torch.sin(theta)], dim=-1)

    def _fast_rows(self, state: LMState, rel_cell: Tensor) -> Tensor:
        rows = self._modulate(state, rel_cell)
        return fast_rows(rows.reshape(-1, rows.shape[-1]), self.render)

    def decode(self, state: LMState, coord: Tensor, cell: Tensor | None = None) -> Tensor:
        """(B, Q, 2) global coordinates and cells → (B, Q, out_dim) in the normalised output space."""
        validate_queries("LMLTEHead", state.latent.shape[0], coord, cell, need_cell=True)
        if coord.shape[1] == 0:  # no cell to run the latent MLP at, nothing to decode
            return coord.new_zeros(coord.shape[0], 0, self.render.out_dim, dtype=torch.float32)
        check = not torch.is_grad_enabled()
        h, w = state.full_size
        if not self.fast and state.size == state.full_size:
            rows = modulations(state, cell, state.full_size, self._modulate, check, tag="reference")
            phase = self.imphase(cell * const([h, w], coord.device, cell.dtype))  # (B, Q, H/2)
            return self._decode_reference(state, rows, coord, phase)
        rows = modulations(state, cell, state.full_size, self._fast_rows, check, tag="fast")
        w_phase = self.imphase.weight
        fused = kernel_decode(
            state, coord, cell, self.render, rows, head="LMLTEHead", w_first=w_phase, lte=True, skip=True
        )
        if fused is not None:
            return fused
        size = const([h, w], coord.device)
        weights = self.render.transposed_weights(rows.dtype)
        tables = layer_tables(state, rows, self.render)

        def piece(c: Tensor, ce: Tensor) -> Tensor:
            rel_coord, flat = member_rows(state, c, "LMLTEHead")
            b, _, q, _ = rel_coord.shape
            phase = self.imphase((ce.float() * size).to(rows.dtype)).unsqueeze(1)
            code = tables[-1].index_select(0, flat).view(b, 4, q, -1)
            inp = self._render_input(code, rel_coord, phase).reshape(-1, self.render.hidden_dim)
            pred = self.render.forward_tables(torch.mm(inp, weights[0]), tables, flat, weights).view(
                b, 4, q, -1
            )
            return blend(pred.float(), rel_coord) + bilinear_border(
                state.lr, c, state.offset, state.full_size
            )

        return decode_pieces(coord, cell, self.render.out_dim, piece)

    # ------------------------------------------------------------------ reference
    def _decode_reference(self, state: LMState, rows: Tensor, coord: Tensor, phase: Tensor) -> Tensor:
        """The official ``query_rgb`` step by step on the whole grid (``grid_sample`` lookups per member)."""
        maps = rows_to_map(rows, coord.shape[0], state.size)
        preds, rels = [], []
        for q_rows, rel_coord in reference_members(maps, coord):
            code = q_rows[..., self.render.mod_dim :]
            preds.append(self.render(self._render_input(code, rel_coord, phase, literal=True), q_rows))
            rels.append(rel_coord)
        out = blend(torch.stack(preds, 1), torch.stack(rels, 1))
        skip = F.grid_sample(
            state.lr, coord.flip(-1).unsqueeze(1), mode="bilinear", padding_mode="border", align_corners=False
        )
        return out + skip[:, :, 0, :].permute(0, 2, 1)
