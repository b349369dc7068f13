"""Bad and edge-case image files for tests, each written by a builder ``build(directory) -> path``.

``CORPUS`` maps a case name to its builder; ``EXPECTED`` maps it to "ok" or a substring of the
``ImageReadError`` message that ``liif_sr.data.images.read_image`` must raise. The source arrays of the
lossless cases are exposed (``GRAY``, ``RGBA``, ``GRAY16``, ``RGB16``, ...) so tests can check values.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

_rng = np.random.default_rng(1234)
GRAY = np.arange(16 * 24, dtype=np.uint16).reshape(16, 24).astype(np.uint8)
RGBA = _rng.integers(0, 256, (12, 10, 4), dtype=np.uint8)
RGBA[0, :, 3] = 0  # fully transparent row with non-zero colour: must come back unmultiplied
GRAY16 = np.linspace(0, 65535, 9 * 14).round().astype(np.uint16).reshape(9, 14)
RGB16 = _rng.integers(0, 65536, (7, 11, 3), dtype=np.uint16)
RGB16[0, 0] = (65535, 0, 255)  # -> (255, 0, 1): 255/257 rounds up, its high byte is 0
RGBA16 = _rng.integers(0, 65536, (6, 5, 4), dtype=np.uint16)
LA16 = _rng.integers(0, 65536, (5, 9, 2), dtype=np.uint16)
PALETTE = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [200, 100, 50]], dtype=np.uint8)
INDICES = (np.arange(8 * 6).reshape(8, 6) % 4).astype(np.uint8)
HUGE = 100_000


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def png_bytes(width: int, height: int, bit_depth: int, color_type: int, idat: bytes) -> bytes:
    """A PNG file from raw (already filtered, uncompressed) IDAT data, with correct CRCs."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(idat))
        + _png_chunk(b"IEND", b"")
    )


def png16_bytes(arr: np.ndarray) -> bytes:
    """16-bit PNG (gray, gray+alpha, RGB, RGBA by channel count); odd rows use the Sub filter."""
    h, w = arr.shape[:2]
    channels = 1 if arr.ndim == 2 else arr.shape[2]
    raw = arr.astype(">u2").reshape(h, -1).view(np.uint8).astype(np.int32)
    bpp = 2 * channels
    rows = []
    for y in range(h):
        row, filt = raw[y], y % 2
        if filt:  # Sub: difference to the byte one pixel to the left
            row = (row - np.concatenate([np.zeros(bpp, np.int32), row[:-bpp]])) % 256
        rows.append(bytes([filt]) + row.astype(np.uint8).tobytes())
    color_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    return png_bytes(w, h, 16, color_type, b"".join(rows))


def _noise(h: int, w: int) -> np.ndarray:
    return np.random.default_rng(7).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _save(directory: Path, name: str, img: Image.Image, **kwargs: object) -> Path:
    path = Path(directory) / name
    img.save(path, **kwargs)
    return path


def _write(directory: Path, name: str, data: bytes) -> Path:
    path = Path(directory) / name
    path.write_bytes(data)
    return path


def _assert_undecodable(path: Path) -> Path:
    try:
        with Image.open(path) as img:
            img.load()
    except OSError:
        return path
    raise RuntimeError(f"corpus bug: {path} decodes fine")


