"""Writing images: :func:`write_image_atomic` (temporary file in the destination folder, then ``os.replace`` /
``os.link``: an interrupted or failed write never leaves a partial output file) and
:func:`check_output_path` (the fail-fast check of an output path, before any heavy work).

Reading is :mod:`liif_sr.data.images` (which re-exports both names).
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import stat
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from liif_sr.errors import OutputExistsError, OutputPathError

if TYPE_CHECKING:
    from liif_sr.data.images import ImageMetadata

logger = logging.getLogger("liif_sr.data.images")

# suffix -> (Pillow format, save options, modes the format can store)
_WRITE_FORMATS: dict[str, tuple[str, dict[str, object], tuple[str, ...]]] = {
    ".png": ("PNG", {}, ("L", "LA", "RGB", "RGBA")),
    ".jpg": ("JPEG", {"quality": 95, "subsampling": 0}, ("L", "RGB")),
    ".jpeg": ("JPEG", {"quality": 95, "subsampling": 0}, ("L", "RGB")),
    ".webp": ("WEBP", {"lossless": True, "exact": True}, ("RGB", "RGBA")),
    ".bmp": ("BMP", {}, ("L", "RGB")),  # 32-bit BMP alpha is not read back reliably
    ".tif": ("TIFF", {}, ("L", "LA", "RGB", "RGBA")),
    ".tiff": ("TIFF", {}, ("L", "LA", "RGB", "RGBA")),
}


def check_output_path(path: str | os.PathLike[str], overwrite: bool = False) -> None:
    """Fail fast (before any heavy work) if ``path`` cannot be written; raises :class:`OutputPathError`."""
    path = Path(path)
    if path.is_dir():
        raise OutputPathError(f"{path} is a directory; give an output file name")
    if path.suffix.lower() not in _WRITE_FORMATS:
        raise OutputPathError(
            f"{path}: unsupported output format '{path.suffix}' (use one of {', '.join(_WRITE_FORMATS)})"
        )
    parent = path.parent
    if not parent.is_dir():
        what = "is not a directory" if parent.exists() else "does not exist"
        raise OutputPathError(f"output directory {what}: {parent}")
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path} exists; pass --overwrite to replace it")
    if path.exists() and _read_only(path):  # replacing it would drop its read-only mode
        raise OutputPathError(
            f"{path} is read-only; make it writable (chmod u+w) to replace it, or choose another output"
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputPathError(f"cannot write to {parent}: permission denied")


def _read_only(path: Path) -> bool:
    """Whether ``path`` is marked read-only (no write bit at all, or not writable by this user)."""
    return not (path.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)) or not os.access(
        path, os.W_OK
    )


def _flatten_white(arr: np.ndarray) -> np.ndarray:
    a = arr[..., -1:].astype(np.float32) / 255
    out = np.rint(arr[..., :-1] * a + 255 * (1 - a)).astype(np.uint8)
    return out[..., 0] if out.shape[-1] == 1 else out


def _metadata_options(fmt: str, mode: str, metadata: ImageMetadata | None) -> dict[str, object]:
    """Pillow save options that write ``metadata`` in ``fmt``, for what the format can hold."""
    if metadata is None:
        return {}
    opts: dict[str, object] = {}
    icc = metadata.icc_profile
    space = b"GRAY" if mode in ("L", "LA") else b"RGB "
    if icc and fmt in ("PNG", "JPEG", "WEBP", "TIFF") and icc[16:20] == space:
        opts["icc_profile"] = icc
    if metadata.dpi and fmt in ("PNG", "JPEG", "TIFF", "BMP"):
        opts["dpi"] = metadata.dpi
    if metadata.text and fmt == "PNG":
        from PIL.PngImagePlugin import PngInfo

        info = PngInfo()
        for key, value in metadata.text.items():
            try:
                value.encode("latin-1")
                info.add_text(key, value)
            except UnicodeEncodeError:
                info.add_itxt(key, value)
        opts["pnginfo"] = info
    return opts


def write_image_atomic(
    path: str | os.PathLike[str],
    image: np.ndarray,
    overwrite: bool = False,
    metadata: ImageMetadata | None = None,
) -> None:
    """Write uint8 (H, W), (H, W, 2=LA), (H, W, 3=RGB) or (H, W, 4=RGBA) to ``path`` atomically.

    The format comes from the suffix (PNG; JPEG quality 95, 4:4:4; lossless WebP; BMP; TIFF). Formats
    without alpha (JPEG, BMP) get the image flattened over white, with a warning. Written to a temporary
    file in the same folder, then moved into place; the temporary file is removed on any failure.
    ``metadata`` (e.g. ``LoadedImage.metadata``) is written as far as the format can hold it
    (see :class:`ImageMetadata`); no EXIF is ever written.
    """
    path = Path(path)
    check_output_path(path, overwrite)
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.dtype != np.uint8 or not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] in (2, 3, 4))):
        raise ValueError(f"expected uint8 (H, W) or (H, W, 2|3|4), got {arr.dtype} {arr.shape}")
    fmt, options, modes = _WRITE_FORMATS[path.suffix.lower()]
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[1 if arr.ndim == 2 else arr.shape[-1]]
    if mode not in modes and mode.endswith("A") and not any(m.endswith("A") for m in modes):
        logger.warning("%s: %s cannot store alpha; flattening over white", path, fmt)
        arr, mode = _flatten_white(arr), mode[:-1]
    if mode not in modes:  # grayscale into a colour-only format (WebP)
        gray = arr if arr.ndim == 2 else arr[..., 0]
        rgb = np.ascontiguousarray(np.repeat(gray[..., None], 3, axis=-1))
        arr, mode = (rgb, "RGB") if arr.ndim == 2 else (np.dstack([rgb, arr[..., 1]]), "RGBA")
    pil = Image.fromarray(np.ascontiguousarray(arr))  # uint8 (H, W[, 2|3|4]) -> L, LA, RGB, RGBA
    options = {**options, **_metadata_options(fmt, mode, metadata)}
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    try:
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
            with os.fdopen(fd, "wb") as fp:
                pil.save(fp, format=fmt, **options)
        except PermissionError as exc:
            raise OutputPathError(f"cannot write to {path.parent}: permission denied") from exc
        except OSError as exc:
            if exc.errno is None:  # an encoder error, not the file system's
                raise
            raise OutputPathError(f"cannot write {path}: {exc.strerror or exc}") from exc
        if overwrite:
            os.replace(tmp, path)
            return
        try:
            os.link(tmp, path)  # atomic create-if-absent
        except FileExistsError:
            raise OutputExistsError(f"{path} exists; pass --overwrite to replace it") from None
        except OSError:  # no hard links on this file system
            if path.exists():
                raise OutputExistsError(f"{path} exists; pass --overwrite to replace it") from None
            os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
