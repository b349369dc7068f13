"""The encoder contract: LR image (normalised) → latent grid of the same spatial size.

Callers (the model, tiling, memory budgets, checkpoints) use only: ``name``, ``out_dim``, ``config``,
``receptive_radius``, ``input_multiple``, :meth:`Encoder.pad_input` and
:meth:`Encoder.activation_bytes_per_pixel`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from torch import Tensor, nn


class Encoder(nn.Module):
    """Base class of encoders: ``(B, 3, h, w)`` in [-1, 1] → ``(B, out_dim, h, w)``.

    Class attributes:
        name: registry name (``"edsr_baseline"``, ``"rdn"``, ``"swinir"``), stored in checkpoints.
        official_name: the ``encoder_spec.name`` of official LIIF/LTE checkpoints (``"edsr-baseline"``), or
            None; :meth:`official_config` and :meth:`official_state_dict` convert such a spec.

    Instance attributes:
        out_dim: latent channels.
        config: plain data; ``type(enc)(**config)`` rebuilds the encoder.
    """

    name: ClassVar[str]
    official_name: ClassVar[str | None] = None
    out_dim: int
    config: dict[str, Any]

    @property
    def receptive_radius(self) -> int | None:
        """LR pixels of context on each side that influence one latent; None when unbounded (no exact
        tiling: e.g. shifted-window attention spans the whole image)."""
        return None

    @property
    def input_multiple(self) -> int:
        """The training input's height and width must be multiples of this (SwinIR: its window); inference
        pads by :meth:`pad_input` instead. Default 1."""
        return 1

    def pad_input(self, x: Tensor) -> Tensor:
        """Inference padding of the normalised input ``x`` (B, 3, h, w) → (B, 3, h', w'), original at the
        top-left. The model decodes the padded latent with coordinates mapped into the padded frame
        (``c' = (c + 1) h / h' - 1``, ``cell' = cell h / h'``). Default: no padding."""
        return x

    def activation_bytes_per_pixel(self, dtype_bytes: int = 4) -> int:
        """Estimated peak activation bytes per LR pixel of one inference forward (no grad)."""
        return (5 * int(self.out_dim) + 3) * dtype_bytes

    # ------------------------------------------------------------------ official checkpoints
    @classmethod
    def official_config(cls, args: dict[str, Any]) -> dict[str, Any]:
        """Our encoder config from an official ``encoder_spec.args`` (ValueError when it has an upsampler)."""
        raise NotImplementedError(f"{cls.__name__} has no official checkpoint format")

    @classmethod
    def official_state_dict(cls, sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Our encoder state dict from the official one (keys relative to the encoder). Default: unchanged."""
        return dict(sd)


def require_no_upsampling(cls: type, args: dict[str, Any]) -> dict[str, Any]:
    """``args`` without ``no_upsampling``, which must be true (else the network is a fixed-scale SR model)."""
    args = dict(args)
    if not args.pop("no_upsampling", False):
        raise ValueError(
            f"official {cls.official_name} encoder has an upsampler (no_upsampling is false): a fixed-scale "
            "network, not a LIIF encoder"
        )
    return args
