"""Upscaling images with a LIIF model: sizes, precision, devices, batching.

Argument checks shared by the Python API and the CLI (each raises
:class:`~liif_sr.errors.InvalidArgumentError`, a ``ValueError``, with a one-line message):
:func:`check_lr`, :func:`check_size`, :func:`check_chunk`, :func:`check_cell_clip`, all four at once in
:func:`check_upscale_args`, and :func:`check_tile` (raises the tile to :func:`min_tile`).
"""

from __future__ import annotations

import contextlib
import math
import re
import warnings
from collections.abc import Iterator
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from liif_sr.data.images import tensor_to_uint8
from liif_sr.errors import InvalidArgumentError, UserError
from liif_sr.inference.devices import resolve_device  # noqa: F401  (re-exported for upscale_cli)
from liif_sr.models.checks import (  # noqa: F401  (the API checks, re-exported)
    as_int,
    check_cell_clip,
    check_chunk,
    check_lr,
    check_size,
    check_upscale_args,
)
from liif_sr.models.liif import LIIF, Border
from liif_sr.models.run_context import run_context, working_dtype

Precision = Literal["fp32", "bf16", "fp16"]
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
#: largest scale factor accepted per axis (LIIF is trained up to x4 and evaluated up to x30)
MAX_SCALE = 1000.0
# tiling a tile smaller than this many encoder margins re-encodes more than (1 + 2/2)^2 = 4x the pixels
_MIN_TILE_MARGINS = 2
_MIN_TILE_ABS = 16
_SIZE_RE = re.compile(r"\s*(\d+)\s*(?:[x,]\s*(\d+)\s*)?")


def parse_size(text: str) -> tuple[int, int]:
    """``"800x600"`` (height x width) → ``(800, 600)``; one number alone means a square (``"80"``).

    Anything else (``"80x"``, ``"x80"``, ``"2x3x4"``, ``"-5x10"``, ``"1.5x2"``) raises :class:`UserError`.
    """
    match = _SIZE_RE.fullmatch(text.lower())
    if match is None:
        raise UserError(
            f"--size {text!r}: expected HxW with two positive integers (e.g. 800x600), or one for a square"
        )
    h = int(match.group(1))
    w = int(match.group(2)) if match.group(2) is not None else h
    if min(h, w) < 1:
        raise UserError(f"--size {text!r}: expected two positive integers HxW, e.g. 800x800")
    return h, w


def parse_scale(text: str) -> float | tuple[float, float]:
    """``--scale``: ``"4"``, ``"2.5"`` or per axis ``"2x3"`` (SYxSX); refused unless positive, finite, <= :data:`MAX_SCALE`."""
    parts = text.lower().split("x")
    try:
        vals = [float(v) for v in parts]
    except ValueError:
        raise UserError(f"--scale {text!r}: expected a number like 4 or 2.5 (or SYxSX)") from None
    for v in vals:
        if not math.isfinite(v) or v <= 0:
            raise UserError(f"--scale {text!r}: the scale must be a positive finite number")
        if v > MAX_SCALE:
            raise UserError(
                f"--scale {text!r}: at most {MAX_SCALE:g} per axis (give --size HxW for an exact size)"
            )
    if len(vals) == 1:
        return vals[0]
    if len(vals) == 2:
        return vals[0], vals[1]
    raise UserError(f"--scale {text!r}: expected one number or SYxSX")


def min_tile(model: LIIF) -> int:
    """Smallest useful tile: ``2 * margin`` LR pixels (at most 4x re-encoding), and at least 16."""
    from liif_sr.inference.tiling import tile_margin

    return max(_MIN_TILE_ABS, _MIN_TILE_MARGINS * tile_margin(model.encoder, model.head.reach))


