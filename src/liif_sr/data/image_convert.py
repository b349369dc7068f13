"""Pixel conversions behind :mod:`liif_sr.data.images`: any decoded Pillow mode to 8-bit RGB + alpha
(16-bit data as ``round(x / 257)``, grayscale replicated to three channels, float data [0, 1] or [0, 255]),
and a [0, 1] tensor back to ``uint8`` (:func:`tensor_to_uint8`, re-exported by :mod:`liif_sr.data.images`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from liif_sr.errors import ImageReadError

if TYPE_CHECKING:
    import torch

__all__ = ["tensor_to_uint8"]


def _set_rawmode(img: Image.Image, rawmode: str) -> None:
    img.tile = [t._replace(args=rawmode) if hasattr(t, "_replace") else (*t[:3], rawmode) for t in img.tile]


def _to8(x: np.ndarray) -> np.ndarray:
    """16-bit -> 8-bit as round(x / 257) (exact integer arithmetic; 65535 -> 255)."""
    x = np.clip(x, 0, 65535).astype(np.uint32)
    return ((2 * x + 257) // 514).astype(np.uint8)


def _gray3(gray: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.repeat(gray[..., None], 3, axis=-1))


def _convert(img: Image.Image, path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """8-bit RGB + optional alpha from a decoded Pillow image of any mode."""
    mode = img.mode
    if mode == "F":
        arr = np.nan_to_num(np.asarray(img, dtype=np.float64))
        arr = arr * 255 if arr.size and arr.max() <= 1.0 else arr  # float data in [0, 1] or [0, 255]
        return _gray3(np.clip(np.rint(arr), 0, 255).astype(np.uint8)), None
    if mode == "I" or mode.startswith("I;16"):
        return _gray3(_to8(np.asarray(img).astype(np.int64))), None
    has_alpha = mode in ("RGBA", "RGBa", "LA", "La", "PA") or "transparency" in img.info
    has_alpha = has_alpha or (mode == "P" and img.palette is not None and img.palette.mode == "RGBA")
    target = ("LA" if mode in ("LA", "La") else "RGBA") if has_alpha else "L" if mode in ("1", "L") else "RGB"
    try:
        arr = np.asarray(img if mode == target else img.convert(target))
    except ValueError as exc:
        raise ImageReadError(path, f"unsupported colour mode {mode}") from exc
    if target in ("L", "LA"):
        return _gray3(arr if target == "L" else arr[..., 0]), (arr[..., 1].copy() if target == "LA" else None)
    return np.ascontiguousarray(arr[..., :3]), (arr[..., 3].copy() if has_alpha else None)


def tensor_to_uint8(t: torch.Tensor) -> np.ndarray:
    """(C, H, W) tensor in [0, 1] -> uint8 (H, W, C), or (H, W) for C == 1.

    NaN becomes 0, values are clamped to [0, 1] and rounded half up: ``floor(t * 255 + 0.5)``
    (``torch.round`` would round half to even). Exact inverse of :func:`load_as_tensor`'s scaling.
    """
    if t.ndim != 3:
        raise ValueError(f"expected a (C, H, W) tensor, got shape {tuple(t.shape)}")
    import torch

    t = t.detach().float().nan_to_num(0.0).clamp_(0, 1).mul_(255).add_(0.5).floor_()
    out = t.to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return np.ascontiguousarray(out[..., 0] if out.shape[-1] == 1 else out)
