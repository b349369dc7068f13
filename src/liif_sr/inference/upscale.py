"""Upscaling images with a LIIF model: the inference road, sizes, uint8 conversion.

The road: an entry builds one :class:`~liif_sr.models.upscale_options.UpscaleOptions` (checked once), resolves
it for the model (:func:`for_model`), and :func:`upscale_with` picks the producer (whole image or tiles) for the
one render loop (:func:`liif_sr.models.render.render`). :func:`upscale_tensor` is the keyword form of the API.
"""

from __future__ import annotations

import dataclasses
import math
import re
import warnings
from typing import Any

import numpy as np
import torch
from torch import Tensor

from liif_sr.data.images import tensor_to_uint8
from liif_sr.errors import UserError
from liif_sr.inference.devices import resolve_device  # noqa: F401  (re-exported for upscale_cli)
from liif_sr.inference.tile_policy import min_tile, raise_tile, resolve_tile  # noqa: F401  (min_tile re-exported)
from liif_sr.inference.tiling import tile_blocks
from liif_sr.models.checks import (  # noqa: F401  (the API checks, re-exported)
    check_cell_clip,
    check_chunk,
    check_lr,
    check_size,
    check_upscale_args,
)
from liif_sr.models.implicit_sr import ImplicitSR
from liif_sr.models.render import render, whole_image
from liif_sr.models.run_context import working_dtype
from liif_sr.models.upscale_options import UpscaleOptions

#: largest scale factor accepted per axis (LIIF is trained up to x4 and evaluated up to x30)
MAX_SCALE = 1000.0
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


def check_tile(model: ImplicitSR, tile: object) -> tuple[int, str | None]:
    """``tile`` checked (an int >= 0, 0 = off) and raised to the model's minimum:
    :func:`~liif_sr.inference.tile_policy.raise_tile`."""
    return raise_tile(model, UpscaleOptions.create(tile=tile).tile)


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


def to_tensor(rgb: np.ndarray) -> Tensor:
    """uint8 (H, W, C) → float (C, H, W) in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float() / 255


def to_uint8(img: Tensor) -> np.ndarray:
    """float (C, H, W) in [0, 1] → uint8 (H, W, C): :func:`liif_sr.data.images.tensor_to_uint8` (half up)."""
    return tensor_to_uint8(img).reshape(img.shape[1], img.shape[2], img.shape[0])


@torch.no_grad()
def upscale_tensor(model: ImplicitSR, lr: Tensor, size: tuple[int, int] | int, **options: Any) -> Tensor:
    """``lr`` (B, 3, h, w) in [0, 1] → (B, 3, H, W) float32 in [0, 1] at ``size``: the keyword form of the road.

    ``options`` are the fields of :class:`UpscaleOptions` (``chunk``, ``cell_clip``, ``border``, ``tile``,
    ``max_memory``, ``precision``), checked once by :meth:`UpscaleOptions.create`; then :func:`upscale_with`.
    ``tile`` > 0, or a ``max_memory`` budget in bytes: tiled upscaling (:mod:`liif_sr.inference.tiling`); a tile
    below the model's minimum is raised to it with a warning; a memory budget that allows only such tiles is
    refused. ``cell_clip``, ``border``: as in :meth:`ImplicitSR.upscale`.
    """
    opts = UpscaleOptions.create(size=size, **options)
    return upscale_with(model, lr, for_model(model, opts, warn=True))


def for_model(model: ImplicitSR, opts: UpscaleOptions, warn: bool = False) -> UpscaleOptions:
    """``opts`` resolved for ``model`` once: ``cell_clip="auto"`` and the tile's floor (a note, as a warning
    when ``warn``; the CLI prints its own, :func:`tile_note`)."""
    tile, note = raise_tile(model, opts.tile)
    if note and warn:
        warnings.warn(note, stacklevel=4)  # the caller of upscale_tensor
    return dataclasses.replace(opts.for_model(model), tile=tile)


def tile_note(model: ImplicitSR, opts: UpscaleOptions) -> str | None:
    """The note :func:`for_model` gives for ``opts.tile`` (None when the tile is used as given)."""
    return raise_tile(model, opts.tile)[1]


@torch.no_grad()
def upscale_with(model: ImplicitSR, lr: Tensor, opts: UpscaleOptions) -> Tensor:
    """The inference road: ``lr`` (B, 3, h, w) in [0, 1], ``opts`` resolved (:func:`for_model`) → (B, 3, H, W)
    float32 in [0, 1].

    Checks ``lr`` (once: it reads the tensor back to the host), casts it to the model's device and working
    dtype, picks the producer (the whole image, or the tiles of
    :func:`~liif_sr.inference.tile_policy.resolve_tile`) and runs the one render loop (which applies
    ``precision``: :class:`~liif_sr.models.precision.PrecisionPlan`).
    """
    check_lr(lr)
    param = next(model.parameters())
    lr = lr.to(device=param.device, dtype=working_dtype(param))  # any floating input (issue 18, class 7)
    tile = resolve_tile(model, tuple(lr.shape), opts)
    if tile:
        blocks = tile_blocks(model, lr, opts, (tile, tile))
    else:
        blocks = whole_image(model, lr, opts)
    return render(model.head, blocks, lr, opts, out_dtype=torch.float32)


def upscale_alpha(alpha: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Alpha (H, W) uint8 → (H', W') uint8 with bicubic (MATLAB-style) interpolation."""
    from liif_sr.data.resize import upsample_bicubic

    a = torch.from_numpy(alpha).float()[None, None] / 255
    return to_uint8(upsample_bicubic(a, size)[0])[..., 0]
