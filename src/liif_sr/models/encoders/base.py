"""The encoder contract: LR image (normalised) → latent grid of the same spatial size.

Callers (the model, tiling, memory budgets, checkpoints) use only: ``name``, ``out_dim``, ``config``,
``receptive_radius``, :meth:`Encoder.pad_input` and :meth:`Encoder.activation_bytes_per_pixel`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor, nn


class Encoder(nn.Module):
    """Base class of encoders: ``(B, 3, h, w)`` in [-1, 1] → ``(B, out_dim, h, w)``.

    Class attributes:
        name: registry name (``"edsr_baseline"``, ``"rdn"``, ``"swinir"``), stored in checkpoints.

    Instance attributes:
        out_dim: latent channels.
        config: plain data; ``type(enc)(**config)`` rebuilds the encoder.
    """

    name: ClassVar[str]
    out_dim: int
    config: dict[str, Any]

    @property
    def receptive_radius(self) -> int | None:
        """LR pixels of context on each side that influence one latent; None when unbounded (no exact
        tiling: e.g. shifted-window attention spans the whole image)."""
        return None

    def pad_input(self, x: Tensor) -> Tensor:
        """Inference padding of the normalised input ``x`` (B, 3, h, w) → (B, 3, h', w'), original at the
        top-left. The model decodes the padded latent with coordinates mapped into the padded frame
        (``c' = (c + 1) h / h' - 1``, ``cell' = cell h / h'``). Default: no padding."""
        return x

    def activation_bytes_per_pixel(self, dtype_bytes: int = 4) -> int:
        """Estimated peak activation bytes per LR pixel of one inference forward (no grad)."""
        return (5 * int(self.out_dim) + 3) * dtype_bytes
