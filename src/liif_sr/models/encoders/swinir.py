"""SwinIR encoder (Liang et al. 2021), classical body without upsampler, as LTE (Lee & Jin 2022) uses it.

``(B, 3, H, W)`` in [-1, 1] → ``(B, out_dim, H, W)``::

    x0 = conv_first(x)                                    # Conv3x3(3 → embed_dim)
    t  = patch_embed(x0)                                  # tokens (B, H*W, embed_dim) + LayerNorm
    t  = layers[i](t) for each RSTB                       # residual Swin transformer groups
    y  = conv_after_body(patch_unembed(norm(t))) + x0     # LayerNorm, Conv3x3 ('1conv')
    z  = LeakyReLU(0.01)(Conv3x3(embed_dim → out_dim)(y)) # conv_before_upsample (slope: PyTorch default)

LTE's ``make_swinir`` ignores its arguments and builds: embed 180, depths and heads 6x6, window 8,
mlp_ratio 2, qkv bias, no dropout, stochastic depth rate 0.1, ``out_dim`` 64 (the defaults here,
:data:`OFFICIAL_CONFIG`). The official ``img_size`` (48) only sized the stored ``attn_mask`` buffers; here
the masks are computed for every input size (see :mod:`.swinir_blocks`).

Input sizes. :meth:`SwinIR.forward` requires ``H`` and ``W`` to be multiples of ``window_size`` (the
official forward silently reflect-pads and returns a larger latent, which misplaces LIIF's coordinates).
Training crops (48x48) are multiples of 8 and run unpadded, as in the official training. At inference
:meth:`SwinIR.pad_input` implements the official evaluation padding (``test.py``): flip-concatenation to
``(h // ws + 1) * ws`` rows and columns, always 1..ws pixels, a whole window when ``h`` is a multiple of
``ws``; the model decodes the padded latent in the padded coordinate frame.

Tiling. Shifted windows make the receptive field span the whole image (``receptive_radius`` None), so
exact tiled inference is impossible and is refused.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from liif_sr.models.encoders.base import Encoder
from liif_sr.models.encoders.swinir_blocks import (
    RSTB,
    consume_official_buffers,
    image_to_tokens,
    shifted_window_mask,
    tokens_to_image,
)
from liif_sr.models.registry import register_encoder

#: the configuration of LTE's ``make_swinir`` (checkpoint ``encoder_spec.name == "swinir"``)
OFFICIAL_CONFIG: dict[str, Any] = {
    "embed_dim": 180,
    "depths": [6, 6, 6, 6, 6, 6],
    "num_heads": [6, 6, 6, 6, 6, 6],
    "window_size": 8,
    "mlp_ratio": 2.0,
    "drop_path_rate": 0.1,
    "out_dim": 64,
}

_BUFFER_KEY = re.compile(
    r"layers\.\d+\.residual_group\.blocks\.\d+\.(attn\.relative_position_index|attn_mask)$"
)


def flip_pad(x: Tensor, multiple: int) -> Tensor:
    """The official SwinIR evaluation padding: ``(B, C, h, w)`` → ``(B, C, (h//m + 1) m, (w//m + 1) m)``.

    Each axis is extended by its mirror image (``cat([x, flip(x)])``, so the edge pixel repeats) and cut
    to size. The mirror holds only ``n`` extra pixels, so each side must be at least ``ceil(m / 2)``:
    for smaller images the official ``test.py`` yields a grid that is not a multiple of the window (and
    then fails or decodes a reflect-padded latent in a mismatched frame); they are refused here.
    """
    if x.dim() != 4:
        raise ValueError(f"flip_pad: x must be (B, C, h, w), got {tuple(x.shape)}")
    h, w = x.shape[-2:]
    if min(h, w) < (multiple + 1) // 2:
        raise ValueError(
            f"SwinIR inference padding needs an input of at least {(multiple + 1) // 2} px per side "
            f"(the official flip padding to a multiple of {multiple} is undefined below); got {h}x{w}"
        )
    for dim, n in ((2, h), (3, w)):
        x = torch.cat([x, x.flip(dim)], dim).narrow(dim, 0, (n // multiple + 1) * multiple)
    return x


def official_state_dict_to_ours(
    state_dict: dict[str, Tensor], prefix: str = "encoder.", window_size: int = 8
) -> dict[str, Tensor]:
    """An official SwinIR state dict (keys under ``prefix``) → ours: the same keys without the
    ``attn.relative_position_index`` / ``attn_mask`` buffers (checked, then dropped; they are recomputed).

    Loading the official dict directly also works (blocks consume those keys); this is for converters.
    """
    out: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        if key.startswith(prefix) and _BUFFER_KEY.match(key[len(prefix) :]):
            block = key[: key.index("blocks.") + len("blocks.")]
            block += key[len(block) :].split(".", 1)[0] + "."
            consume_official_buffers({key: value}, block, window_size)
            continue
        out[key] = value
    return out


class _PatchEmbed(nn.Module):
    """Image → tokens + LayerNorm (official ``patch_embed`` with patch size 1; its only weights: ``norm``)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(image_to_tokens(x))


@register_encoder("swinir")
class SwinIR(Encoder):
    """SwinIR feature extractor: ``(B, 3, H, W)`` in [-1, 1], ``H``, ``W`` multiples of ``window_size``
    → ``(B, out_dim, H, W)``.

    Args:
        embed_dim: transformer channels (180).
        depths: Swin blocks per RSTB (six groups of 6).
        num_heads: attention heads per RSTB (``embed_dim`` divisible by each).
        window_size: attention window side (8); shifted blocks shift by ``window_size // 2``.
        mlp_ratio: MLP hidden / embed_dim (2).
        drop_path_rate: stochastic depth, linearly 0 → rate over all blocks (0.1; training only).
        out_dim: latent channels (64).
        n_colors: input channels.
    """

    official_name: ClassVar[str] = "swinir"

    def __init__(
        self,
        embed_dim: int = 180,
        depths: Sequence[int] = (6, 6, 6, 6, 6, 6),
        num_heads: Sequence[int] = (6, 6, 6, 6, 6, 6),
        window_size: int = 8,
        mlp_ratio: float = 2.0,
        drop_path_rate: float = 0.1,
        out_dim: int = 64,
        n_colors: int = 3,
    ) -> None:
        super().__init__()
        depths, num_heads = [int(d) for d in depths], [int(n) for n in num_heads]
        if len(depths) != len(num_heads) or not depths or min(depths) < 1:
            raise ValueError(
                f"SwinIR: depths {depths} and num_heads {num_heads} must be non-empty, equal length"
            )
        if any(n < 1 or embed_dim % n for n in num_heads):
            raise ValueError(
                f"SwinIR: embed_dim {embed_dim} must be divisible by every num_heads {num_heads}"
            )
        if window_size < 2 or out_dim < 1 or mlp_ratio <= 0 or not 0 <= drop_path_rate < 1:
            raise ValueError(
                f"SwinIR: bad window_size={window_size} (>= 2), out_dim={out_dim}, mlp_ratio={mlp_ratio} "
                f"or drop_path_rate={drop_path_rate}"
            )
        self.out_dim, self.window_size = int(out_dim), int(window_size)
        self.config = {
            "embed_dim": int(embed_dim),
            "depths": depths,
            "num_heads": num_heads,
            "window_size": self.window_size,
            "mlp_ratio": float(mlp_ratio),
            "drop_path_rate": float(drop_path_rate),
            "out_dim": self.out_dim,
        }
        self._has_shift = max(depths) > 1
        rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        starts = [sum(depths[:i]) for i in range(len(depths))]
        self.conv_first = nn.Conv2d(n_colors, embed_dim, 3, 1, 1)
        self.patch_embed = _PatchEmbed(embed_dim)
        self.layers = nn.ModuleList(
            RSTB(embed_dim, d, n, window_size, mlp_ratio, rates[s : s + d])
            for d, n, s in zip(depths, num_heads, starts, strict=True)
        )
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = nn.Conv2d(embed_dim, embed_dim, 3, 1, 1)
        self.conv_before_upsample = nn.Sequential(nn.Conv2d(embed_dim, out_dim, 3, 1, 1), nn.LeakyReLU(0.01))
        for m in self.modules():  # the official init; convolutions keep PyTorch's default
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.conv_first.in_channels:
            raise ValueError(
                f"SwinIR: x must be (B, {self.conv_first.in_channels}, H, W), got {tuple(x.shape)}"
            )
        size = (int(x.shape[-2]), int(x.shape[-1]))
        ws = self.window_size
        if size[0] % ws or size[1] % ws:
            raise ValueError(
                f"SwinIR: input {size[0]}x{size[1]} is not a multiple of the window size {ws}; crop training "
                "patches to a multiple (e.g. 48) and pad inference input with pad_input (ImplicitSR.upscale does)"
            )
        mask = shifted_window_mask(size, ws, ws // 2, x.device) if self._has_shift else None
        x0 = self.conv_first(x)
        t = self.patch_embed(x0)
        for layer in self.layers:
            t = layer(t, size, mask)
        y = self.conv_after_body(tokens_to_image(self.norm(t), size)) + x0
        return self.conv_before_upsample(y)

    @classmethod
    def official_config(cls, args: dict[str, Any]) -> dict[str, Any]:
        """:data:`OFFICIAL_CONFIG`: LTE's ``make_swinir(no_upsampling=True)`` ignores its arguments."""
        return {k: list(v) if isinstance(v, list) else v for k, v in OFFICIAL_CONFIG.items()}

    @classmethod
    def official_state_dict(cls, sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Without the ``relative_position_index``/``attn_mask`` buffers (checked, then recomputed)."""
        return official_state_dict_to_ours(dict(sd), prefix="", window_size=OFFICIAL_CONFIG["window_size"])

    @property
    def receptive_radius(self) -> None:
        """Unbounded: shifted windows propagate context across the whole image (no exact tiling)."""
        return None

    @property
    def input_multiple(self) -> int:
        """Training crops must be multiples of the attention window (the official 48 = 6 windows of 8)."""
        return self.window_size

    def pad_input(self, x: Tensor) -> Tensor:
        """The official evaluation padding, :func:`flip_pad` to ``(h // ws + 1) * ws`` (always 1..ws px)."""
        return flip_pad(x, self.window_size)

    def activation_bytes_per_pixel(self, dtype_bytes: int = 4) -> int:
        """Tokens, residuals, qkv, MLP hidden and x0 (~10 embed_dim), attention logits and weights
        (2 heads ws²) and the shared mask (ws²) per pixel, plus input and latent."""
        cfg = self.config
        n = cfg["window_size"] ** 2
        channels = 10 * cfg["embed_dim"] + 2 * max(cfg["num_heads"]) * n + n + self.out_dim + 3
        return channels * dtype_bytes
