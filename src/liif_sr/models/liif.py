"""LIIF: an encoder (LR → latent grid) plus a decoder head (latent + coordinate → RGB; LIIF, LTE, MetaSR)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from liif_sr.coords import make_cell, make_coord
from liif_sr.models.heads.base import DecoderHead

HeadFactory = Callable[..., DecoderHead]


class LIIF(nn.Module):
    """Local Implicit Image Function model.

    Images are float in [0, 1] at this API; internally the input is normalised to ``(x - 0.5) / 0.5``
    and the head predicts in that normalised space (as the paper's code does).

    Args:
        encoder: module mapping ``(B, 3, h, w)`` → ``(B, C, h, w)`` with an ``out_dim`` attribute.
        head: a :class:`DecoderHead` (e.g. :class:`LIIFHead`), or a factory (e.g. a Hydra ``_partial_``) called with
            ``in_channels=encoder.out_dim``.
    """

    def __init__(self, encoder: nn.Module, head: DecoderHead | HeadFactory) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head if isinstance(head, nn.Module) else head(in_channels=encoder.out_dim)
        if self.head.in_channels != encoder.out_dim:
            raise ValueError(
                f"LIIF: head expects {self.head.in_channels} latent channels, encoder gives {encoder.out_dim}"
            )

    @property
    def config(self) -> dict[str, Any]:
        """Plain-data description (no code) from which :func:`liif_sr.models.build_model` rebuilds it."""
        from liif_sr.models.registry import encoder_name  # the registry imports this module

        return {
            "encoder": {"name": encoder_name(self.encoder), "args": dict(self.encoder.config)},
            "head": {"name": self.head.name, **self.head.config},
        }

    def encode(self, lr: Tensor) -> Tensor:
        """``lr`` (B, 3, h, w) in [0, 1] → latent (B, C, h, w)."""
        return self.encoder(normalise(lr))

    def forward(self, lr: Tensor, coord: Tensor, cell: Tensor | None = None) -> Tensor:
        """Training forward: (B, Q, 3) prediction in the normalised space ((x - 0.5) / 0.5)."""
        return self.head(self.encode(lr), coord, cell, lr=normalise(lr))

    def query(self, lr: Tensor, coord: Tensor, cell: Tensor | None = None) -> Tensor:
        """RGB at ``coord`` (B, Q, 2) in [-1, 1] with ``cell`` (B, Q, 2): (B, Q, 3) in [0, 1] space, unclamped."""
        return self.forward(lr, coord, cell) * 0.5 + 0.5

    @torch.no_grad()
    def upscale(
        self, lr: Tensor, size: tuple[int, int], chunk: int = 65536, cell_clip: float | None = None
    ) -> Tensor:
        """Render ``lr`` (B, 3, h, w) in [0, 1] at ``size = (H, W)``: (B, 3, H, W) clamped to [0, 1].

        The encoder runs once on the whole image; queries are decoded in chunks of ``chunk``.
        ``cell_clip`` (e.g. 4.0): use the cell of ×cell_clip for larger scales (LTE-style; off by default).
        """
        out_h, out_w = int(size[0]), int(size[1])
        if out_h < 1 or out_w < 1:
            raise ValueError(f"LIIF.upscale: size must be positive, got {size}")
        b, _, h, w = lr.shape
        feat = self.encode(lr)
        coord = make_coord((out_h, out_w), device=lr.device)
        cell = make_cell((out_h, out_w), coord.shape[0], device=lr.device)
        if cell_clip is not None:
            cell = clip_cell(cell, (h, w), cell_clip)
        state = self.head.prepare(feat, normalise(lr))
        out = torch.empty(b, out_h * out_w, 3, device=lr.device, dtype=torch.float32)
        for start in range(0, coord.shape[0], chunk):
            c = coord[start : start + chunk].unsqueeze(0).expand(b, -1, -1)
            ce = cell[start : start + chunk].unsqueeze(0).expand(b, -1, -1)
            out[:, start : start + chunk] = self.head.decode(state, c, ce).float()
        out = (out * 0.5 + 0.5).clamp_(0, 1)
        return out.view(b, out_h, out_w, 3).permute(0, 3, 1, 2).contiguous()


def normalise(lr: Tensor) -> Tensor:
    """``lr`` (B, 3, h, w) in [0, 1] → the encoder's input space ``(lr - 0.5) / 0.5``."""
    if lr.dim() != 4 or lr.shape[1] != 3:
        raise ValueError(f"LIIF: lr must be (B, 3, h, w), got {tuple(lr.shape)}")
    return (lr - 0.5) / 0.5


def clip_cell(cell: Tensor, lr_size: tuple[int, int], max_scale: float) -> Tensor:
    """LTE-style cell clipping: never use a cell smaller than the one of ×``max_scale`` (per axis)."""
    floor = torch.tensor([2.0 / (lr_size[0] * max_scale), 2.0 / (lr_size[1] * max_scale)], device=cell.device)
    return torch.maximum(cell, floor.to(cell.dtype))
