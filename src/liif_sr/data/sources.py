"""Image sources for training and validation: folders, files, and images embedded in scikit-image.

A source is a string: a folder (every image in it, sorted), an image file, or ``skimage:<name>`` for one
of the CC0 / public-domain photos that ship inside the scikit-image wheel (no download needed).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from liif_sr.errors import UserError

log = logging.getLogger(__name__)

#: photos shipped with scikit-image (offline); camera/brick/grass/gravel are grayscale
SKIMAGE_PHOTOS = (
    "astronaut",
    "coffee",
    "chelsea",
    "hubble_deep_field",
    "retina",
    "rocket",
    "immunohistochemistry",
    "motorcycle_left",
    "motorcycle_right",
    "camera",
    "brick",
    "grass",
    "gravel",
)


def _skimage(name: str) -> np.ndarray:
    import skimage.data as data

    if name not in SKIMAGE_PHOTOS:
        raise UserError(f"unknown embedded image skimage:{name}; choose from {', '.join(SKIMAGE_PHOTOS)}")
    if name.startswith("motorcycle_"):
        left, right, _ = data.stereo_motorcycle()
        img = left if name.endswith("left") else right
    else:
        img = getattr(data, name)()
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return np.ascontiguousarray(img[..., :3]).astype(np.uint8)


def expand_sources(sources: Sequence[str], first_k: int | None = None) -> list[str]:
    """Expand folders into sorted image paths; keep ``skimage:`` names; raise on missing paths."""
    out: list[str] = []
    for src in sources:
        src = str(src)
        if src.startswith("skimage:"):
            out.append(src)
            continue
        path = Path(src).expanduser()
        if path.is_dir():
            from liif_sr.data.images import scan_images

            out += [str(p) for p in scan_images(path)]
        elif path.is_file():
            out.append(str(path))
        else:
            raise UserError(f"image source not found: {path}")
    return out[:first_k] if first_k else out


def load_source_image(item: str) -> Tensor:
    """One image as uint8 (3, H, W)."""
    if item.startswith("skimage:"):
        arr = _skimage(item.split(":", 1)[1])
    else:
        from liif_sr.data.images import read_image

        arr = read_image(item)
    return torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1).contiguous()


def image_name(item: str) -> str:
    return item.split(":", 1)[1] if item.startswith("skimage:") else Path(item).stem


def check_sources(items: Sequence[str], min_size: int, skip_bad: bool) -> list[str]:
    """Report unreadable or too-small images at start-up: fail fast with the list, or skip with a warning.

    ``min_size``: the smallest usable side (:func:`liif_sr.data.sampling.min_image_side`)."""
    from liif_sr.data.images import check_images, report_bad_files

    files = [Path(i) for i in items if not i.startswith("skimage:")]
    _, bad = check_images(files, min_size=(min_size, min_size)) if files else ([], [])
    for item in items:  # embedded photos: decoded anyway, only their size can be wrong
        if item.startswith("skimage:"):
            h, w = load_source_image(item).shape[-2:]
            if min(h, w) < min_size:
                need = f"{min_size}x{min_size}"
                bad.append((Path(item), f"too small: {w}x{h} pixels, need at least {need}"))
    if bad:
        msg = report_bad_files(bad)
        if not skip_bad:
            raise UserError(
                f"{len(bad)} unusable training image(s) (set data.skip_bad_files=true to skip): {msg}"
            )
        log.warning("skipping %d unusable image(s): %s", len(bad), msg)
    bad_set = {str(p) for p, _ in bad}
    return [i for i in items if i not in bad_set]
