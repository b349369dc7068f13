"""The LIIF head: decode RGB at continuous coordinates from a latent grid.

Two equivalent paths:

* ``plain`` — a faithful re-implementation of the official algorithm (3x3 feature unfolding, four
  nearest-latent lookups with ``grid_sample``, relative coordinate and cell scaled by the latent size,
  area weights with the diagonal swap). It is the reference every fast path is tested against.
* ``fast`` — the same function computed with the first MLP layer factorised: the layer's latent part
  ``W_feat @ unfold(z)`` is identical for all queries that hit the same latent, so it is computed once per
  latent pixel as a 3x3 convolution (never materialising the 9x unfolded tensor) and gathered per query
  (256 values instead of 576) for all four ensemble members in one gather. The coordinate/cell part of the
  first layer is added per query.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from liif_sr.coords import make_coord
from liif_sr.models.mlp import MLP

_EPS_SHIFT = 1e-6
_CPU_BLOCK = 2048  # query rows per MLP block in CPU inference (activations stay in cache)
_CPU_THREADS_LOCK = threading.Lock()  # guards the temporary torch.set_num_threads(1) of _decode_rows_cpu


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
    many worker threads, each running single-threaded ops: no per-op barrier, so a core taken by another
    process does not stall the others (intra-op threading on small blocks was ~3x slower on a shared CPU).
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

    starts = range(0, n, _CPU_BLOCK)
    threads = torch.get_num_threads()
    if threads == 1 or len(starts) <= 1:
        for start in starts:
            work(start)
        return out
    with _CPU_THREADS_LOCK:
        torch.set_num_threads(1)
        try:
            with ThreadPoolExecutor(min(threads, len(starts))) as pool:
                list(pool.map(work, starts))
        finally:
            torch.set_num_threads(threads)
    return out


def _const(values: Sequence[float], device: torch.device, dtype: torch.dtype = torch.float32) -> Tensor:
    """``torch.tensor(values, device=device)`` without a host-device synchronisation.

    On CUDA, ``torch.tensor(list, device=...)`` is a blocking copy that waits for the stream every call (the
    training step would stall the CPU each time); fill kernels take the values as arguments instead.
    """
    if device.type == "cpu":
        return torch.tensor(values, dtype=dtype, device=device)
    return torch.cat([torch.full((1,), float(v), dtype=dtype, device=device) for v in values])


def _validate(feat: Tensor, coord: Tensor, cell: Tensor | None, cell_decode: bool) -> None:
    if feat.dim() != 4:
        raise ValueError(f"LIIFHead: feat must be (B, C, h, w), got {tuple(feat.shape)}")
    if coord.dim() != 3 or coord.shape[-1] != 2 or coord.shape[0] != feat.shape[0]:
        raise ValueError(
            f"LIIFHead: coord must be (B, Q, 2) with B={feat.shape[0]}, got {tuple(coord.shape)}"
        )
    if cell_decode:
        if cell is None:
            raise ValueError("LIIFHead: cell_decode=True needs a cell tensor (B, Q, 2)")
        if cell.shape != coord.shape:
            raise ValueError(f"LIIFHead: cell {tuple(cell.shape)} must match coord {tuple(coord.shape)}")


class LIIFHead(nn.Module):
    """Local implicit image function decoder.

    Args:
        in_channels: latent channels ``C`` of the encoder (64).
        hidden_list: MLP hidden sizes (``[256] * 4`` in the paper).
        out_dim: output channels (3).
        feat_unfold: concatenate each latent's 3x3 neighbourhood (``C*9`` inputs).
        local_ensemble: blend the 4 surrounding latents with area weights.
        cell_decode: feed the query cell to the MLP.
        mode: ``"fast"`` (factorised first layer, default) or ``"plain"`` (reference algorithm).
    """

    def __init__(
        self,
        in_channels: int = 64,
        hidden_list: Sequence[int] = (256, 256, 256, 256),
        out_dim: int = 3,
        feat_unfold: bool = True,
        local_ensemble: bool = True,
        cell_decode: bool = True,
        mode: str = "fast",
    ) -> None:
        super().__init__()
        if mode not in ("fast", "plain"):
            raise ValueError(f"LIIFHead: mode must be 'fast' or 'plain', got {mode!r}")
        if len(hidden_list) < 1:
            raise ValueError("LIIFHead: hidden_list needs at least one layer")
        self.in_channels = in_channels
        self.feat_unfold, self.local_ensemble, self.cell_decode = feat_unfold, local_ensemble, cell_decode
        self.mode = mode
        self.feat_dim = in_channels * 9 if feat_unfold else in_channels
        self.mlp = MLP(self.feat_dim + 2 + (2 if cell_decode else 0), out_dim, list(hidden_list))
        self.config = {
            "hidden_list": [int(h) for h in hidden_list],
            "out_dim": out_dim,
            "feat_unfold": feat_unfold,
            "local_ensemble": local_ensemble,
            "cell_decode": cell_decode,
        }

    # ------------------------------------------------------------------ shared
    def _shifts(self, h: int, w: int, device: torch.device) -> tuple[Tensor, float]:
        """Ensemble shifts ``(S, 2)`` in global units (order (-1,-1), (-1,+1), (+1,-1), (+1,+1)) and eps."""
        if not self.local_ensemble:
            return torch.zeros(1, 2, device=device), 0.0
        sy, sx = 1.0 / h, 1.0 / w  # rounded to float32 exactly as torch.tensor([1/h, 1/w]) * (+-1)
        return _const([-sy, -sx, -sy, sx, sy, -sx, sy, sx], device).view(4, 2), _EPS_SHIFT

    def forward(self, feat: Tensor, coord: Tensor, cell: Tensor | None = None) -> Tensor:
        """Decode ``coord`` (B, Q, 2) in [-1, 1] with ``cell`` (B, Q, 2) from ``feat`` (B, C, h, w).

        Returns:
            (B, Q, out_dim) in the normalised output space ((x - 0.5) / 0.5).
        """
        _validate(feat, coord, cell, self.cell_decode)
        if self.mode == "plain":
            return self.forward_plain(feat, coord, cell)
        return self.forward_fast(feat, coord, cell)

    # ------------------------------------------------------------------ plain
    def forward_plain(self, feat: Tensor, coord: Tensor, cell: Tensor | None = None) -> Tensor:
        """The reference algorithm, step by step as in the paper's code (see the spec §1.6)."""
        b, c, h, w = feat.shape
        if self.feat_unfold:
            feat = F.unfold(feat, 3, padding=1).view(b, c * 9, h, w)
        shifts, eps = self._shifts(h, w, feat.device)
        feat_coord = make_coord((h, w), flatten=False, device=feat.device, dtype=coord.dtype)
        feat_coord = feat_coord.permute(2, 0, 1).unsqueeze(0).expand(b, 2, h, w)
        scale = _const([h, w], feat.device, coord.dtype)
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
        proj = F.conv2d(feat, kernel, first.bias.to(feat.dtype), padding=k // 2)
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
            x = x + F.linear(e, w_rest)
            for layer in self.mlp.layers[1:]:
                x = layer(x)
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
            ``idx`` (B, S, Q, 2) long latent (row, col); ``rel_coord`` (B, S, Q, 2) and ``extra``
            (B, S, Q, 2 or 4) fp32.
        """
        shifts, eps = self._shifts(h, w, coord.device)
        s = shifts.shape[0]
        coord32 = coord.float()
        coord_ = (coord32.unsqueeze(1) + shifts.view(1, s, 1, 2) + eps).clamp(-1 + 1e-6, 1 - 1e-6)
        size = _const([h, w], coord.device)
        # nearest latent index exactly as grid_sample(mode="nearest", align_corners=False) rounds
        idx = torch.round(((coord_ + 1) * size - 1) / 2)
        idx = torch.minimum(idx.clamp_min(0), size - 1)
        ry, rx = 2.0 / (2 * h), 2.0 / (2 * w)
        q_coord = idx * _const([2 * ry, 2 * rx], coord.device) + _const([-1.0 + ry, -1.0 + rx], coord.device)
        rel_coord = (coord32.unsqueeze(1) - q_coord) * size  # (B, S, Q, 2)
        extra = rel_coord
        if self.cell_decode:
            rel_cell = (cell.float() * size).unsqueeze(1).expand(-1, s, -1, -1)
            extra = torch.cat([rel_coord, rel_cell], dim=-1)
        return idx.long(), rel_coord, extra

    def blend(self, pred: Tensor, rel_coord: Tensor) -> Tensor:
        """Area-weighted merge (diagonal swap) of per-member ``pred`` (B, S, Q, out) → (B, Q, out)."""
        area = (rel_coord[..., 0] * rel_coord[..., 1]).abs() + 1e-9  # (B, S, Q), fp32
        tot = area.sum(dim=1, keepdim=True)
        if self.local_ensemble:
            area = area.flip(1)  # diagonal swap
        return (pred * (area / tot).unsqueeze(-1)).sum(dim=1)

    def forward_fast(
        self, feat: Tensor, coord: Tensor, cell: Tensor | None = None, proj: Tensor | None = None
    ) -> Tensor:
        """Factorised path; ``proj`` may be passed when :meth:`latent_projection` was precomputed."""
        b, _, h, w = feat.shape
        if proj is None:
            proj = self.latent_projection(feat)
        idx, rel_coord, extra = self.query_geometry(coord, cell, h, w)
        _, s, q, _ = idx.shape
        batch_base = (torch.arange(b, device=idx.device) * (h * w)).view(b, 1, 1)
        flat = idx[..., 0] * w + idx[..., 1] + batch_base  # row in (B*h*w, hidden)
        rows = proj.permute(0, 2, 3, 1).reshape(b * h * w, proj.shape[1])  # a view: proj is channels-last
        pred = self.decode_rows(rows, flat.view(-1), extra.reshape(b * s * q, -1)).view(b, s, q, -1)
        return self.blend(pred, rel_coord)
