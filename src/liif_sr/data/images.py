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
* Multi-frame files (GIF, APNG, multi-page TIFF) give their first frame.

Writing (:func:`write_image_atomic`) goes through a temporary file in the destination folder and
``os.replace`` / ``os.link``, so an interrupted or failed write never leaves a partial output file.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import secrets
import stat
import struct
import threading
import warnings
import zlib
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps

from liif_sr.errors import ImageReadError, OutputExistsError, OutputPathError, UserError

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
    """

    rgb: np.ndarray
    alpha: np.ndarray | None
    mode: str
    path: Path
    bit_depth: int = 8
    metadata: ImageMetadata = field(default_factory=ImageMetadata)

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
        rawmode = args if isinstance(args, str) else str(args[0]) if args else ""
        if img.format != "PNG" or rawmode not in ("RGB;16B", "RGBA;16B", "LA;16B"):
            meta = _metadata(img, _load(img, path))
            rgb, alpha = _convert(img, path)
            rgb = rgb if rgb.flags.writeable else rgb.copy()
            is_wide = mode in ("I", "F") or mode.startswith("I;16") or ";16" in rawmode
            return LoadedImage(rgb, alpha, mode, path, 16 if is_wide else 8, meta)
        if rawmode == "LA;16B":  # 4 bytes per pixel read as 8-bit RGBA: L-hi, L-lo, A-hi, A-lo
            _set_rawmode(img, "RGBA")
        meta = _metadata(img, _load(img, path))
        data = np.asarray(img).astype(np.uint16)
    if rawmode == "LA;16B":
        wide = np.stack([data[..., 0] << 8 | data[..., 1], data[..., 2] << 8 | data[..., 3]], axis=-1)
        return LoadedImage(_gray3(_to8(wide[..., 0])), _to8(wide[..., 1]), "LA", path, 16, meta)
    with _opened(path, max_pixels) as low:  # same samples again, keeping the low bytes this time
        _set_rawmode(low, rawmode.replace("16B", "16L"))
        _load(low, path)
        wide = data << 8 | np.asarray(low)
    alpha = _to8(wide[..., 3]) if wide.shape[-1] == 4 else None
    return LoadedImage(_to8(wide[..., :3]), alpha, mode, path, 16, meta)


def read_image(path: str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read an image as uint8 RGB (H, W, 3); alpha, if any, is dropped (RGB stays unmultiplied).

    See :func:`read_image_with_alpha` for the checks and the errors raised.
    """
    return read_image_with_alpha(path, max_pixels).rgb


def scan_images(folder: str | os.PathLike[str], recursive: bool = False) -> list[Path]:
    """Sorted image files (by :data:`IMAGE_EXTENSIONS`, any case) in ``folder``; hidden files skipped.

    Raises :class:`UserError` if the folder does not exist or holds no images.
    """
    folder = Path(folder)
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise UserError(f"image folder {what}: {folder}")
    found = [
        p
        for p in (folder.rglob("*") if recursive else folder.iterdir())
        if p.suffix.lower() in IMAGE_EXTENSIONS
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
        and p.is_file()
    ]
    if not found:
        raise UserError(f"no images found in {folder} (looked for {', '.join(IMAGE_EXTENSIONS)})")
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def _check_one(path: Path, min_size: tuple[int, int] | None, max_pixels: int) -> str | None:
    try:
        with _opened(path, max_pixels) as img:
            w, h = img.size
            if min_size is not None:
                with contextlib.suppress(Exception):
                    if img.getexif().get(0x0112) in (5, 6, 7, 8):
                        w, h = h, w
                if w < min_size[0] or h < min_size[1]:
                    return f"too small: {w}x{h} pixels, need at least {min_size[0]}x{min_size[1]}"
            if img.format == "JPEG":
                img.draft(None, (1, 1))  # 1/8-scale decode still reads (and checks) all entropy data
            _decode(img, path)
    except ImageReadError as exc:
        return exc.reason
    return None


def check_images(
    paths: Iterable[str | os.PathLike[str]],
    min_size: tuple[int, int] | None = None,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    workers: int = 8,
) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Fully decode each file (in ``workers`` threads) and split them into (good, [(bad, reason)]).

    ``min_size`` is (min_width, min_height) after EXIF orientation. Order of ``paths`` is kept.
    """
    paths = [Path(p) for p in paths]
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        reasons = list(pool.map(lambda p: _check_one(p, min_size, max_pixels), paths))
    good = [p for p, r in zip(paths, reasons) if r is None]
    bad = [(p, r) for p, r in zip(paths, reasons) if r is not None]
    return good, bad


def report_bad_files(bad: Sequence[tuple[Path, str]], limit: int = 20) -> str:
    """Multi-line summary of :func:`check_images`'s bad files, at most ``limit`` listed."""
    lines = [f"{len(bad)} unreadable or unusable image file(s):"]
    lines += [f"  {path}: {reason}" for path, reason in bad[:limit]]
    if len(bad) > limit:
        lines.append(f"  ... and {len(bad) - limit} more")
    return "\n".join(lines)


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
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputPathError(f"cannot write to {parent}: permission denied")


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
        rgb = _gray3(arr if arr.ndim == 2 else arr[..., 0])
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


def load_as_tensor(path: str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_PIXELS) -> torch.Tensor:
    """Read an image as a float32 (3, H, W) tensor in [0, 1] (value / 255); alpha is dropped."""
    import torch

    return torch.from_numpy(read_image(path, max_pixels)).permute(2, 0, 1).contiguous().float().div_(255)


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
