"""Upscaling images with a LIIF model: sizes, precision, devices, batching.

Argument checks shared by the Python API and the CLI (each raises
:class:`~liif_sr.errors.InvalidArgumentError`, a ``ValueError``, with a one-line message):
:func:`check_lr`, :func:`check_size`, :func:`check_chunk`, :func:`check_cell_clip`, all four at once in
:func:`check_upscale_args`, and :func:`check_tile` (raises the tile to :func:`min_tile`).
"""

from __future__ import annotations

import contextlib
import math
import numbers
import operator
import re
import warnings
from collections.abc import Iterator
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from liif_sr.errors import InvalidArgumentError, UserError
from liif_sr.models.liif import LIIF

Precision = Literal["fp32", "bf16", "fp16"]
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
#: largest scale factor accepted per axis (LIIF is trained up to x4 and evaluated up to x30)
MAX_SCALE = 1000.0
# tiling a tile smaller than this many encoder margins re-encodes more than (1 + 2/2)^2 = 4x the pixels
_MIN_TILE_MARGINS = 2
_MIN_TILE_ABS = 16
# input values outside this range are not [0, 1] image data (0..255 floats, [-1, 1] normalised data)
_LR_RANGE = (-0.5, 1.5)
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


def check_lr(lr: object) -> None:
    """Refuse an input that :meth:`LIIF.upscale` / :meth:`LIIF.query` / :meth:`LIIF.encode` would misread.

    ``lr`` must be a floating-point tensor (B, 3, h, w) with values in [0, 1]: uint8 data is refused (divide
    by 255 first) rather than silently read as values up to 255 (an almost white result), and so are
    values clearly outside [0, 1] (below -0.5 or above 1.5: 0..255 floats, [-1, 1] data), NaN and inf.
    """
    if not isinstance(lr, Tensor):
        raise InvalidArgumentError(
            f"lr must be a torch.Tensor (B, 3, h, w) of floats in [0, 1], got {type(lr).__name__}"
        )
    shape = tuple(lr.shape)
    if lr.dim() == 3 and shape[0] == 3:
        raise InvalidArgumentError(f"lr must be (B, 3, h, w), got {shape}: add a batch dimension, lr[None]")
    if lr.dim() != 4 or shape[1] != 3:
        hint = ": channels last? use lr.permute(0, 3, 1, 2)" if lr.dim() == 4 and shape[-1] == 3 else ""
        raise InvalidArgumentError(f"lr must be (B, 3, h, w), got {shape}{hint}")
    if lr.numel() == 0:
        raise InvalidArgumentError(f"lr is empty: shape {shape}")
    if not lr.is_floating_point():
        raise InvalidArgumentError(
            f"lr has dtype {lr.dtype}: pass floats in [0, 1] (for 8-bit data: lr.float() / 255)"
        )
    lo, hi = (float(v) for v in torch.aminmax(lr.detach()))
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise InvalidArgumentError("lr holds NaN or infinite values")
    if lo < _LR_RANGE[0] or hi > _LR_RANGE[1]:
        raise InvalidArgumentError(
            f"lr values span [{lo:.3g}, {hi:.3g}]; expected [0, 1] (0..255 data: divide by 255; "
            "[-1, 1] data: lr * 0.5 + 0.5)"
        )


def check_size(size: object) -> tuple[int, int]:
    """``size`` as ``(H, W)`` of positive ints; one int means a square (like ``--size 80``)."""
    if isinstance(size, bool):
        raise InvalidArgumentError(f"size must be (H, W) or one int for a square, got {size!r}")
    if isinstance(size, numbers.Integral):
        size = (size, size)
    try:
        if isinstance(size, str | bytes) or len(size) != 2 or any(isinstance(v, bool) for v in size):
            raise TypeError
        h, w = operator.index(size[0]), operator.index(size[1])
    except TypeError:
        raise InvalidArgumentError(f"size must be (H, W) or one int for a square, got {size!r}") from None
    if h < 1 or w < 1:
        raise InvalidArgumentError(f"size must be positive, got {(h, w)}")
    return h, w


