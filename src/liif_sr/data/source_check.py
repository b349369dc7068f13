"""The start-up check of a data config's images, without decoding them: what
:meth:`RandomScaleDataModule.setup <liif_sr.data.datamodule.RandomScaleDataModule.setup>` would refuse later.

* a downloadable dataset (``dataset_name``) that is missing names its download command;
* every source exists (folder, file, ``skimage:NAME``) and the training sources hold images;
* the training images are large enough for the crops (:func:`~liif_sr.data.sampling.min_image_side`): read
  from the file headers (``skimage:`` photos are decoded, they are small). A too-small image is refused,
  or, with ``skip_bad_files``, left to the data module to skip, unless none would be left.

Unreadable files are left to the data module's full check (it decodes every file).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from liif_sr.data.sampling import min_image_side
from liif_sr.data.sources import expand_sources, load_source_image
from liif_sr.errors import UserError


@functools.lru_cache(maxsize=8192)  # a -m sweep checks the same images for every job
def image_min_side(item: str) -> int | None:
    """The smaller side of a source image (header only for files), or None if it cannot be read cheaply."""
    if item.startswith("skimage:"):
        return int(min(load_source_image(item).shape[-2:]))
    from PIL import Image

    try:
        with Image.open(item) as img:
            return int(min(img.size))
    except Exception:  # noqa: BLE001 - the data module's full check reports it
        return None


def _crop_reason(inp_size: int, sample_q: int | None, need: int) -> str:
    if need == inp_size:
        return f"the LR crop data.inp_size={inp_size}"
    return f"data.sample_q={sample_q} HR pixels per crop (data.inp_size={inp_size})"


def check_data_sources(data: Mapping[str, Any]) -> None:
    """Refuse (one line) a data config whose images are missing or too small; ``data`` is the ``data`` node."""
    name = data.get("dataset_name")
    if name:
        from liif_sr.data.download.manifest import require_dataset

        for src in [*data.get("train_sources", []), *data.get("val_sources", [])]:
            require_dataset(Path(str(src)), str(name))
    sources = [str(s) for s in data.get("train_sources") or []]
    items = expand_sources(sources, data.get("first_k"))
    expand_sources([str(s) for s in data.get("val_sources") or []], data.get("val_first_k"))
    if not items:
        raise UserError(f"data.train_sources={sources}: no training images found there")
    inp_size, sample_q = int(data["inp_size"]), data.get("sample_q")
    need = min_image_side(inp_size, sample_q)
    small = [(item, side) for item in items if (side := image_min_side(item)) is not None and side < need]
    if not small or (data.get("skip_bad_files") and len(small) < len(items)):
        return
    item, side = min(small, key=lambda s: s[1])
    skip = "" if data.get("skip_bad_files") else ", or set data.skip_bad_files=true to skip them"
    raise UserError(
        f"{len(small)} of {len(items)} training images are smaller than {need} px on a side, needed for "
        f"{_crop_reason(inp_size, sample_q, need)} (smallest: {item}, {side} px); lower data.inp_size"
        f"{' / data.sample_q' if need > inp_size else ''}{skip}"
    )
