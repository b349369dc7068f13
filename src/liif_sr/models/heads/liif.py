"""The LIIF head: decode RGB at continuous coordinates from a latent grid.

Two equivalent paths (:attr:`LIIFHead.fast`):

* reference (``fast=False``) — a faithful re-implementation of the official
  algorithm (3x3 feature unfolding, four nearest-latent lookups with ``grid_sample``, relative coordinate
  and cell scaled by the latent size, area weights with the diagonal swap), on whole-grid states. It is the
  reference every fast path is tested against.
* fast (default) — the same function computed with the first MLP layer factorised: the layer's latent part
  ``W_feat @ unfold(z)`` is identical for all queries that hit the same latent, so it is computed once per
  latent pixel as a 3x3 convolution (never materialising the 9x unfolded tensor) and gathered per query
  (256 values instead of 576) for all four ensemble members in one gather. The coordinate/cell part of the
  first layer is added per query. It also decodes windows of the latent grid (exact tiling).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from liif_sr.coords import make_coord
from liif_sr.models.heads.base import DecoderHead, HeadState, window_of
from liif_sr.models.heads.cpu_pool import run_blocks
from liif_sr.models.heads.geometry import (
    area_blend,
    channels_last_rows,
    const,
    ensemble_geometry,
    ensemble_shifts,
    local_rows,
    validate_latent,
    validate_queries,
)
from liif_sr.models.heads.latent_linear import linear_as_conv2d
from liif_sr.models.mlp import MLP
from liif_sr.models.registry import register_head

_MODE_REMOVED = (
    "LIIFHead.mode was removed: use head.fast (True: the fast path, False: the reference algorithm)"
)
_CPU_BLOCK = 2048  # query rows per MLP block in CPU inference (activations stay in cache)


def _cpu_autocast() -> tuple[bool, torch.dtype]:
    try:
        return torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")
    except TypeError:  # torch < 2.4
        return torch.is_autocast_cpu_enabled(), torch.get_autocast_cpu_dtype()


def _decode_rows_cpu(
    layers: nn.Sequential, rows: Tensor, index: Tensor, extra: Tensor, w_rest: Tensor
) -> Tensor:
    """CPU inference part of :meth:`LIIFHead.decode_rows`: independent blocks of ``_CPU_BLOCK`` rows.

    Each block runs the whole MLP (in-place first-layer add and ReLU) while its activations are in cache,
    about 2x faster than whole-chunk matrices. With several torch threads the blocks are spread over that
    many worker threads, each running single-threaded ops (:func:`~liif_sr.models.heads.cpu_pool.run_blocks`).
    Thread-local state (inference mode, no_grad, autocast) is re-entered in the workers.
    """
    n = index.shape[0]
    out = torch.empty(n, layers[-1].out_features, dtype=torch.float32)
    w_t, tail = w_rest.t(), list(layers)[1:]
    cast_on, cast_dtype = _cpu_autocast()
    inference = torch.is_inference_mode_enabled()  # thread-local too (Lightning validates in inference mode)

    def work(start: int) -> None:
        with (
            torch.inference_mode(inference),
            torch.no_grad(),
            torch.autocast("cpu", dtype=cast_dtype, enabled=cast_on),
        ):
            x = rows.index_select(0, index[start : start + _CPU_BLOCK])
            x.addmm_(extra[start : start + _CPU_BLOCK].to(x.dtype), w_t)
            for layer in tail:
                x = x.clamp_min_(0) if isinstance(layer, nn.ReLU) else layer(x)
            out[start : start + _CPU_BLOCK] = x

    run_blocks(work, range(0, n, _CPU_BLOCK))  # a thread pool (models/heads/cpu_pool.py)
    return out


@dataclass
class LIIFState(HeadState):
    """Prepared LIIF latent window: the factorised first-layer term (fast) or the unfolded latent (reference).

    Attributes:
        proj: (B, hidden, th, tw) channels-last :meth:`LIIFHead.latent_projection`, or None.
        feat: (B, C*9 or C, h, w) the (unfolded) whole latent grid for the reference path, or None.
    """

    proj: Tensor | None = None
    feat: Tensor | None = None


@register_head("liif")
class LIIFHead(DecoderHead):
    """Local implicit image function decoder.

    Args:
        in_channels: latent channels ``C`` of the encoder (64).
        hidden_list: MLP hidden sizes (``[256] * 4`` in the paper).
        out_dim: output channels (3).
        feat_unfold: concatenate each latent's 3x3 neighbourhood (``C*9`` inputs).
        local_ensemble: blend the 4 surrounding latents with area weights.
        cell_decode: feed the query cell to the MLP.
        fast: factorised first layer (default) or the reference algorithm (whole-grid states only; a
            window state always takes the factorised path).

    ``reach = 2``: a query reads the latents one cell around its own LR pixel (ensemble), and each of those
    depends on its 3x3 neighbourhood (unfold); see :mod:`liif_sr.inference.tiling`.
    """

    reach = 2
    auto_bf16 = True  # bf16 decode measured within 0.0009 dB of fp32 (Set5/Set14 x2-x4, shipped weights)

    def __init__(
        self,
        in_channels: int = 64,
        hidden_list: Sequence[int] = (256, 256, 256, 256),
        out_dim: int = 3,
        feat_unfold: bool = True,
        local_ensemble: bool = True,
        cell_decode: bool = True,
        fast: bool = True,
    ) -> None:
        super().__init__()
        if len(hidden_list) < 1:
            raise ValueError("LIIFHead: hidden_list needs at least one layer")
        self.in_channels = in_channels
        self.feat_unfold, self.local_ensemble, self.cell_decode = feat_unfold, local_ensemble, cell_decode
        self.fast = bool(fast)
        self.feat_dim = in_channels * 9 if feat_unfold else in_channels
        self.mlp = MLP(self.feat_dim + 2 + (2 if cell_decode else 0), out_dim, list(hidden_list))
        self.config = {
            "hidden_list": [int(h) for h in hidden_list],
            "out_dim": out_dim,
            "feat_unfold": feat_unfold,
            "local_ensemble": local_ensemble,
            "cell_decode": cell_decode,
        }

    @property
    def mode(self) -> str:
        """Removed (it was the old spelling of :attr:`fast`): reading or setting it raises, so that old code
        fails loudly instead of silently running the other path."""
        raise AttributeError(_MODE_REMOVED)

    @mode.setter
    def mode(self, value: str) -> None:
        raise AttributeError(_MODE_REMOVED)

    def state_bytes_per_latent(self, dtype_bytes: int = 4) -> int:
        width = self.mlp.hidden_list[0] if self.fast else self.feat_dim
        return width * dtype_bytes

    def decode_bytes_per_query(self, dtype_bytes: int = 4) -> int:
        return (4 if self.local_ensemble else 1) * self.mlp.hidden_list[0] * 3 * dtype_bytes

    # ------------------------------------------------------------------ contract
    def prepare(
        self,
        feat: Tensor,
        lr: Tensor | None = None,
        offset: tuple[int, int] | None = None,
        full_size: tuple[int, int] | None = None,
    ) -> LIIFState:
        """Fast: the latent projection of the window; reference (whole grid only): the unfolded latent."""
        validate_latent("LIIFHead", feat, self.in_channels)
        offset, full, size = window_of(feat, offset, full_size)
        if not self.fast and size == full:
            b, c, h, w = feat.shape
            unfolded = F.unfold(feat, 3, padding=1).view(b, c * 9, h, w) if self.feat_unfold else feat
            return LIIFState(offset, full, size, feat=unfolded)
        return LIIFState(offset, full, size, proj=self.latent_projection(feat))

    def decode(self, state: LIIFState, coord: Tensor, cell: Tensor | None = None) -> Tensor:
        """(B, Q, 2) global coordinates (and cells) → (B, Q, out_dim) in the normalised output space."""
        ref = state.proj is None
        batch = (state.feat if ref else state.proj).shape[0]
        validate_queries("LIIFHead", batch, coord, cell, self.cell_decode)
        if ref:
            return self._decode_reference(state.feat, coord, cell)
        idx, rel_coord, extra = self.query_geometry(coord, cell, *state.full_size)
        b, s, q, _ = idx.shape
        flat = local_rows(idx, state, "LIIFHead")
        rows = channels_last_rows(state.proj)
        pred = self.decode_rows(rows, flat.view(-1), extra.reshape(b * s * q, -1)).view(b, s, q, -1)
        return self.blend(pred, rel_coord)

    # ------------------------------------------------------------------ reference
    def _decode_reference(self, feat: Tensor, coord: Tensor, cell: Tensor | None) -> Tensor:
        """The reference algorithm on the (unfolded) whole grid, step by step as in the paper's code (docs/method.md: LIIF query)."""
        b, _, h, w = feat.shape
        shifts, eps = ensemble_shifts(h, w, feat.device, self.local_ensemble)
        feat_coord = make_coord((h, w), flatten=False, device=feat.device, dtype=coord.dtype)
        feat_coord = feat_coord.permute(2, 0, 1).unsqueeze(0).expand(b, 2, h, w)
        scale = const([h, w], feat.device, coord.dtype)
        preds, areas = [], []
        for shift in shifts:
            coord_ = (coord + shift.to(coord.dtype) + eps).clamp(-1 + 1e-6, 1 - 1e-6)
            grid = coord_.flip(-1).unsqueeze(1)
            q_feat = F.grid_sample(feat, grid, mode="nearest", align_corners=False)[:, :, 0, :].permute(
                0, 2, 1
            )
            q_coord = F.grid_sample(feat_coord, grid, mode="nearest", align_corners=False)
            q_coord = q_coord[:, :, 0, :].permute(0, 2, 1)
            rel_coord = (coord - q_coord) * scale
            inp = [q_feat, rel_coord]
            if self.cell_decode:
                inp.append(cell * scale)
            preds.append(self.mlp(torch.cat(inp, dim=-1)))
            areas.append((rel_coord[..., 0] * rel_coord[..., 1]).abs() + 1e-9)
        tot = torch.stack(areas).sum(dim=0)
        if self.local_ensemble:
            areas = areas[::-1]  # diagonal swap: 0<->3, 1<->2
        return sum(p * (a / tot).unsqueeze(-1) for p, a in zip(preds, areas, strict=True))

    # ------------------------------------------------------------------ fast
    def latent_projection(self, feat: Tensor) -> Tensor:
        """First-layer latent term for every latent pixel: ``(B, C, h, w)`` → ``(B, hidden, h, w)``.

        Equals ``W_feat @ unfold(feat) + b`` at each pixel (zero padding as in ``F.unfold``).
        """
        first = self.mlp.layers[0]
        w_feat = first.weight[:, : self.feat_dim]
        k = 3 if self.feat_unfold else 1
        kernel = w_feat.reshape(w_feat.shape[0], self.in_channels, k, k).to(feat.dtype)
        proj = linear_as_conv2d(feat, kernel, first.bias.to(feat.dtype), padding=k // 2)
        # channels-last: each latent's ``hidden`` values are one contiguous row for the per-query gather
        return proj.contiguous(memory_format=torch.channels_last)

    def decode_rows(self, rows: Tensor, index: Tensor, extra: Tensor) -> Tensor:
        """MLP output for first-layer latent terms ``rows[index]`` plus the coordinate/cell inputs ``extra``.

        Args:
            rows: (N, hidden) latent projections, one row per latent pixel.
            index: (R,) long, the row of each query (and ensemble member).
            extra: (R, 2 or 4) fp32 relative coordinate (and cell).

        Returns:
            (R, out_dim) fp32. CPU inference runs in cache-sized blocks (see :func:`_decode_rows_cpu`);
            the arithmetic is the same on every path.
        """
        first = self.mlp.layers[0]
        w_rest = first.weight[:, self.feat_dim :].to(rows.dtype)
        grad = torch.is_grad_enabled() and (rows.requires_grad or first.weight.requires_grad)
        if rows.device.type == "cpu" and not grad:
            return _decode_rows_cpu(self.mlp.layers, rows, index, extra, w_rest)
        x = rows.index_select(0, index)
        e = extra.to(x.dtype)
        if grad:
            # in place on fresh (R, hidden) tensors that autograd does not save (index_select's backward
            # needs only the index, addmm's the two factors): one allocation per layer instead of three
            x = x.addmm_(e, w_rest.t())
            for layer in self.mlp.layers[1:]:
                x = F.relu_(x) if isinstance(layer, nn.ReLU) else layer(x)
        else:
            x = x.addmm_(e, w_rest.t())
            for layer in self.mlp.layers[1:]:
                x = x.clamp_min_(0) if isinstance(layer, nn.ReLU) else layer(x)
        return x.float()

    def query_geometry(
        self, coord: Tensor, cell: Tensor | None, h: int, w: int
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Per ensemble member: nearest latent, relative coordinate and the MLP's coordinate/cell inputs.

        Computed in fp32 bit for bit as the reference's ``grid_sample`` lookups do: the index rounding, and
        the latent centres as :func:`make_coord` computes them (``(-1 + r) + 2r * i``, not ``-1 + (2i+1)/n``).
        This matters: where the query lies on a latent centre line at the border, all four ``rel_coord``
        products are ~0 and the area weights are ratios of ~1e-9 values, so one ulp in a centre moves the
        output by ~1e-3.

        Returns:
            ``idx`` (B, S, Q, 2) long global latent (row, col); ``rel_coord`` (B, S, Q, 2) and ``extra``
            (B, S, Q, 2 or 4) fp32.
        """
        idx, rel_coord = ensemble_geometry(coord, h, w, self.local_ensemble)
        extra = rel_coord
        if self.cell_decode:
            s = idx.shape[1]
            rel_cell = (cell.float() * const([h, w], coord.device)).unsqueeze(1).expand(-1, s, -1, -1)
            extra = torch.cat([rel_coord, rel_cell], dim=-1)
        return idx.long(), rel_coord, extra

    def blend(self, pred: Tensor, rel_coord: Tensor) -> Tensor:
        """Area-weighted merge (diagonal swap) of per-member ``pred`` (B, S, Q, out) → (B, Q, out)."""
        return area_blend(pred, rel_coord, swap=self.local_ensemble)
