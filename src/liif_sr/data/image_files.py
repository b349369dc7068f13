"""Image files in folders: :func:`scan_images` (what a folder holds; dangling symlinks are counted in a
warning), :func:`check_images` (decode each file, split good from bad), :func:`report_bad_files` and
:func:`image_size` (from the header).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from liif_sr.errors import ImageReadError, UserError

logger = logging.getLogger("liif_sr.data.images")


def scan_images(folder: str | os.PathLike[str], recursive: bool = False) -> list[Path]:
    """Sorted image files (by :data:`IMAGE_EXTENSIONS`, any case) in ``folder``; hidden files skipped.

    Raises :class:`UserError` if the folder does not exist or holds no images.
    """
    from liif_sr.data.images import IMAGE_EXTENSIONS

    folder = Path(folder)
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise UserError(f"image folder {what}: {folder}")
    named = [
        p
        for p in (folder.rglob("*") if recursive else folder.iterdir())
        if p.suffix.lower() in IMAGE_EXTENSIONS
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    ]
    found = [p for p in named if p.is_file()]
    dangling = [p.relative_to(folder).as_posix() for p in named if p.is_symlink() and not p.exists()]
    if dangling:
        more = f" and {len(dangling) - 5} more" if len(dangling) > 5 else ""
        logger.warning(
            "%s: skipped %d dangling symlink(s) (target missing): %s%s",
            folder, len(dangling), ", ".join(sorted(dangling)[:5]), more,
        )  # fmt: skip
    if not found:
        raise UserError(f"no images found in {folder} (looked for {', '.join(IMAGE_EXTENSIONS)})")
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def _check_one(path: Path, min_size: tuple[int, int] | None, max_pixels: int) -> str | None:
    from liif_sr.data.images import _decode, _opened

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
    max_pixels: int | None = None,
    workers: int = 8,
) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Fully decode each file (in ``workers`` threads) and split them into (good, [(bad, reason)]).

    ``min_size`` is (min_width, min_height) after EXIF orientation. Order of ``paths`` is kept.
    """
    from liif_sr.data.images import DEFAULT_MAX_PIXELS

    max_pixels = DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels
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


def image_size(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    """``(H, W)`` of an image file as :func:`~liif_sr.data.images.read_image` returns it (after the EXIF
    orientation), from its header only; None if it cannot be opened as an image."""
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as img:
                w, h = img.size
                with contextlib.suppress(Exception):
                    if img.getexif().get(0x0112) in (5, 6, 7, 8):
                        w, h = h, w
    except Exception:  # noqa: BLE001 - any unreadable file: the caller decides
        return None
    return h, w
