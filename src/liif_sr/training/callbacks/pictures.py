"""LR | bicubic | LIIF | HR comparison pictures, shared by the sample-image callbacks (and
``scripts/make_comparison.py``)."""

from __future__ import annotations

import numpy as np
import torch

from liif_sr.data.images import tensor_to_uint8


def side_by_side(images: list[torch.Tensor], size: int = 192) -> np.ndarray:
    """Centre crops of equal-size (3, H, W) [0, 1] images, nearest-resized to ``size`` and joined: (h, w, 3)."""
    tiles = []
    for img in images:
        img = img.detach().float().cpu().clamp(0, 1)
        tiles.append(torch.nn.functional.interpolate(img[None], size=(size, size), mode="nearest")[0])
        tiles.append(torch.ones(3, size, 4))
    grid = torch.cat(tiles[:-1], dim=2)
    return tensor_to_uint8(grid)


def comparison_crops(
    lr: torch.Tensor, bicubic: torch.Tensor, sr: torch.Tensor, hr: torch.Tensor, scale: float, crop: int = 96
) -> list[torch.Tensor]:
    """Aligned centre crops (LR | bicubic | LIIF | HR) of one image, each (3, crop, crop) at HR resolution."""
    _, hh, ww = hr.shape
    c = min(crop, hh, ww)
    y0, x0 = (hh - c) // 2, (ww - c) // 2
    hr_c = [t[:, y0 : y0 + c, x0 : x0 + c] for t in (bicubic, sr, hr)]
    ly0, lx0 = int(y0 / scale), int(x0 / scale)
    lc = max(1, round(c / scale))
    lr_c = lr[:, ly0 : ly0 + lc, lx0 : lx0 + lc]
    lr_c = torch.nn.functional.interpolate(lr_c[None], size=(c, c), mode="nearest")[0]
    return [lr_c, *hr_c]
