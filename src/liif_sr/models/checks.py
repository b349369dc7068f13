"""Argument checks of the model's inference API (:meth:`ImplicitSR.query`, :meth:`ImplicitSR.upscale`).

Each raises :class:`~liif_sr.errors.InvalidArgumentError` (a ``ValueError`` too) with a one-line message.
A leaf module: the model, inference and the CLIs import it.
"""

from __future__ import annotations

import math
import numbers
import operator

import torch
from torch import Tensor

from liif_sr.errors import InvalidArgumentError

# input values outside this range are not [0, 1] image data (0..255 floats, [-1, 1] normalised data)
_LR_RANGE = (-0.5, 1.5)


def check_lr(lr: object) -> None:
    """Refuse an input that :meth:`ImplicitSR.upscale` / :meth:`ImplicitSR.query` / :meth:`ImplicitSR.encode` would misread.

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


def as_int(value: object, message: str) -> int:
    """``value`` as an ``int`` (any integral type, not bool), else :class:`InvalidArgumentError` ``message``."""
    try:
        if isinstance(value, bool):
            raise TypeError
        return operator.index(value)
    except TypeError:
        raise InvalidArgumentError(message) from None


def check_chunk(chunk: object) -> int:
    """``chunk`` (queries decoded at once) as a positive int."""
    value = as_int(chunk, f"chunk must be a positive integer, got {chunk!r}")
    if value < 1:
        raise InvalidArgumentError(f"chunk must be a positive integer, got {value}")
    return value


def check_cell_clip(cell_clip: object) -> float | None:
    """``cell_clip`` as None (off) or a finite float >= 1 (the one check of every cell-clip value).

    Cell clipping means "never use a cell smaller than the one of ×``cell_clip``": above that scale the
    model is told it renders ×``cell_clip``. Below 1 the floor would be a cell larger than an LR pixel
    (``1e-3``: 1000 LR pixels), which the model has never seen and which renders black or shifted images.
    """
    if cell_clip is None:
        return None
    if isinstance(cell_clip, bool) or not isinstance(cell_clip, numbers.Real):
        raise InvalidArgumentError(f"cell_clip must be None (off) or a number >= 1, got {cell_clip!r}")
    value = float(cell_clip)
    if not (math.isfinite(value) and value >= 1):
        raise InvalidArgumentError(
            f"cell_clip must be a finite number >= 1 (the scale whose cell is the smallest used, e.g. 4), "
            f"got {value:g}"
        )
    return value


def check_upscale_args(
    lr: object, size: object, chunk: object = 65536, cell_clip: object = None
) -> tuple[tuple[int, int], int, float | None]:
    """All checks of :meth:`ImplicitSR.upscale`'s arguments: returns the normalised ``(size, chunk, cell_clip)``."""
    check_lr(lr)
    return check_size(size), check_chunk(chunk), check_cell_clip(cell_clip)


def check_query(coord: object, cell: object, batch: int) -> None:
    """``coord`` (B, Q, 2) floats, Q >= 1, finite; ``cell`` None or the same shape, finite; B = ``batch``."""
    if not isinstance(coord, Tensor):
        raise InvalidArgumentError(f"coord must be a torch.Tensor (B, Q, 2), got {type(coord).__name__}")
    shape = tuple(coord.shape)
    if coord.dim() != 3 or shape[-1] != 2:
        raise InvalidArgumentError(f"coord must be (B, Q, 2) (row, col) in [-1, 1], got {shape}")
    if shape[0] != batch:
        raise InvalidArgumentError(f"coord has batch {shape[0]}, the image(s) {batch}")
    if shape[1] == 0:
        raise InvalidArgumentError("coord holds no queries (Q = 0): give at least one (B, Q, 2) coordinate")
    if not coord.is_floating_point():
        raise InvalidArgumentError(
            f"coord has dtype {coord.dtype}: pass floats in [-1, 1] (coords.make_coord)"
        )
    if not bool(torch.isfinite(coord.detach()).all()):
        raise InvalidArgumentError("coord holds NaN or infinite values")
    if cell is None:
        return
    if not isinstance(cell, Tensor) or tuple(cell.shape) != shape or not cell.is_floating_point():
        got = tuple(cell.shape) if isinstance(cell, Tensor) else type(cell).__name__
        raise InvalidArgumentError(
            f"cell must be None or a float tensor shaped like coord {shape}, got {got}"
        )
    if not bool(torch.isfinite(cell.detach()).all()):
        raise InvalidArgumentError("cell holds NaN or infinite values")


BORDERS = ("none", "replicate")


def check_border(border: object) -> str:
    """``border`` as one of :data:`BORDERS`: ``none`` (the papers' zero padding) or ``replicate``."""
    if border not in BORDERS:
        raise InvalidArgumentError(f"border must be one of {', '.join(BORDERS)}, got {border!r}")
    return str(border)
