"""Residual Dense Network encoder (Zhang et al. 2018) without upsampler, as used by LIIF.

Parameter names follow the official code (``SFENet1``, ``RDBs.{i}.convs.{c}.conv.0``, ``LFF``, ``GFF``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from liif_sr.models.encoders.base import Encoder, require_no_upsampling
from liif_sr.models.registry import register_encoder

#: (D blocks, C convs per block, G growth) per RDN config
RDN_CONFIGS: dict[str, tuple[int, int, int]] = {"A": (20, 6, 32), "B": (16, 8, 64)}


class _RDBConv(nn.Module):
    def __init__(self, in_channels: int, growth: int, k: int = 3) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(in_channels, growth, k, padding=k // 2), nn.ReLU())

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat((x, self.conv(x)), 1)


class _RDB(nn.Module):
    def __init__(self, g0: int, growth: int, n_convs: int, k: int = 3) -> None:
        super().__init__()
        self.convs = nn.Sequential(*[_RDBConv(g0 + c * growth, growth, k) for c in range(n_convs)])
        self.LFF = nn.Conv2d(g0 + n_convs * growth, g0, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.LFF(self.convs(x)) + x


@register_encoder("rdn")
class RDN(Encoder):
    """RDN feature extractor: ``(B, 3, h, w)`` in [-1, 1] → ``(B, G0, h, w)``.

    Args:
        G0: base channels (64) and latent size ``out_dim``.
        config: ``"B"`` (D=16, C=8, G=64; LIIF's) or ``"A"`` (D=20, C=6, G=32).
        kernel_size: conv kernel size (3).
        D, C, G: override the config's numbers (for reduced models).
    """

    official_name: ClassVar[str] = "rdn"

    def __init__(
        self,
        G0: int = 64,
        config: str = "B",
        kernel_size: int = 3,
        D: int | None = None,
        C: int | None = None,
        G: int | None = None,
        n_colors: int = 3,
    ) -> None:
        super().__init__()
        if config not in RDN_CONFIGS:
            raise ValueError(f"RDN: config must be one of {sorted(RDN_CONFIGS)}, got {config!r}")
        d0, c0, g0 = RDN_CONFIGS[config]
        D, C, G = D or d0, C or c0, G or g0
        k = kernel_size
        self.out_dim = G0
        self.config = {"G0": G0, "config": config, "kernel_size": k, "D": D, "C": C, "G": G}
        self.SFENet1 = nn.Conv2d(n_colors, G0, k, padding=k // 2)
        self.SFENet2 = nn.Conv2d(G0, G0, k, padding=k // 2)
        self.RDBs = nn.ModuleList([_RDB(G0, G, C, k) for _ in range(D)])
        self.GFF = nn.Sequential(nn.Conv2d(D * G0, G0, 1), nn.Conv2d(G0, G0, k, padding=k // 2))

    def forward(self, x: Tensor) -> Tensor:
        f1 = self.SFENet1(x)
        x = self.SFENet2(f1)
        outs = []
        for block in self.RDBs:
            x = block(x)
            outs.append(x)
        return self.GFF(torch.cat(outs, 1)) + f1

    @classmethod
    def official_config(cls, args: dict[str, Any]) -> dict[str, Any]:
        """``make_rdn(G0, RDNkSize, RDNconfig, scale, no_upsampling)``: ``RDNkSize`` → ``kernel_size``,
        ``RDNconfig`` → ``config``; the upsampler's ``scale`` is dropped."""
        args = require_no_upsampling(cls, args)
        for unused in ("scale", "n_colors"):
            args.pop(unused, None)
        renames = {"RDNkSize": "kernel_size", "RDNconfig": "config"}
        return {renames.get(k, k): v for k, v in args.items()}

    @property
    def receptive_radius(self) -> int:
        """Pixels of context on each side that influence one latent (for exact tiling)."""
        r = self.config["kernel_size"] // 2
        return r * (2 + self.config["D"] * self.config["C"] + 1)

    def activation_bytes_per_pixel(self, dtype_bytes: int = 4) -> int:
        """Dense block concat (x2 during cat) + D block outputs + their concat, plus f1, x and the output."""
        g0, d, c, g = (self.config[k] for k in ("G0", "D", "C", "G"))
        return (2 * (g0 + c * g) + 2 * d * g0 + 3 * g0) * dtype_bytes