def truncated_png(directory: Path) -> Path:
    buf = io.BytesIO()
    Image.fromarray(_noise(64, 64)).save(buf, "PNG")
    data = buf.getvalue()
    return _assert_undecodable(_write(directory, "truncated.png", data[: len(data) * 6 // 10]))


def corrupt_jpeg(directory: Path) -> Path:
    buf = io.BytesIO()
    Image.fromarray(_noise(64, 96)).save(buf, "JPEG", quality=90)
    data = bytearray(buf.getvalue())
    sos = data.index(b"\xff\xda")
    start = sos + 2 + int.from_bytes(data[sos + 2 : sos + 4], "big")  # entropy-coded data begins here
    for i in range(start + 10, len(data) - 2, 7):
        if 0xFF not in (data[i - 1], data[i], data[i + 1]):
            data[i] ^= 0x55
    return _assert_undecodable(_write(directory, "corrupt.jpg", bytes(data)))


def empty_file(directory: Path) -> Path:
    return _write(directory, "empty.png", b"")


def random_bin(directory: Path) -> Path:
    return _write(directory, "random.bin", np.random.default_rng(3).bytes(4096))


def text_as_png(directory: Path) -> Path:
    return _write(directory, "notes.png", b"This is a text file, not a picture.\n" * 20)


def one_by_one(directory: Path) -> Path:
    return _save(directory, "one.png", Image.new("RGB", (1, 1), (10, 20, 30)))


def grayscale(directory: Path) -> Path:
    return _save(directory, "gray.png", Image.fromarray(GRAY, mode="L"))


def rgba(directory: Path) -> Path:
    return _save(directory, "rgba.png", Image.fromarray(RGBA, mode="RGBA"))


def png16_gray(directory: Path) -> Path:
    path = _save(directory, "gray16.png", Image.fromarray(GRAY16))
    with Image.open(path) as img:
        assert img.mode.startswith("I") and np.asarray(img).max() == 65535
    return path


def png16_rgb(directory: Path) -> Path:
    return _write(directory, "rgb16.png", png16_bytes(RGB16))


def png16_rgba(directory: Path) -> Path:
    return _write(directory, "rgba16.png", png16_bytes(RGBA16))


def png16_gray_alpha(directory: Path) -> Path:
    return _write(directory, "la16.png", png16_bytes(LA16))


def _palette_image() -> Image.Image:
    img = Image.fromarray(INDICES, mode="P")
    img.putpalette(PALETTE.ravel().tolist())
    return img


def palette(directory: Path) -> Path:
    return _save(directory, "palette.png", _palette_image())


def palette_transparent(directory: Path) -> Path:
    return _save(directory, "palette_alpha.png", _palette_image(), transparency=0)


def cmyk_jpeg(directory: Path) -> Path:
    cmyk = np.zeros((16, 32, 4), dtype=np.uint8)
    cmyk[:, 16:, 0] = 255  # left half white, right half cyan
    return _save(directory, "cmyk.jpg", Image.fromarray(cmyk, mode="CMYK"), quality=95)


def exif_rotated(directory: Path) -> Path:
    """40 wide x 20 high as stored, red block top-left, orientation 6 (display rotated 90 deg CW)."""
    arr = np.zeros((20, 40, 3), dtype=np.uint8)
    arr[:5, :5] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = 6
    return _save(directory, "rotated.jpg", Image.fromarray(arr), exif=exif.tobytes(), quality=95)


def huge_dimensions(directory: Path) -> Path:
    """A valid PNG header declaring HUGE x HUGE RGB pixels, with a few bytes of IDAT."""
    return _write(directory, "huge.png", png_bytes(HUGE, HUGE, 8, 2, b"\x00" * 64))


CORPUS: dict[str, Callable[[Path], Path]] = {
    f.__name__: f
    for f in (
        truncated_png,
        corrupt_jpeg,
        empty_file,
        random_bin,
        text_as_png,
        huge_dimensions,
        one_by_one,
        grayscale,
        rgba,
        png16_gray,
        png16_rgb,
        png16_rgba,
        png16_gray_alpha,
        palette,
        palette_transparent,
        cmyk_jpeg,
        exif_rotated,
    )
}

EXPECTED: dict[str, str] = dict.fromkeys(CORPUS, "ok") | {
    "truncated_png": "truncated or corrupt image data",
    "corrupt_jpeg": "truncated or corrupt image data",
    "empty_file": "empty file",
    "random_bin": "not an image (unrecognised format)",
    "text_as_png": "not an image (unrecognised format)",
    "huge_dimensions": f"image too large: {HUGE}x{HUGE} pixels exceeds limit",
}


def build_all(directory: Path) -> dict[str, Path]:
    """Write every case into ``directory``; returns name -> path."""
    return {name: build(Path(directory)) for name, build in CORPUS.items()}
