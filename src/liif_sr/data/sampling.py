"""The paper's random-scale training samples and fixed-scale evaluation pairs.

Training (``sr-implicit-downsampled`` in the official code): per sample a scale ``s ~ U(scale_min,
scale_max)``, a random square HR crop of ``round(inp_size * s)``, an ``inp_size``² LR made by the
configured downsampler (PIL bicubic on 8-bit images by default, as the paper), the same random
h/v/diagonal flips on LR and HR, and ``sample_q`` HR pixels drawn without replacement with their
pixel-centre coordinates and cells ``(2/H_hr, 2/W_hr)``.
"""

from __future__ import annotations

import math
from typing import TypedDict

import torch
from torch import Tensor

from liif_sr.coords import make_cell, make_coord
from liif_sr.data.resize import downsample


class TrainSample(TypedDict):
    inp: Tensor  # (3, inp, inp) float in [0, 1]
    coord: Tensor  # (Q, 2) in [-1, 1]
    cell: Tensor  # (Q, 2)
    gt: Tensor  # (Q, 3) float in [0, 1]


def min_image_side(inp_size: int, sample_q: int | None) -> int:
    """The smallest HR image side :func:`random_scale_sample` always works on: the LR crop fits, and the HR
    crop (capped at the image side) holds ``sample_q`` pixels. The config-level bound (``sample_q`` at most
    ``round(inp_size * scale_min)``²) is :mod:`liif_sr.training.constraints`."""
    return max(inp_size, math.isqrt(sample_q - 1) + 1 if sample_q else 0)


def augment_pair(lr: Tensor, hr: Tensor, flips: tuple[bool, bool, bool]) -> tuple[Tensor, Tensor]:
    """Apply the paper's three flips (``flip(-2)``, ``flip(-1)``, ``transpose(-2, -1)``) to both images."""
    for flip, fn in zip(flips, (lambda x: x.flip(-2), lambda x: x.flip(-1), lambda x: x.transpose(-2, -1))):
        if flip:
            lr, hr = fn(lr), fn(hr)
    return lr, hr


def random_scale_sample(
    hr: Tensor,
    inp_size: int = 48,
    scale_min: float = 1.0,
    scale_max: float = 4.0,
    sample_q: int | None = 2304,
    augment: bool = True,
    downsampler: str = "pil",
    generator: torch.Generator | None = None,
) -> TrainSample:
    """One training sample from an HR image.

    Args:
        hr: (3, H, W) uint8 HR image, with ``min(H, W) >= inp_size``. When the image is smaller than
            the crop for the drawn scale, the scale is capped at ``min(H, W) / inp_size`` for this sample.
        inp_size: LR crop size (48).
        scale_min, scale_max: scale range (1, 4).
        sample_q: HR pixels per sample (2304), or None for all pixels.
        augment: random flips.
        downsampler: ``pil`` | ``matlab`` | ``torch_antialias``.
        generator: torch RNG (the global one when None).
    """
    if hr.dtype != torch.uint8 or hr.dim() != 3 or hr.shape[0] != 3:
        raise ValueError(f"random_scale_sample: hr must be uint8 (3, H, W), got {hr.dtype} {tuple(hr.shape)}")
    _, h, w = hr.shape
    if min(h, w) < inp_size:
        raise ValueError(f"random_scale_sample: image {h}x{w} is smaller than the LR crop {inp_size}")
    u = torch.rand((), generator=generator).item()
    s = scale_min + (scale_max - scale_min) * u
    w_hr = min(round(inp_size * s), h, w)
    x0 = int(torch.randint(0, h - w_hr + 1, (), generator=generator))
    y0 = int(torch.randint(0, w - w_hr + 1, (), generator=generator))
    crop_hr = hr[:, x0 : x0 + w_hr, y0 : y0 + w_hr]
    crop_lr = downsample(crop_hr, (inp_size, inp_size), downsampler)
    if augment:
        flips = tuple(bool(v) for v in (torch.rand(3, generator=generator) < 0.5))
        crop_lr, crop_hr = augment_pair(crop_lr, crop_hr, flips)  # type: ignore[arg-type]
    hh, ww = crop_hr.shape[-2:]
    coord = make_coord((hh, ww))
    rgb = crop_hr.reshape(3, -1).t()
    if sample_q is not None:
        if sample_q > coord.shape[0]:
            raise ValueError(f"random_scale_sample: sample_q={sample_q} > {coord.shape[0]} HR pixels")
        idx = torch.randperm(coord.shape[0], generator=generator)[:sample_q]
        coord, rgb = coord[idx], rgb[idx]
    cell = make_cell((hh, ww), coord.shape[0])
    return {
        "inp": crop_lr.float() / 255,
        "coord": coord,
        "cell": cell,
        "gt": rgb.float() / 255,
    }


def fixed_scale_pair(hr: Tensor, scale: float, downsampler: str = "pil") -> tuple[Tensor, Tensor]:
    """Evaluation pair at ``scale`` (paper protocol for generated LR: the official code uses PIL bicubic).

    ``h_lr = floor(H / s + 1e-9)``; HR is cropped to ``round(h_lr * s)``; LR = downsample(HR crop).

    Returns:
        ``(lr, hr)`` uint8 (3, h_lr, w_lr) and (3, round(h_lr*s), round(w_lr*s)).
    """
    if scale <= 0 or not math.isfinite(scale):
        raise ValueError(f"fixed_scale_pair: scale must be a positive number, got {scale}")
    _, h, w = hr.shape
    h_lr, w_lr = math.floor(h / scale + 1e-9), math.floor(w / scale + 1e-9)
    if h_lr < 1 or w_lr < 1:
        raise ValueError(f"fixed_scale_pair: image {h}x{w} is too small for x{scale}")
    hr = hr[:, : round(h_lr * scale), : round(w_lr * scale)]
    return downsample(hr, (h_lr, w_lr), downsampler), hr
