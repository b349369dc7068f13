"""EDSR-baseline encoder (Lim et al. 2017) without upsampler, as used by LIIF.

Parameter names follow the official LIIF/EDSR code (``head.0``, ``body.{i}.body.{0,2}``, ``body.16``)
so that official checkpoints load by key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from torch import Tensor, nn

from liif_sr.models.encoders.base import Encoder, require_no_upsampling
from liif_sr.models.registry import register_encoder


class ResBlock(nn.Module):
    """Conv3x3 → ReLU → Conv3x3 with a scaled identity skip; no batch norm."""

    def __init__(self, n_feats: int, res_scale: float = 1.0) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(n_feats, n_feats, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(n_feats, n_feats, 3, padding=1),
        )
        self.res_scale = res_scale

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x) * self.res_scale if self.res_scale != 1 else x + self.body(x)


@register_encoder("edsr_baseline")
class EDSRBaseline(Encoder):
    """EDSR(-baseline) feature extractor: ``(B, 3, h, w)`` in [-1, 1] → ``(B, n_feats, h, w)``.

    Args:
        n_resblocks: residual blocks (16 for EDSR-baseline).
        n_feats: feature channels (64), also the latent size ``out_dim``.
        res_scale: residual scaling (1 for the baseline).
        n_colors: input channels.
    """

    official_name: ClassVar[str] = "edsr-baseline"

    def __init__(self, n_resblocks: int = 16, n_feats: int = 64, res_scale: float = 1.0, n_colors: int = 3):
        super().__init__()
        if n_resblocks < 0 or n_feats < 1:
            raise ValueError(f"EDSRBaseline: bad sizes n_resblocks={n_resblocks}, n_feats={n_feats}")
        self.out_dim = n_feats
        self.config = {"n_resblocks": n_resblocks, "n_feats": n_feats, "res_scale": res_scale}
        self.head = nn.Sequential(nn.Conv2d(n_colors, n_feats, 3, padding=1))
        blocks: list[nn.Module] = [ResBlock(n_feats, res_scale) for _ in range(n_resblocks)]
        blocks.append(nn.Conv2d(n_feats, n_feats, 3, padding=1))
        self.body = nn.Sequential(*blocks)

    def forward(self, x: Tensor) -> Tensor:
        x = self.head(x)
        return self.body(x) + x

    @property
    def receptive_radius(self) -> int:
        """Pixels of context on each side that influence one latent (for exact tiling)."""
        return 1 + 2 * self.config["n_resblocks"] + 1

    @classmethod
    def official_config(cls, args: dict[str, Any]) -> dict[str, Any]:
        """``make_edsr_baseline(n_resblocks, n_feats, res_scale, scale, no_upsampling, rgb_range)``: the
        upsampler's ``scale`` and the unused ``rgb_range`` are dropped."""
        args = require_no_upsampling(cls, args)
        for unused in ("scale", "rgb_range", "n_colors"):
            args.pop(unused, None)
        return args

    @classmethod
    def official_state_dict(cls, sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Without ``sub_mean``/``add_mean`` (built but unused in the official forward)."""
        return {k: v for k, v in sd.items() if not k.startswith(("sub_mean.", "add_mean."))}
