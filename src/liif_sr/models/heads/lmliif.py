"""The LM-LIIF head (He et al., CVPR 2024): LIIF with a latent modulated render MLP.

Per latent: the latent MLP (``hypernet``, ``9C + 2 → [208] → 2·16·D + 16``) reads the 3x3-unfolded latent
(``F.unfold`` layout ``c·9 + k``) and ``rel_cell = cell · (h, w)``; it gives D scale and D shift vectors and a
16-wide latent code ``z``. Per query and ensemble member (LIIF's four shifted nearest latents, relative
coordinate, area weights with the diagonal swap): the :class:`~.lmf_common.ModulatedMLP` (width 16, depth D)
decodes ``z(p) ‖ rel ‖ rel_cell`` with the modulations of the same latent ``p``. There is no LR skip.
(docs/method.md: LM-LIIF head; ``liif_spec.md`` §12.)

The latent MLP runs once per image and cell, in the first ``decode`` (its input needs the output grid's
cell, :func:`~.lmf_common.modulations`); ``prepare`` keeps the unfolded latent. Two paths
(:attr:`LMLIIFHead.fast`): the fast path gathers the four members' rows with global indices (also on windows);
the reference (``fast=False``, whole-grid states) follows the official steps with ``grid_sample``.

``reach = 2``: a query reads the latents one cell around its own LR pixel, each of which depends on its 3x3
neighbourhood (the unfold).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from liif_sr.models.heads.base import DecoderHead, window_of
from liif_sr.models.heads.geometry import const, validate_latent, validate_queries
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
from liif_sr.models.heads.lmf_kernel import kernel_decode
from liif_sr.models.mlp import MLP
from liif_sr.models.registry import register_head


@register_head("lmliif")
class LMLIIFHead(DecoderHead):
    """Latent modulated LIIF head.

    Args:
        in_channels: latent channels ``C`` of the encoder (64).
        hidden_dim: width of the render MLP and of the latent code ``z`` (16).
        hidden_depth: modulated hidden layers of the render MLP (6; 8 in the SwinIR recipe).
        hidden_list: hidden sizes of the latent MLP (``[208]``).
        out_dim: output channels (3).
        fast: the gather path (default) or the official step-by-step reference (whole-grid states).
    """

    reach = 2
    paper_cell_clip = 4.0  # LMF test.py: cell * max(scale / scale_max, 1), scale_max = 4

    def __init__(
        self,
        in_channels: int = 64,
        hidden_dim: int = 16,
        hidden_depth: int = 6,
        hidden_list: Sequence[int] = (208,),
        out_dim: int = 3,
        fast: bool = True,
    ) -> None:
        super().__init__()
        self.in_channels, self.fast = in_channels, bool(fast)
        self.render = ModulatedMLP(hidden_dim + 4, out_dim, hidden_dim, hidden_depth)
        self.hypernet = MLP(in_channels * 9 + 2, self.render.mod_dim + hidden_dim, list(hidden_list))
        self.config = {
            "hidden_dim": hidden_dim,
            "hidden_depth": hidden_depth,
            "hidden_list": [int(h) for h in hidden_list],
            "out_dim": out_dim,
        }

    def state_bytes_per_latent(self, dtype_bytes: int = 4) -> int:
        # the unfolded latent + the cached rows and their per-layer tables (layer_tables; on the kernel
        # path its packed table lmf_kernel.packed_table instead, the same width)
        return (self.in_channels * 9 + 2 * self.hypernet.out_dim) * dtype_bytes

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
        """The 3x3-unfolded window ``feat`` (B, C, th, tw); the latent MLP runs in ``decode`` (it needs the cell)."""
        validate_latent("LMLIIFHead", feat, self.in_channels)
        offset, full, size = window_of(feat, offset, full_size)
        b, c, th, tw = feat.shape
        unfolded = F.unfold(feat, 3, padding=1).view(b, c * 9, th, tw)
        return LMState(offset, full, size, latent=unfolded)

    def _modulate(self, state: LMState, rel_cell: Tensor) -> Tensor:
        """The latent MLP on every latent of the window at each item's ``rel_cell`` (B, 2) → (B, th, tw, M)."""
        x = state.latent.permute(0, 2, 3, 1)  # (B, th, tw, 9C)
        cell = rel_cell.to(x.dtype).view(-1, 1, 1, 2).expand(-1, *x.shape[1:3], 2)
        return self.hypernet(torch.cat([x, cell], dim=-1))

    def _fast_rows(self, state: LMState, rel_cell: Tensor) -> Tensor:
        """``[1 + s | t | a]`` with layer 0's per-latent part ``a = W_z z + b`` (the rest is ``W_rel rel +
        W_cell rel_cell`` per query)."""
        rows = self._modulate(state, rel_cell)
        rows = rows.reshape(-1, rows.shape[-1])
        first, hd = self.render.layers[0], self.render.hidden_dim
        a = F.linear(rows[:, self.render.mod_dim :], first.weight[:, :hd], first.bias)
        return fast_rows(torch.cat([rows[:, : self.render.mod_dim], a], dim=-1), self.render)

    def decode(self, state: LMState, coord: Tensor, cell: Tensor | None = None) -> Tensor:
        """(B, Q, 2) global coordinates and cells → (B, Q, out_dim) in the normalised output space."""
        validate_queries("LMLIIFHead", state.latent.shape[0], coord, cell, need_cell=True)
        if coord.shape[1] == 0:  # no cell to run the latent MLP at, nothing to decode
            return coord.new_zeros(coord.shape[0], 0, self.render.out_dim, dtype=torch.float32)
        check = not torch.is_grad_enabled()
        h, w = state.full_size
        if not self.fast and state.size == state.full_size:
            rows = modulations(state, cell, state.full_size, self._modulate, check, tag="reference")
            rel_cell = cell * const([h, w], coord.device, cell.dtype)
            return self._decode_reference(state, rows, coord, rel_cell)
        rows = modulations(state, cell, state.full_size, self._fast_rows, check, tag="fast")
        w_geo = self.render.layers[0].weight[:, self.render.hidden_dim :].t().to(rows.dtype).contiguous()
        first = rows[:, self.render.mod_dim :]
        fused = kernel_decode(
            state, coord, cell, self.render, rows, head="LMLIIFHead", w_first=w_geo, first=first
        )
        if fused is not None:
            return fused
        weights = self.render.transposed_weights(rows.dtype)
        size = const([h, w], coord.device)
        tables = layer_tables(state, rows, self.render, first=first)

        def piece(c: Tensor, ce: Tensor) -> Tensor:
            rel_coord, flat = member_rows(state, c, "LMLIIFHead")
            b, _, q, _ = rel_coord.shape
            rel_cell = (ce.float() * size).unsqueeze(1).expand(b, 4, q, 2)
            geo = torch.cat([rel_coord, rel_cell], dim=-1).to(rows.dtype).reshape(-1, 4)
            pred = self.render.forward_tables(torch.mm(geo, w_geo), tables, flat, weights).view(b, 4, q, -1)
            return blend(pred.float(), rel_coord)

        return decode_pieces(coord, cell, self.render.out_dim, piece)

    # ------------------------------------------------------------------ reference
    def _decode_reference(self, state: LMState, rows: Tensor, coord: Tensor, rel_cell: Tensor) -> Tensor:
        """The official ``query_rgb`` step by step on the whole grid (``grid_sample`` lookups per member)."""
        maps = rows_to_map(rows, coord.shape[0], state.size)
        mod_dim = self.render.mod_dim
        preds, rels = [], []
        for q_rows, rel_coord in reference_members(maps, coord):
            inp = torch.cat([q_rows[..., mod_dim:], rel_coord, rel_cell], dim=-1)
            preds.append(self.render(inp, q_rows))
            rels.append(rel_coord)
        return blend(torch.stack(preds, 1), torch.stack(rels, 1))
