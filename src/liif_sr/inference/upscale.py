"""Upscaling images with a LIIF model: sizes, precision, devices, batching."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from liif_sr.data.images import tensor_to_uint8
from liif_sr.errors import UserError
from liif_sr.inference.devices import resolve_device  # noqa: F401  (re-exported for upscale_cli)
from liif_sr.models.liif import LIIF

Precision = Literal["fp32", "bf16", "fp16"]
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def parse_size(text: str) -> tuple[int, int]:
    """``"800x600"`` (height x width) → ``(800, 600)``; one number means a square."""
    parts = text.lower().replace(",", "x").split("x")
    try:
        vals = [int(p) for p in parts if p.strip()]
    except ValueError:
        raise UserError(f"--size {text!r}: expected HxW, e.g. 800x800") from None
    if len(vals) == 1:
        vals = vals * 2
    if len(vals) != 2 or min(vals) < 1:
        raise UserError(f"--size {text!r}: expected two positive integers HxW, e.g. 800x800")
    return vals[0], vals[1]


def target_size(
    in_size: tuple[int, int], scale: float | tuple[float, float] | None, size: tuple[int, int] | None
) -> tuple[int, int]:
    """Output (H, W) from a scale (one, or per axis (sy, sx)) or an explicit size."""
    if (scale is None) == (size is None):
        raise UserError("give exactly one of --scale or --size")
    if size is not None:
        return size
    sy, sx = scale if isinstance(scale, tuple) else (scale, scale)
    for s in (sy, sx):
        if not (isinstance(s, int | float) and math.isfinite(s) and s > 0):
            raise UserError(f"--scale must be a positive finite number, got {s}")
    out = (max(1, round(in_size[0] * sy)), max(1, round(in_size[1] * sx)))
    return out


def autocast(device: torch.device, precision: Precision) -> contextlib.AbstractContextManager:
    """Autocast for reduced precision (MLP and gathers in bf16/fp16; area weights stay fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision not in _DTYPES:
        raise UserError(f"--precision must be fp32, bf16 or fp16, got {precision!r}")
    if precision == "fp16" and device.type == "cpu":
        raise UserError("--precision fp16 needs a CUDA device (use bf16 or fp32 on CPU)")
    return torch.autocast(device_type=device.type, dtype=_DTYPES[precision])


def to_tensor(rgb: np.ndarray) -> Tensor:
    """uint8 (H, W, C) → float (C, H, W) in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float() / 255


def to_uint8(img: Tensor) -> np.ndarray:
    """float (C, H, W) in [0, 1] → uint8 (H, W, C): :func:`liif_sr.data.images.tensor_to_uint8` (half up)."""
    return tensor_to_uint8(img).reshape(img.shape[1], img.shape[2], img.shape[0])


@torch.no_grad()
def upscale_tensor(
    model: LIIF,
    lr: Tensor,
    size: tuple[int, int],
    precision: Precision = "fp32",
    chunk: int = 65536,
    cell_clip: float | None = None,
    tile: int = 0,
    max_memory: int | None = None,
) -> Tensor:
    """``lr`` (B, 3, h, w) in [0, 1] on the model's device → (B, 3, H, W) float32 in [0, 1].

    ``tile`` > 0, or a ``max_memory`` budget in bytes: exact tiled upscaling (:mod:`liif_sr.inference.tiling`).
    """
    device = next(model.parameters()).device
    with autocast(device, precision):
        if tile or max_memory is not None:
            from liif_sr.inference.tiling import upscale_budgeted

            return upscale_budgeted(model, lr.to(device), size, tile, max_memory, chunk, cell_clip).float()
        return model.upscale(lr.to(device), size, chunk=chunk, cell_clip=cell_clip).float()


def upscale_alpha(alpha: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Alpha (H, W) uint8 → (H', W') uint8 with bicubic (MATLAB-style) interpolation."""
    from liif_sr.data.resize import upsample_bicubic

    a = torch.from_numpy(alpha).float()[None, None] / 255
    return to_uint8(upsample_bicubic(a, size)[0])[..., 0]


def batched(items: list, n: int) -> Iterator[list]:
    for i in range(0, len(items), n):
        yield items[i : i + n]
