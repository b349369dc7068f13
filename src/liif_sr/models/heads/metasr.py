"""The MetaSR head (Hu et al., CVPR 2019), as the LIIF authors re-implemented it (docs/method.md: MetaSR head).

Per query: the HR pixel's top-left corner ``corner = coord - cell / 2`` is looked up (nearest, at
``corner + 1e-6`` clamped to ±(1 - 1e-6)) among the LR pixels; with that latent's top-left corner
``q_corner`` the weight MLP (3 → 256 → C·9·3) maps ``[(corner - q_corner) · (h/2, w/2), cell_row · h/2]``
to a per-query weight ``W`` (C·9 × 3, row ``c·9 + k``, column ``rgb``: flat index ``(c·9 + k)·3 + rgb``),
and the output is ``unfold3x3(z) @ W``. No ensemble, no skip, no extra bias.

Two paths (:attr:`MetaSRHead.fast`):

* reference (``fast=False``, whole-grid states): the official steps (unfold, ``grid_sample`` lookups,
  the per-query weight matrix, a batched product).
* fast (default, and every window state): with ``t`` the MLP's last hidden activation (H = 256) and
  ``A, b`` its last layer, ``pred_r = Σ_j u_j (A[3j + r] · t + b[3j + r]) = G_r · t + β_r`` where
  ``G_r = Σ_j u_j A[3j + r]`` (H values) and ``β_r = Σ_j u_j b[3j + r]`` depend only on the latent's unfolded
  feature ``u``. They are computed once per latent pixel as one 3x3 convolution (3H + 3 channels, zero
  padding as ``F.unfold``) and gathered per query: the C·9 × 3 weight is never materialised and a query
  costs 3H multiply-adds after the tiny MLP instead of 1728 · 256. The same function up to float rounding
  of the re-associated sums (tested ≤ 1e-5 relative against the reference). fp32 CPU inference runs the fused
  C kernel when it builds (:mod:`liif_sr.models.heads.metasr_kernel`: geometry, hidden layer + ReLU and the
  3-row product per query in registers, at about the fp32 GEMM rate); otherwise CPU inference groups the
  queries by latent (:mod:`liif_sr.models.heads.metasr_groups`: ``G`` read once per latent, one batched
  product per block of latents) and falls back to per-query gathers in cache-sized blocks when the queries
  per latent are too uneven for a bounded layout.

**Reach (per axis; LR length ``n``, ranges closed).** A query centre ``c`` at ``u = (c + 1) n / 2`` LR pixels
is owned by LR pixel ``p = clamp(floor(u), 0, n - 1)`` (see :mod:`liif_sr.inference.tiling`). Its corner
lies ``δ = cell · n / 4`` pixels before it and is sampled ``e = 1e-6 · n / 2`` after that, so at
``u' = u - δ + e``, clamped into ``(0, n)``; ``grid_sample(nearest)`` picks latent ``round(u' - 1/2)``
``= floor(u')`` (u' is never a half-integer-tie away from it unless u' is an integer, which needs
``|δ - e| = 1``). For ``u ∈ [p, p + 1)`` and ``|δ - e| < 1`` — every output grid of scale ≥ 1/2, where
``δ = 1 / (2 scale)`` — this latent is in ``[p - 1, p + 1]`` (``p - 1`` is reached whenever the HR pixel's
corner lies left of LR pixel ``p``; ``p + 1`` only when ``e > δ``, i.e. scales above ~1e6 / n). The 3x3
unfold then reads one more latent on each side: ``[p - 2, p + 2]``, so ``reach = 2`` as for LIIF. For
larger cells (downscaling below 1/2) a windowed decode raises instead of reading outside its window.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from liif_sr.coords import make_coord
from liif_sr.models.heads.base import DecoderHead, HeadState, window_of
from liif_sr.models.heads.cpu_pool import caller_modes, run_blocks, single_threaded
from liif_sr.models.heads.geometry import (
    CLAMP,
    EPS_SHIFT,
    channels_last_rows,
    const,
    latent_centres,
    local_rows,
    nearest_index,
    validate_latent,
    validate_queries,
)
from liif_sr.models.heads.latent_linear import linear_as_conv2d
from liif_sr.models.heads.metasr_groups import decode_grouped
from liif_sr.models.heads.metasr_kernel import kernel_decode, planned, query_bytes, table_buffer
from liif_sr.models.mlp import MLP
from liif_sr.models.registry import register_head

_CPU_BLOCK = 1024  # queries per block in CPU inference (gathered rows + activations stay in cache)
ROW_ALIGN = 16  # fp32 per 64-byte cache line: the kernel's table rows are padded to a multiple


@dataclass
class MetaSRState(HeadState):
    """Prepared MetaSR latent window.

    Attributes:
        proj: (B, out·H + out, th, tw) channels-last per-latent ``G`` and ``β`` (fast path), or None.
        feat: (B, C·9, h, w) the unfolded whole latent grid (reference path), or None.
    """

    proj: Tensor | None = None
    feat: Tensor | None = None


def corner_geometry(coord: Tensor, cell: Tensor, h: int, w: int) -> tuple[Tensor, Tensor]:
    """Nearest latent of each query's HR-pixel corner and the weight MLP's input.

    Args:
        coord, cell: (B, Q, 2), global frame.
        h, w: the whole latent grid's size.

    Returns:
        ``idx`` (B, Q, 2) fp32 integral global latent (row, col) and ``inp`` (B, Q, 3) fp32
        ``[(corner - q_corner) · (h/2, w/2), cell_row · h/2]``, bit for bit as the official lookups.
    """
    corner = coord.float() - cell.float() / 2
    idx = nearest_index((corner + EPS_SHIFT).clamp(-CLAMP, CLAMP), h, w)
    q_corner = latent_centres(idx, h, w) - const([1.0 / h, 1.0 / w], coord.device)
    rel = (corner - q_corner) * const([h / 2, w / 2], coord.device)
    r_rev = cell[..., :1].float() * (h / 2)
    return idx, torch.cat([rel, r_rev], dim=-1)


@register_head("metasr")
class MetaSRHead(DecoderHead):
    """Meta-upscale head: a per-query weight for the 3x3-unfolded latent, predicted from the geometry.

    Args:
        in_channels: latent channels ``C`` of the encoder (64).
        hidden_list: weight-MLP hidden sizes (``[256]`` in the official code).
        out_dim: output channels (3).
        fast: the factorised path (default) or the official step-by-step reference (whole-grid states).
    """

    reach = 2
    auto_bf16 = False  # bf16 decode measured at -0.0101 dB (Set5 x4): over the 0.01 dB bound of "auto"

    def __init__(
        self,
        in_channels: int = 64,
        hidden_list: Sequence[int] = (256,),
        out_dim: int = 3,
        fast: bool = True,
    ) -> None:
        super().__init__()
        if len(hidden_list) < 1:
            raise ValueError("MetaSRHead: hidden_list needs at least one layer")
        self.in_channels, self.out_dim, self.fast = in_channels, out_dim, bool(fast)
        self.mlp = MLP(3, in_channels * 9 * out_dim, list(hidden_list))
        self.config = {"hidden_list": [int(h) for h in hidden_list], "out_dim": out_dim}

    def state_bytes_per_latent(self, dtype_bytes: int = 4) -> int:
        if not self.fast:
            return self.in_channels * 9 * dtype_bytes
        kernel = planned(self, self.mlp.layers[:-1], dtype_bytes)  # rows padded for the kernel
        return self.table_width(ROW_ALIGN if kernel else 1) * dtype_bytes

    def decode_bytes_per_query(self, dtype_bytes: int = 4) -> int:
        if self.fast and planned(self, self.mlp.layers[:-1], dtype_bytes):  # the fused C kernel
            return query_bytes(self.out_dim)
        if self.fast:
            return (self.out_dim + 2) * (self.mlp.hidden_list[-1] + 1) * dtype_bytes
        return 2 * self.in_channels * 9 * (self.out_dim + 1) * dtype_bytes

    # ------------------------------------------------------------------ contract
    def prepare(
        self,
        feat: Tensor,
        lr: Tensor | None = None,
        offset: tuple[int, int] | None = None,
        full_size: tuple[int, int] | None = None,
    ) -> MetaSRState:
        """Fast: per-latent ``G``/``β`` of the window ``feat`` (B, C, th, tw); reference: the unfolded grid."""
        validate_latent("MetaSRHead", feat, self.in_channels)
        offset, full, size = window_of(feat, offset, full_size)
        if not self.fast and size == full:
            b, c, h, w = feat.shape
            return MetaSRState(offset, full, size, feat=F.unfold(feat, 3, padding=1).view(b, c * 9, h, w))
        kernel = feat.device.type == "cpu" and planned(self, self.mlp.layers[:-1], feat.element_size())
        if not kernel:
            return MetaSRState(offset, full, size, proj=self.latent_projection(feat))
        return MetaSRState(offset, full, size, proj=self.latent_projection(feat, ROW_ALIGN, huge_pages=True))

    def table_width(self, align: int = 1) -> int:
        """Channels of a fast state's table: ``out·H + out`` rounded up to a multiple of ``align``."""
        width = self.out_dim * (self.mlp.layers[-1].in_features + 1)
        return -(-width // align) * align

    def latent_projection(self, feat: Tensor, align: int = 1, huge_pages: bool = False) -> Tensor:
        """``(B, C, h, w)`` → ``(B, W, h, w)`` channels-last: ``G`` (row-major ``(out, H)``) then ``β`` (``out·H +
        out`` channels), then zero channels up to ``W``, the next multiple of ``align``: the C kernel's rows
        start on 64-byte cache lines with ``align`` = 16 fp32 (~16-20 % faster than rows split across lines).
        ``huge_pages`` (fp32 CPU inference for the kernel): the table in :func:`~.metasr_kernel.table_buffer`."""
        last = self.mlp.layers[-1]
        c, k, hid = self.in_channels, self.out_dim, last.in_features
        a = last.weight.view(c, 9, k, hid).permute(2, 3, 0, 1).reshape(k * hid, c, 3, 3)
        b = last.bias.view(c, 9, k).permute(2, 0, 1).reshape(k, c, 3, 3)
        pad = a.new_zeros(self.table_width(align) - k * hid - k, c, 3, 3)
        weight = torch.cat([a, b, pad])
        proj = linear_as_conv2d(feat, weight.to(feat.dtype), padding=1)
        if not huge_pages:
            return proj.contiguous(memory_format=torch.channels_last)
        b, width, h, w = proj.shape
        out = table_buffer(b * h * w * width).view(b, h, w, width).permute(0, 3, 1, 2)
        return out.copy_(proj)

    def decode(self, state: MetaSRState, coord: Tensor, cell: Tensor | None = None) -> Tensor:
        """(B, Q, 2) global coordinates and cells → (B, Q, out_dim) in the normalised output space."""
        ref = state.proj is None
        batch = (state.feat if ref else state.proj).shape[0]
        validate_queries("MetaSRHead", batch, coord, cell, need_cell=True)
        if ref:
            return self._decode_reference(state.feat, coord, cell)
        b, q = coord.shape[:2]
        table = channels_last_rows(state.proj)  # (N, k*H + k [+ zero padding])
        grad = torch.is_grad_enabled() and (table.requires_grad or self.mlp.layers[0].weight.requires_grad)
        if table.device.type != "cpu" or grad:  # training, GPU: the chunk at once
            idx, inp = corner_geometry(coord, cell, *state.full_size)
            flat = local_rows(idx, state, "MetaSRHead").view(-1)
            return self._decode_rows(table, flat, inp.view(b * q, 3)).view(b, q, -1)
        fused = kernel_decode(state, table, coord, cell, self.mlp.layers[:-1], self.out_dim)
        if fused is not None:  # fp32 CPU inference through the fused C kernel
            return fused
        with single_threaded():  # CPU inference: chunk-level elementwise geometry on one thread
            idx, inp = corner_geometry(coord, cell, *state.full_size)
            flat = local_rows(idx, state, "MetaSRHead").view(-1)
        grouped = decode_grouped(table, flat, inp.view(b * q, 3), self.mlp.layers[:-1], self.out_dim)
        if grouped is not None:  # queries grouped by latent: G read once per latent
            return grouped.view(b, q, -1)
        out = torch.empty(b * q, self.out_dim, dtype=torch.float32)
        modes = caller_modes()  # CPU inference: cache-sized blocks on the worker threads

        def work(start: int) -> None:
            with modes():
                part = slice(start, start + _CPU_BLOCK)
                out[part] = self._decode_rows(table, flat[part], inp.view(b * q, 3)[part])

        run_blocks(work, range(0, b * q, _CPU_BLOCK))
        return out.view(b, q, -1)

    def _decode_rows(self, table: Tensor, index: Tensor, inp: Tensor) -> Tensor:
        """``G_r · t + β_r`` (R, out) fp32 for the latent rows ``table[index]`` and the weight-MLP inputs ``inp``."""
        k, hid = self.out_dim, self.mlp.layers[-1].in_features
        rows = table.index_select(0, index)  # (R, k*H + k)
        t = self.mlp.layers[:-1](inp.to(rows.dtype))  # (R, H), the last hidden activation
        g, beta = rows[:, : k * hid].view(-1, k, hid), rows[:, k * hid : k * hid + k]
        # (1, H) @ (H, k) per query: ~6x faster on a CPU than the (k, H) @ (H, 1) form (a GEMV per query)
        return torch.baddbmm(beta.unsqueeze(1), t.unsqueeze(1), g.transpose(1, 2))[:, 0].float()

    # ------------------------------------------------------------------ reference
    def _decode_reference(self, feat: Tensor, coord: Tensor, cell: Tensor) -> Tensor:
        """The official query step by step on the unfolded whole grid (``feat`` (B, C·9, h, w))."""
        b, c9, h, w = feat.shape
        corners = make_coord((h, w), flatten=False, device=feat.device)
        corners = corners - const([1.0 / h, 1.0 / w], feat.device)  # LR pixels' top-left corners
        corners = corners.permute(2, 0, 1).unsqueeze(0).expand(b, 2, h, w)
        corner = coord - cell / 2
        grid = (corner + 1e-6).clamp(-1 + 1e-6, 1 - 1e-6).flip(-1).unsqueeze(1)
        q_feat = F.grid_sample(feat, grid, mode="nearest", align_corners=False)[:, :, 0, :].permute(0, 2, 1)
        q_corner = F.grid_sample(corners, grid, mode="nearest", align_corners=False)[:, :, 0, :].permute(
            0, 2, 1
        )
        rel = (corner - q_corner) * const([h / 2, w / 2], feat.device)
        r_rev = cell[..., :1] * (h / 2)
        q = coord.shape[1]
        weight = self.mlp(torch.cat([rel, r_rev], dim=-1)).view(b * q, c9, self.out_dim)
        return torch.bmm(q_feat.reshape(b * q, 1, c9), weight).view(b, q, self.out_dim)