def check_tile(model: LIIF, tile: object) -> tuple[int, str | None]:
    """``tile`` (0 = off) raised to :func:`min_tile` if smaller: ``(tile, note or None)``.

    Tiling computes the same function (up to float rounding), so a larger tile changes memory and speed,
    not the result; a tile smaller than the encoder's margin would re-encode ``(2 * margin + tile)^2 /
    tile^2`` times the image. An encoder that cannot be tiled (SwinIR) keeps any tile here: one that covers
    the image runs untiled, a smaller one is refused when the image is seen.
    """
    value = as_int(tile, f"tile must be an integer >= 0 (0 = off), got {tile!r}")
    if value < 0:
        raise InvalidArgumentError(f"tile must be >= 0 (0 = off), got {value}")
    if model.encoder.receptive_radius is None:  # SwinIR: fine where the tile covers the image (untiled)
        return value, None
    floor = min_tile(model) if value > 0 else 0
    if 0 < value < floor:
        return floor, (
            f"tile {value} is below this model's minimum of {floor} LR pixels (2x its encoder margin; "
            f"smaller tiles only re-encode more): using {floor}"
        )
    return value, None


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
        if s > MAX_SCALE:
            raise UserError(f"--scale {s:g}: at most {MAX_SCALE:g} per axis (give --size HxW instead)")
    out = (round(in_size[0] * sy), round(in_size[1] * sx))
    if min(out) < 1:
        text = f"{sy:g}" if sy == sx else f"{sy:g}x{sx:g}"
        raise UserError(
            f"--scale {text}: a {in_size[0]}x{in_size[1]} image would become {out[0]}x{out[1]}; "
            "each side must be at least 1 pixel"
        )
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
    cell_clip: float | str | None = "auto",
    tile: int = 0,
    max_memory: int | None = None,
    border: Border = "replicate",
) -> Tensor:
    """``lr`` (B, 3, h, w) in [0, 1] on the model's device → (B, 3, H, W) float32 in [0, 1].

    ``tile`` > 0, or a ``max_memory`` budget in bytes: tiled upscaling (:mod:`liif_sr.inference.tiling`).
    Arguments are checked first (:func:`check_upscale_args`); a tile below :func:`min_tile` is raised to
    it with a warning; a memory budget that allows only such tiles is refused. ``cell_clip="auto"``: the
    head's paper protocol; ``border``: as in :meth:`LIIF.upscale`.
    """
    size, chunk, cell_clip = check_upscale_args(lr, size, chunk, model.resolve_cell_clip(cell_clip))
    tile, note = check_tile(model, tile)
    if note:
        warnings.warn(note, stacklevel=3)
    param = next(model.parameters())
    device = param.device
    lr = lr.to(device=device, dtype=working_dtype(param))  # any floating input (issue 18, class 7)
    with autocast(device, precision):
        if tile or max_memory is not None:
            from liif_sr.inference.tiling import upscale_budgeted

            if not tile:
                tile = _budget_tile(model, lr, size, max_memory, chunk, border)
            with run_context(param, grad=False):  # a float16/bfloat16 model: autocast to its dtype
                out = upscale_budgeted(model, lr, size, tile, None, chunk, cell_clip, border)
            return out.float()
        return model.upscale(lr, size, chunk=chunk, cell_clip=cell_clip, border=border).float()


def _budget_tile(
    model: LIIF, lr: Tensor, size: tuple[int, int], max_memory: int, chunk: int, border: str = "replicate"
) -> int:
    """The tile :func:`~liif_sr.inference.tiling.auto_tile` picks for ``max_memory`` (0: the image fits
    untiled); refused below :func:`min_tile`, or where an encoder that cannot be tiled does not fit."""
    from liif_sr.inference.tiling import TilingUnsupportedError, auto_tile

    b, _, h, w = lr.shape
    try:
        tile = auto_tile(h, w, max_memory, model, batch=b, chunk=chunk, out_size=size, min_tile=1)
    except ValueError as exc:
        raise UserError(f"--max-memory: {exc}") from None
    if tile >= max(h, w):
        return 0
    if model.encoder.receptive_radius is None:
        raise TilingUnsupportedError(
            f"--max-memory {max_memory} B: too small for a {h}x{w} input with this model untiled (room for "
            f"{tile}-pixel tiles), and its {model.encoder.name} encoder cannot be tiled: raise --max-memory"
        )
    floor = min_tile(model)
    if tile < min(floor, max(h, w)):
        raise UserError(
            f"--max-memory {max_memory} B: too small for a {h}x{w} input with this model (it leaves room for "
            f"{tile}-pixel tiles; the minimum useful tile is {floor}): raise --max-memory or lower --batch/--chunk"
        )
    return max(tile, floor)


def upscale_alpha(alpha: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Alpha (H, W) uint8 → (H', W') uint8 with bicubic (MATLAB-style) interpolation."""
    from liif_sr.data.resize import upsample_bicubic

    a = torch.from_numpy(alpha).float()[None, None] / 255
    return to_uint8(upsample_bicubic(a, size)[0])[..., 0]


def batched(items: list, n: int) -> Iterator[list]:
    for i in range(0, len(items), n):
        yield items[i : i + n]
