"""Argument checks and dtype/batch helpers shared by the resamplers in :mod:`liif_sr.data.resize`."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor


def _check_image(img: object, name: str = "img", *, floating: bool | None = None) -> Tensor:
    if not isinstance(img, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(img).__name__}")
    if img.ndim not in (3, 4):
        raise ValueError(f"{name} must have shape (C, H, W) or (B, C, H, W), got {tuple(img.shape)}")
    if img.shape[-1] == 0 or img.shape[-2] == 0:
        raise ValueError(f"{name} has an empty spatial size {tuple(img.shape[-2:])}")
    if floating is True and not img.is_floating_point():
        raise TypeError(
            f"{name} must be a floating-point tensor, got {img.dtype} (use downsample() for uint8 images)"
        )
    if floating is False and img.dtype != torch.uint8:
        raise TypeError(f"{name} must be a uint8 tensor, got {img.dtype}")
    return img


def _check_size(size: object) -> tuple[int, int]:
    if (
        not isinstance(size, Sequence)
        or isinstance(size, str)
        or len(size) != 2
        or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in size)
    ):
        raise TypeError(f"size must be a pair of ints (H, W), got {size!r}")
    h, w = int(size[0]), int(size[1])
    if h < 1 or w < 1:
        raise ValueError(f"size must be positive, got {(h, w)}")
    return h, w


def _check_scale(scale: object) -> tuple[float, float]:
    pair: object = (scale, scale) if isinstance(scale, (int, float, np.integer, np.floating)) else scale
    if (
        not isinstance(pair, Sequence)
        or len(pair) != 2
        or not all(
            isinstance(s, (int, float, np.integer, np.floating)) and not isinstance(s, bool) for s in pair
        )
    ):
        raise TypeError(f"scale must be a number or a pair of numbers (sH, sW), got {scale!r}")
    sh, sw = float(pair[0]), float(pair[1])
    if not (math.isfinite(sh) and math.isfinite(sw) and sh > 0 and sw > 0):
        raise ValueError(f"scale must be finite and positive, got {scale!r}")
    return sh, sw


def _compute_dtype(img: Tensor) -> torch.dtype:
    """float64 stays float64; everything else (float32/16, bfloat16, uint8) is computed in float32."""
    return torch.float64 if img.dtype == torch.float64 else torch.float32


def _as_batch(img: Tensor) -> tuple[Tensor, bool]:
    return (img.unsqueeze(0), True) if img.ndim == 3 else (img, False)