def check_chunk(chunk: object) -> int:
    """``chunk`` (queries decoded at once) as a positive int."""
    try:
        if isinstance(chunk, bool):
            raise TypeError
        value = operator.index(chunk)
    except TypeError:
        raise InvalidArgumentError(f"chunk must be a positive integer, got {chunk!r}") from None
    if value < 1:
        raise InvalidArgumentError(f"chunk must be a positive integer, got {value}")
    return value


def check_cell_clip(cell_clip: object) -> float | None:
    """``cell_clip`` as None (off) or a positive finite float."""
    if cell_clip is None:
        return None
    if isinstance(cell_clip, bool) or not isinstance(cell_clip, numbers.Real):
        raise InvalidArgumentError(f"cell_clip must be None or a positive number, got {cell_clip!r}")
    value = float(cell_clip)
    if not (math.isfinite(value) and value > 0):
        raise InvalidArgumentError(f"cell_clip must be a positive finite number (e.g. 4), got {value}")
    return value


def check_upscale_args(
    lr: object, size: object, chunk: object = 65536, cell_clip: object = None
) -> tuple[tuple[int, int], int, float | None]:
    """All checks of :meth:`LIIF.upscale`'s arguments: returns the normalised ``(size, chunk, cell_clip)``."""
    check_lr(lr)
    return check_size(size), check_chunk(chunk), check_cell_clip(cell_clip)


def min_tile(model: LIIF) -> int:
    """Smallest useful tile: ``2 * margin`` LR pixels (at most 4x re-encoding), and at least 16."""
    from liif_sr.inference.tiling import tile_margin

    return max(_MIN_TILE_ABS, _MIN_TILE_MARGINS * tile_margin(model.encoder))


def check_tile(model: LIIF, tile: object) -> tuple[int, str | None]:
    """``tile`` (0 = off) raised to :func:`min_tile` if smaller: ``(tile, note or None)``.

    Tiling is exact, so a larger tile changes memory and speed only, never the output; a tile smaller than
    the encoder's margin would re-encode ``(2 * margin + tile)^2 / tile^2`` times the image.
    """
    try:
        if isinstance(tile, bool):
            raise TypeError
        value = operator.index(tile)
    except TypeError:
        raise InvalidArgumentError(f"tile must be an integer >= 0 (0 = off), got {tile!r}") from None
    if value < 0:
        raise InvalidArgumentError(f"tile must be >= 0 (0 = off), got {value}")
    floor = min_tile(model)
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


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available (install a CUDA build of torch)")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise UserError(f"--device must be auto, cpu or cuda[:N], got {device!r}")
    return torch.device(device)


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
    """float (C, H, W) in [0, 1] → uint8 (H, W, C), rounded to nearest."""
    return (img.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()


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
    Arguments are checked first (:func:`check_upscale_args`); a tile below :func:`min_tile` is raised to
    it with a warning; a memory budget that allows only such tiles is refused.
    """
    size, chunk, cell_clip = check_upscale_args(lr, size, chunk, cell_clip)
    tile, note = check_tile(model, tile)
    if note:
        warnings.warn(note, stacklevel=3)
    device = next(model.parameters()).device
    with autocast(device, precision):
        if tile or max_memory is not None:
            from liif_sr.inference.tiling import upscale_budgeted

            if not tile:
                tile = _budget_tile(model, lr, size, max_memory, chunk)
            return upscale_budgeted(model, lr.to(device), size, tile, None, chunk, cell_clip).float()
        return model.upscale(lr.to(device), size, chunk=chunk, cell_clip=cell_clip).float()


def _budget_tile(model: LIIF, lr: Tensor, size: tuple[int, int], max_memory: int, chunk: int) -> int:
    """The tile :func:`~liif_sr.inference.tiling.auto_tile` picks for ``max_memory``; refused below :func:`min_tile`."""
    from liif_sr.inference.tiling import auto_tile

    b, _, h, w = lr.shape
    hidden = model.head.mlp.hidden_list[0]
    try:
        tile = auto_tile(
            h, w, max_memory, model.encoder, hidden, batch=b, chunk=chunk, out_size=size, min_tile=1
        )
    except ValueError as exc:
        raise UserError(f"--max-memory: {exc}") from None
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
