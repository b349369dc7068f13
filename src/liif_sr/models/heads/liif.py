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

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from liif_sr.coords import make_coord
from liif_sr.models.mlp import MLP

_EPS_SHIFT = 1e-6


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
        v = torch.tensor([[-1.0, -1.0], [-1.0, 1.0], [1.0, -1.0], [1.0, 1.0]], device=device)
        return v * torch.tensor([1.0 / h, 1.0 / w], device=device), _EPS_SHIFT

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
        scale = torch.tensor([h, w], device=feat.device, dtype=coord.dtype)
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
        return F.conv2d(feat, kernel, first.bias.to(feat.dtype), padding=k // 2)

    def forward_fast(
        self, feat: Tensor, coord: Tensor, cell: Tensor | None = None, proj: Tensor | None = None
    ) -> Tensor:
        """Factorised path; ``proj`` may be passed when :meth:`latent_projection` was precomputed."""
        b, _, h, w = feat.shape
        if proj is None:
            proj = self.latent_projection(feat)
        hidden = proj.shape[1]
        shifts, eps = self._shifts(h, w, coord.device)
        s, q = shifts.shape[0], coord.shape[1]
        coord32 = coord.float()
        coord_ = (coord32.unsqueeze(1) + shifts.view(1, s, 1, 2) + eps).clamp(-1 + 1e-6, 1 - 1e-6)
        size = torch.tensor([h, w], device=coord.device, dtype=torch.float32)
        # nearest latent index exactly as grid_sample(mode="nearest", align_corners=False) rounds
        idx = torch.round(((coord_ + 1) * size - 1) / 2)
        idx = torch.minimum(idx.clamp_min(0), size - 1)
        q_coord = -1 + (2 * idx + 1) / size
        rel_coord = (coord32.unsqueeze(1) - q_coord) * size  # (B, S, Q, 2)
        flat = (idx[..., 0] * w + idx[..., 1]).long().view(b, s * q, 1).expand(-1, -1, hidden)
        gathered = torch.gather(proj.flatten(2).transpose(1, 2), 1, flat).view(b, s, q, hidden)
        first = self.mlp.layers[0]
        w_rest = first.weight[:, self.feat_dim :]
        extra = rel_coord
        if self.cell_decode:
            rel_cell = (cell.float() * size).unsqueeze(1).expand(-1, s, -1, -1)
            extra = torch.cat([rel_coord, rel_cell], dim=-1)
        x = gathered + F.linear(extra.to(gathered.dtype), w_rest.to(gathered.dtype))
        for layer in self.mlp.layers[1:]:
            x = layer(x)
        pred = x.float()  # (B, S, Q, out)
        area = (rel_coord[..., 0] * rel_coord[..., 1]).abs() + 1e-9  # (B, S, Q), fp32
        tot = area.sum(dim=1, keepdim=True)
        if self.local_ensemble:
            area = area.flip(1)  # diagonal swap
        return (pred * (area / tot).unsqueeze(-1)).sum(dim=1)
