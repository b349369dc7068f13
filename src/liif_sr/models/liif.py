"""LIIF: an encoder (LR → latent grid) plus a :class:`LIIFHead` (latent + coordinate → RGB)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from liif_sr.coords import make_cell, make_coord, to_padded_frame
from liif_sr.models.heads.liif import LIIFHead

HeadFactory = Callable[..., LIIFHead]


def _encoder_name(encoder: nn.Module) -> str:
    from liif_sr.models.registry import encoder_name

    return encoder_name(encoder)


class LIIF(nn.Module):
    """Local Implicit Image Function model.

    Images are float in [0, 1] at this API; internally the input is normalised to ``(x - 0.5) / 0.5``
    and the head predicts in that normalised space (as the paper's code does).

    Args:
        encoder: module mapping ``(B, 3, h, w)`` → ``(B, C, h, w)`` with an ``out_dim`` attribute.
        head: a :class:`LIIFHead`, or a factory (e.g. a Hydra ``_partial_``) called with
            ``in_channels=encoder.out_dim``.
    """

    def __init__(self, encoder: nn.Module, head: LIIFHead | HeadFactory) -> None:
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
        return {
            "encoder": {"name": _encoder_name(self.encoder), "args": dict(self.encoder.config)},
            "head": dict(self.head.config),
        }

    def encode(self, lr: Tensor) -> Tensor:
        """``lr`` (B, 3, h, w) in [0, 1] → latent (B, C, h, w), without inference padding."""
        if lr.dim() != 4 or lr.shape[1] != 3:
            raise ValueError(f"LIIF: lr must be (B, 3, h, w), got {tuple(lr.shape)}")
        return self.encoder((lr - 0.5) / 0.5)

    def _padded_frame(self, lr: Tensor) -> tuple[Tensor, tuple[float, float] | None]:
        """Normalised ``lr`` after the encoder's inference padding, ``(B, 3, h', w')``, and the frame ratio
        ``(h / h', w / w')`` for :func:`~liif_sr.coords.to_padded_frame` (None when nothing was padded)."""
        if lr.dim() != 4 or lr.shape[1] != 3:
            raise ValueError(f"LIIF: lr must be (B, 3, h, w), got {tuple(lr.shape)}")
        x = (lr - 0.5) / 0.5
        pad = getattr(self.encoder, "pad_input", None)
        x_pad = x if pad is None else pad(x)
        (h, w), (hp, wp) = x.shape[-2:], x_pad.shape[-2:]
        return x_pad, None if (hp, wp) == (h, w) else (h / hp, w / wp)

    def forward(self, lr: Tensor, coord: Tensor, cell: Tensor | None = None) -> Tensor:
        """Training forward: (B, Q, 3) prediction in the normalised space ((x - 0.5) / 0.5).

        No inference padding (as the official training: SwinIR's 48x48 crops are window multiples).
        """
        return self.head(self.encode(lr), coord, cell)

    def query(self, lr: Tensor, coord: Tensor, cell: Tensor | None = None) -> Tensor:
        """RGB at ``coord`` (B, Q, 2) in [-1, 1] with ``cell`` (B, Q, 2): (B, Q, 3) in [0, 1] space, unclamped.

        Inference: the encoder's :meth:`pad_input` applies and the padded latent is decoded at the mapped
        coordinates (identical to :meth:`forward` for encoders that do not pad).
        """
        x, frame = self._padded_frame(lr)
        if frame is not None:
            coord, cell = to_padded_frame(coord, cell, frame)
        return self.head(self.encoder(x), coord, cell) * 0.5 + 0.5

    @torch.no_grad()
    def upscale(
        self, lr: Tensor, size: tuple[int, int], chunk: int = 65536, cell_clip: float | None = None
    ) -> Tensor:
        """Render ``lr`` (B, 3, h, w) in [0, 1] at ``size = (H, W)``: (B, 3, H, W) clamped to [0, 1].

        The encoder runs once on the whole image (after its inference padding, see :meth:`query`); queries
        are decoded in chunks of ``chunk``.
        ``cell_clip`` (e.g. 4.0): use the cell of ×cell_clip for larger scales (LTE-style; off by default).
        """
        out_h, out_w = int(size[0]), int(size[1])
        if out_h < 1 or out_w < 1:
            raise ValueError(f"LIIF.upscale: size must be positive, got {size}")
        b, _, h, w = lr.shape
        x, frame = self._padded_frame(lr)
        feat = self.encoder(x)
        coord = make_coord((out_h, out_w), device=lr.device)
        cell = make_cell((out_h, out_w), coord.shape[0], device=lr.device)
        if cell_clip is not None:
            cell = clip_cell(cell, (h, w), cell_clip)
        if frame is not None:  # decode the padded latent (e.g. SwinIR) in its own coordinate frame
            coord, cell = to_padded_frame(coord, cell, frame)
        proj = self.head.latent_projection(feat) if self.head.mode == "fast" else None
        out = torch.empty(b, out_h * out_w, 3, device=lr.device, dtype=torch.float32)
        for start in range(0, coord.shape[0], chunk):
            c = coord[start : start + chunk].unsqueeze(0).expand(b, -1, -1)
            ce = cell[start : start + chunk].unsqueeze(0).expand(b, -1, -1)
            if proj is not None:
                pred = self.head.forward_fast(feat, c, ce, proj=proj)
            else:
                pred = self.head(feat, c, ce)
            out[:, start : start + chunk] = pred.float()
        out = (out * 0.5 + 0.5).clamp_(0, 1)
        return out.view(b, out_h, out_w, 3).permute(0, 3, 1, 2).contiguous()


def clip_cell(cell: Tensor, lr_size: tuple[int, int], max_scale: float) -> Tensor:
    """LTE-style cell clipping: never use a cell smaller than the one of ×``max_scale`` (per axis)."""
    floor = torch.tensor([2.0 / (lr_size[0] * max_scale), 2.0 / (lr_size[1] * max_scale)], device=cell.device)
    return torch.maximum(cell, floor.to(cell.dtype))
