"""Robust image reading and writing for the ``upscale`` CLI, the training data module and evaluation.

Reading (:func:`read_image`, :func:`read_image_with_alpha`) always yields 8-bit RGB, plus alpha on request:

* Every failure is an :class:`~liif_sr.errors.ImageReadError` whose one-line message names the file and
  the problem (empty file, not an image, truncated/corrupt data, too large). Pixel data is fully decoded
  up front, so a truncated file fails here and not halfway through training. ``LOAD_TRUNCATED_IMAGES``
  is never set (if other code sets it globally, truncated files load padded with grey).
* Alpha (RGBA, LA, palette or colour-key transparency) is **not** composited over a background: the RGB
  channels are returned unmultiplied and alpha separately, so a caller can upscale both and re-attach
  alpha (compositing over white would bleed the background into the edges during super-resolution).
* Grayscale (1, L, LA, I, I;16, F) is replicated to three channels; ``LoadedImage.was_grayscale`` lets
  the caller convert the result back (e.g. ``rgb[..., 0]`` or a channel mean) before writing.
* 16-bit data (I;16 grayscale, 16-bit RGB/RGBA/LA PNG) is scaled to 8 bits as ``round(x / 257)``, so
  65535 -> 255 (no naive clipping). Pillow decodes 16-bit colour PNGs to their high byte only; the low
  byte is recovered by decoding the file a second time with a little-endian raw mode. (16-bit colour
  TIFFs keep Pillow's high-byte conversion, at most 1 level off.) 32-bit integer (I) data is assumed
  to hold 16-bit values; float (F) data [0, 1] or [0, 255].
* EXIF orientation is applied (``ImageOps.exif_transpose``); a malformed EXIF block is ignored with a
  warning. ICC profiles are not applied (no colour management); CMYK is converted naively by Pillow.
* Safe metadata is kept in ``LoadedImage.metadata`` (:class:`ImageMetadata`: ICC profile, DPI, PNG text
  chunks) for :func:`write_image_atomic` to write back. EXIF is not carried over (it may hold a GPS
  location, a thumbnail and the old dimensions, and its orientation has already been applied).
* Multi-frame files (GIF, APNG, multi-page TIFF) give their first frame; ``LoadedImage.frames`` says how many
  the file has (``liif-sr upscale`` notes each such file).

Mode conversion to 8-bit RGB and :func:`tensor_to_uint8` are :mod:`liif_sr.data.image_convert`.
Writing (:func:`write_image_atomic`, :func:`check_output_path`) is :mod:`liif_sr.data.image_write`; finding
and checking image files in folders (:func:`scan_images`, :func:`check_images`) is
:mod:`liif_sr.data.image_files`. Both are re-exported here.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import stat
import struct
import threading
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps

from liif_sr.data.image_convert import _convert, _gray3, _set_rawmode, _to8
from liif_sr.errors import ImageReadError

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

#: File extensions (lower case, with dot) that :func:`scan_images` picks up.
IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
#: Default decompression-bomb limit: Pillow's own hard limit (2 * ``Image.MAX_IMAGE_PIXELS``).
DEFAULT_MAX_PIXELS = 178_956_970
# Pillow plugins we let identify files; restricting them avoids weak-magic misidentification of junk
# (e.g. TGA) and plugins that shell out (EPS -> Ghostscript).
_READ_FORMATS = ("PNG", "JPEG", "BMP", "WEBP", "TIFF", "GIF", "PPM")
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError, struct.error, zlib.error)
_GRAY_MODES = ("1", "L", "LA", "La", "I", "F")
_OPEN_LOCK = threading.Lock()  # warnings.catch_warnings() is not thread-safe before Python 3.14


@dataclass(frozen=True)
class ImageMetadata:
    """Metadata that is safe to copy from an input image to its upscaled output.

    ``icc_profile``: the embedded colour profile (written to PNG, JPEG, WebP and TIFF outputs whose colour
    space matches it: an RGB profile on colour output, a GRAY one on grayscale output). ``dpi``: (x, y)
    (PNG, JPEG, TIFF, BMP outputs). ``text``: PNG text chunks (PNG outputs).
    """

    icc_profile: bytes | None = None
    dpi: tuple[float, float] | None = None
    text: dict[str, str] = field(default_factory=dict)

    def scaled(self, in_size: tuple[int, int], out_size: tuple[int, int]) -> ImageMetadata:
        """For an image resized from ``in_size`` to ``out_size`` (H, W): the DPI grows with the pixel count
        per axis, so the printed size stays the same."""
        if self.dpi is None:
            return self
        dpi = (self.dpi[0] * out_size[1] / in_size[1], self.dpi[1] * out_size[0] / in_size[0])
        return ImageMetadata(self.icc_profile, dpi, dict(self.text))


@dataclass(frozen=True)
class LoadedImage:
    """A decoded image: ``rgb`` uint8 (H, W, 3), unmultiplied; ``alpha`` uint8 (H, W) or None.

    ``mode`` is the source's Pillow mode (for 16-bit colour PNGs "RGB", "RGBA" or "LA"); ``bit_depth``
    is 8, or 16 when the source had more than 8 bits per sample (converted as described above).
    ``frames``: the frame count of the file (animated GIF/PNG/WebP, multi-page TIFF); only the first is read.
    """

    rgb: np.ndarray
    alpha: np.ndarray | None
    mode: str
    path: Path
    bit_depth: int = 8
    metadata: ImageMetadata = field(default_factory=ImageMetadata)
    frames: int = 1

    @property
    def was_grayscale(self) -> bool:
        """True when the source had one colour channel (its three RGB channels are then equal)."""
        return self.mode in _GRAY_MODES or self.mode.startswith("I;16")


@functools.cache
def _read_formats() -> tuple[str, ...]:
    Image.init()
    return tuple(f for f in _READ_FORMATS if f in Image.OPEN)


def _declared_size(path: Path) -> tuple[int, int] | None:
    """Header size of a file that Pillow refused to open as a decompression bomb (None if unknown)."""
    with contextlib.suppress(Exception), open(path, "rb") as fp:
        prefix = fp.read(16)
        for fmt in _read_formats():
            factory, accept = Image.OPEN[fmt]
            ok = accept is None or accept(prefix)
            if ok and not isinstance(ok, str):
                fp.seek(0)
                return factory(fp, str(path)).size
    return None


def _too_large(path: Path, size: tuple[int, int] | None, limit: int) -> ImageReadError:
    dims = f"{size[0]}x{size[1]} pixels" if size else "image size"
    return ImageReadError(path, f"image too large: {dims} exceeds limit {limit}")


@contextlib.contextmanager
def _opened(path: Path, max_pixels: int) -> Iterator[Image.Image]:
    """Open ``path`` (header only) with all the checks that do not need the pixel data."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ImageReadError(path, "file not found") from None
    except OSError as exc:
        raise ImageReadError(path, f"cannot access file: {exc.strerror or exc}") from exc
    if stat.S_ISDIR(st.st_mode):
        raise ImageReadError(path, "is a directory, not an image file")
    if st.st_size == 0:
        raise ImageReadError(path, "empty file")
    try:
        with _OPEN_LOCK, warnings.catch_warnings():  # our own max_pixels check below is the authority
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path, formats=_read_formats())
    except Image.UnidentifiedImageError:
        raise ImageReadError(path, "not an image (unrecognised format)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        pil_limit = 2 * Image.MAX_IMAGE_PIXELS if Image.MAX_IMAGE_PIXELS else max_pixels
        raise _too_large(path, _declared_size(path), min(max_pixels, pil_limit)) from exc
    except PermissionError:
        raise ImageReadError(path, "cannot read file: permission denied") from None
    except _DECODE_ERRORS as exc:
        raise ImageReadError(path, "corrupt or unsupported image header") from exc
    with img:
        if img.width * img.height > max_pixels:
            raise _too_large(path, img.size, max_pixels)
        yield img


def _decode(img: Image.Image, path: Path) -> None:
    try:
        img.load()
    except _DECODE_ERRORS as exc:
        raise ImageReadError(path, "truncated or corrupt image data") from exc


def _load(img: Image.Image, path: Path) -> int:
    """Decode all pixel data, then apply the EXIF orientation in place; returns the orientation applied."""
    _decode(img, path)
    orientation = _orientation(img)
    try:
        ImageOps.exif_transpose(img, in_place=True)
    except Exception as exc:  # bad metadata must not make the pixels unreadable
        logger.warning("%s: ignoring unreadable EXIF orientation (%s)", path, exc)
    return orientation


def _orientation(img: Image.Image) -> int:
    with contextlib.suppress(Exception):
        return int(img.getexif().get(0x0112) or 1)
    return 1


def _metadata(img: Image.Image, orientation: int) -> ImageMetadata:
    """ICC profile, DPI (swapped when the EXIF orientation turned the image by 90 degrees), PNG text."""
    icc = img.info.get("icc_profile")
    icc = bytes(icc) if isinstance(icc, bytes | bytearray) and len(icc) >= 128 else None
    dpi = None
    with contextlib.suppress(Exception):
        x, y = (float(v) for v in img.info["dpi"])
        if all(np.isfinite(v) and v > 0 for v in (x, y)):
            dpi = (y, x) if orientation in (5, 6, 7, 8) else (x, y)
    text: dict[str, str] = {}
    with contextlib.suppress(Exception):
        if img.format == "PNG":
            text = {str(k): str(v) for k, v in img.text.items()}
    return ImageMetadata(icc, dpi, text)


def read_image_with_alpha(path: str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Read an image as uint8 RGB (H, W, 3) plus its alpha channel (H, W) or None (see the module doc).

    RGB is never composited over a background: upscale ``rgb`` and ``alpha`` separately, then
    re-attach alpha (``np.dstack``) before writing. Images with more than ``max_pixels`` pixels are
    refused before any pixel data is decoded; Pillow's global ``Image.MAX_IMAGE_PIXELS`` still caps
    ``max_pixels`` at twice its value.
    Raises :class:`ImageReadError` with a one-line message naming the file and the problem.
    """
    path = Path(path)
    with _opened(path, max_pixels) as img:
        mode, args = img.mode, img.tile[0][3] if img.tile else ""
        frames = int(getattr(img, "n_frames", 1) or 1)
        rawmode = args if isinstance(args, str) else str(args[0]) if args else ""
        if img.format != "PNG" or rawmode not in ("RGB;16B", "RGBA;16B", "LA;16B"):
            meta = _metadata(img, _load(img, path))
            rgb, alpha = _convert(img, path)
            rgb = rgb if rgb.flags.writeable else rgb.copy()
            is_wide = mode in ("I", "F") or mode.startswith("I;16") or ";16" in rawmode
            return LoadedImage(rgb, alpha, mode, path, 16 if is_wide else 8, meta, frames)
        if rawmode == "LA;16B":  # 4 bytes per pixel read as 8-bit RGBA: L-hi, L-lo, A-hi, A-lo
            _set_rawmode(img, "RGBA")
        meta = _metadata(img, _load(img, path))
        data = np.asarray(img).astype(np.uint16)
    if rawmode == "LA;16B":
        wide = np.stack([data[..., 0] << 8 | data[..., 1], data[..., 2] << 8 | data[..., 3]], axis=-1)
        return LoadedImage(_gray3(_to8(wide[..., 0])), _to8(wide[..., 1]), "LA", path, 16, meta, frames)
    with _opened(path, max_pixels) as low:  # same samples again, keeping the low bytes this time
        _set_rawmode(low, rawmode.replace("16B", "16L"))
        _load(low, path)
        wide = data << 8 | np.asarray(low)
    alpha = _to8(wide[..., 3]) if wide.shape[-1] == 4 else None
    return LoadedImage(_to8(wide[..., :3]), alpha, mode, path, 16, meta, frames)


def read_image(path: str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read an image as uint8 RGB (H, W, 3); alpha, if any, is dropped (RGB stays unmultiplied).

    See :func:`read_image_with_alpha` for the checks and the errors raised.
    """
    return read_image_with_alpha(path, max_pixels).rgb


def load_as_tensor(path: str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_PIXELS) -> torch.Tensor:
    """Read an image as a float32 (3, H, W) tensor in [0, 1] (value / 255); alpha is dropped."""
    import torch

    return torch.from_numpy(read_image(path, max_pixels)).permute(2, 0, 1).contiguous().float().div_(255)


# re-exported (their modules import this one only lazily, so these imports come last)
from liif_sr.data.image_convert import tensor_to_uint8  # noqa: E402, F401
from liif_sr.data.image_files import check_images, report_bad_files, scan_images  # noqa: E402, F401
from liif_sr.data.image_write import check_output_path, write_image_atomic  # noqa: E402, F401
