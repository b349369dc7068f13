"""CiaoSR's cross-scale non-local attention (Cao et al., CVPR 2023), as LM-CiaoSR uses it (docs/method.md).

Each latent pixel attends to every 3x3 patch of a half-resolution copy of the latent grid: the matching
features (1x1 conv + PReLU, C → C/2) of the pixel's 3x3 neighbourhood are correlated with the normalised
3x3 patches of the downscaled grid, the softmax (x10) over all patches weights the corresponding 6x6 patches
of an embedded full-resolution grid (1x1 conv + PReLU), which are scattered back by a stride-2 transposed
convolution, then a stride-2 3x3 convolution and ``/ 6`` bring them to the latent grid (C channels).
Only the configured scale 2 is implemented (LMF's ``multi_scale: [2]``).

**Non-local**: the output at one latent depends on the whole grid it is computed on. LM-CiaoSR runs it on
the whole latent when it has at most 48 x 48 pixels, else on 48 x 48 blocks anchored at the top-left (the
last block of a row / column takes the rest), each with one latent of context where available
(:func:`blockwise`). Quirk of the official code copied here: when one side is below 48 but the grid has more
than 48 x 48 pixels (e.g. 30 x 100), no block exists and the attention output is zero everywhere.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

BLOCK = 48  # LM-CiaoSR's block side for large latent grids


def _conv_prelu(cin: int, cout: int) -> nn.Sequential:
    """1x1 convolution + PReLU; keys ``0.weight``, ``0.bias``, ``1.weight`` as the official BasicBlock."""
    return nn.Sequential(nn.Conv2d(cin, cout, 1), nn.PReLU())


def _same_pad(x: Tensor, k: int, stride: int) -> Tensor:
    """Zero padding of TensorFlow's 'same' rule (extra row/column at the bottom/right)."""
    rows, cols = x.shape[-2:]
    pad_r = max(0, ((rows + stride - 1) // stride - 1) * stride + k - rows)
    pad_c = max(0, ((cols + stride - 1) // stride - 1) * stride + k - cols)
    return F.pad(x, (pad_c // 2, pad_c - pad_c // 2, pad_r // 2, pad_r - pad_r // 2))


def _patches(x: Tensor, k: int, stride: int) -> Tensor:
    """(B, C, H, W) → (B, L, C, k, k): the 'same'-padded k x k patches, row-major."""
    b, c = x.shape[:2]
    cols = F.unfold(_same_pad(x, k, stride), k, stride=stride)  # (B, C*k*k, L)
    return cols.view(b, c, k, k, -1).permute(0, 4, 1, 2, 3).contiguous()


class CrossScaleAttention(nn.Module):
    """``(B, C, H, W)`` → ``(B, C, H, W)`` cross-scale attention at scale 2.

    Args:
        channels: C (the encoder's latent channels).
        softmax_scale: multiplier of the correlations before the softmax (10).

    Parameter names follow the official module (``conv_match_1``, ``conv_match_2``, ``conv_assembly``,
    ``down``, the ``escape_NaN`` buffer = 1e-4, the floor of the patch norms).
    """

    scale = 2
    ksize = 3

    def __init__(self, channels: int = 64, softmax_scale: float = 10.0) -> None:
        super().__init__()
        if channels < 2:
            raise ValueError(f"CrossScaleAttention: needs at least 2 channels, got {channels}")
        self.softmax_scale = float(softmax_scale)
        self.conv_match_1 = _conv_prelu(channels, channels // 2)
        self.conv_match_2 = _conv_prelu(channels, channels // 2)
        self.conv_assembly = _conv_prelu(channels, channels)
        self.down = nn.Conv2d(channels, channels, self.ksize, 2, 1)
        self.register_buffer("escape_NaN", torch.tensor([1e-4]))

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        if h < 2 or w < 2:
            raise ValueError(f"CrossScaleAttention: needs a latent grid of at least 2x2, got {h}x{w}")
        s, k = self.scale, self.ksize
        x = F.pad(x, (0, w % s, 0, h % s), mode="reflect")  # even sides
        embed, match = self.conv_assembly(x), self.conv_match_1(x)
        raw = _patches(embed, s * k, s)  # (B, L, C, 6, 6), L = (H/2)(W/2)
        ref = self.conv_match_2(F.interpolate(x, scale_factor=1.0 / s, mode="bilinear", align_corners=False))
        keys = _patches(ref, k, 1)  # (B, L, C/2, 3, 3)
        out = []
        for i in range(x.shape[0]):  # each image attends within itself
            key = keys[i]
            norm = key.pow(2).sum(3, keepdim=True).sum(2, keepdim=True).sum(1, keepdim=True).sqrt()
            key = key / torch.maximum(norm, self.escape_NaN)
            score = F.conv2d(_same_pad(match[i : i + 1], k, 1), key)  # (1, L, H, W)
            score = F.softmax(score * self.softmax_scale, dim=1)
            y = F.conv_transpose2d(score, raw[i], stride=s, padding=s)  # (1, C, 2H, 2W)
            out.append(self.down(y) / 6.0)
        return torch.cat(out)[:, :, :h, :w]


def blockwise(attention: CrossScaleAttention, feat: Tensor) -> Tensor:
    """LM-CiaoSR's use of ``attention`` on ``feat`` (B, C, h, w): whole when h·w <= 48², else per block.

    Blocks: rows ``[48 i, 48 (i + 1))`` for ``i < h // 48 - 1`` and the last block to ``h`` (columns alike),
    each computed on the block plus one latent of context per side where the grid has it; zero where no
    block exists (see the module doc).
    """
    b, c, h, w = feat.shape
    if h * w <= BLOCK * BLOCK:
        return attention(feat)
    out = feat.new_zeros(b, c, h, w)
    nh, nw = h // BLOCK, w // BLOCK
    for i in range(nh):
        r0, r1 = i * BLOCK, (i + 1) * BLOCK if i < nh - 1 else h
        pt, pb = int(r0 >= 1), int(r1 + 1 <= h)
        for j in range(nw):
            c0, c1 = j * BLOCK, (j + 1) * BLOCK if j < nw - 1 else w
            pl, pr = int(c0 >= 1), int(c1 + 1 <= w)
            y = attention(feat[:, :, r0 - pt : r1 + pb, c0 - pl : c1 + pr])
            out[:, :, r0:r1, c0:c1] = y[:, :, pt : y.shape[-2] - pb, pl : y.shape[-1] - pr]
    return out
