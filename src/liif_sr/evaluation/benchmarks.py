"""Evaluation pairs of the SR benchmarks (Set5, Set14, B100, Urban100, Manga109) and DIV2K validation.

A set is a folder of HR images plus, optionally, MATLAB-bicubic LR files in the EDSR layout
(``LR_bicubic/X4/babyx4.png`` for ``HR/baby.png``). The LIIF paper protocol (docs/method.md: Evaluation protocol):

* ×2/×3/×4 use the **given** LR files; the HR is cropped to ``(h_lr * s, w_lr * s)`` (the official
  ``sr-implicit-paired`` wrapper);
* larger scales (×6, ×8 on benchmarks; ×6..×30 on DIV2K) **generate** the LR from the HR with the official
  code's PIL bicubic: :func:`liif_sr.data.sampling.fixed_scale_pair`.

When a set has no LR folder for a given-LR scale (Urban100 on these machines), the LR is generated too,
with ``generate_with`` (``matlab`` reproduces the published numbers, like ``liif-sr make-lr`` run once).
Pairs are produced lazily, one image at a time (:func:`iter_pairs`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from liif_sr.data.download.manifest import lookup, require_dataset
from liif_sr.data.images import IMAGE_EXTENSIONS, read_image, scan_images
from liif_sr.data.resize import DOWNSAMPLE_METHODS, imresize_matlab_uint8
from liif_sr.data.sampling import fixed_scale_pair
from liif_sr.errors import DatasetMissingError, UserError

__all__ = [
    "BenchmarkSpec",
    "Pair",
    "generate_pair",
    "iter_pairs",
    "lr_source",
    "normalize_scale",
]

log = logging.getLogger(__name__)
PROTOCOLS = ("benchmark", "div2k")


def normalize_scale(scale: float | int | str) -> int | float:
    """``4``, ``4.0`` and ``"4"`` → ``4`` (int); non-integers stay float. Raises :class:`UserError` if not > 0."""
    try:
        value = float(scale)
    except (TypeError, ValueError):
        raise UserError(f"scale must be a number, got {scale!r}") from None
    if not (math.isfinite(value) and value > 1):
        raise UserError(f"scale must be a finite number > 1, got {scale!r}")
    return int(value) if value.is_integer() else value


@dataclass(frozen=True)
class BenchmarkSpec:
    """One evaluation set (a ``conf/benchmark/*.yaml`` entry).

    Attributes:
        name: display name (``"Set5"``).
        root: folder of the set.
        hr_dir: HR images, relative to ``root``.
        lr_dir: LR folder pattern relative to ``root``, with ``{scale}`` (``"LR_bicubic/X{scale}"``).
        lr_name: LR file stem pattern with ``{stem}`` and ``{scale}`` (``"{stem}x{scale}"``).
        protocol: ``"benchmark"`` (Y PSNR, shave = scale) or ``"div2k"`` (RGB, shave = scale + 6).
        given_lr_scales: scales evaluated on the LR files (when their folder exists).
        generated_lr_scales: scales whose LR is made from the HR (paper protocol).
        dataset: ``liif-sr download`` name used in the "missing" message (``"benchmark"``, ``"div2k"``).
        missing_hint: extra text for the "missing" message (sets that ``liif-sr download`` cannot fetch).
    """

    name: str
    root: Path
    hr_dir: str = "HR"
    lr_dir: str = "LR_bicubic/X{scale}"
    lr_name: str = "{stem}x{scale}"
    protocol: str = "benchmark"
    given_lr_scales: tuple[int, ...] = (2, 3, 4)
    generated_lr_scales: tuple[int | float, ...] = (6, 8)
    dataset: str = "benchmark"
    missing_hint: str | None = None

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise UserError(f"{self.name}: protocol must be one of {PROTOCOLS}, got {self.protocol!r}")

    @classmethod
    def from_config(cls, cfg: Any) -> BenchmarkSpec:
        """Build from a (resolved) config mapping with the attribute names as keys."""
        d = dict(cfg)
        for key in ("given_lr_scales", "generated_lr_scales"):
            d[key] = tuple(normalize_scale(s) for s in d.get(key) or ())
        d["root"] = Path(d["root"]).expanduser()
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise UserError(f"benchmark {d.get('name')}: unknown keys {sorted(unknown)}")
        return cls(**d)

    @property
    def hr_path(self) -> Path:
        return self.root / self.hr_dir

    @property
    def scales(self) -> tuple[int | float, ...]:
        """The set's own scales: given-LR ones first, then generated ones."""
        return tuple(dict.fromkeys((*self.given_lr_scales, *self.generated_lr_scales)))

    def lr_path(self, scale: float) -> Path | None:
        """LR folder for ``scale`` (None for non-integer scales, which have no EDSR folder)."""
        scale = normalize_scale(scale)
        return self.root / self.lr_dir.format(scale=scale) if isinstance(scale, int) else None

    def check_present(self) -> None:
        """Raise :class:`DatasetMissingError` (naming the download command) unless the HR folder has files."""
        try:
            lookup(self.dataset)
        except UserError:
            if not (self.hr_path.is_dir() and any(self.hr_path.iterdir())):
                hint = f": {self.missing_hint}" if self.missing_hint else ""
                raise DatasetMissingError(f"{self.name} not found at {self.hr_path}{hint}") from None
            return
        try:
            require_dataset(self.hr_path, self.dataset)
        except DatasetMissingError as exc:
            raise DatasetMissingError(f"{self.name}: {exc}") from None

    def hr_files(self, limit: int | None = None) -> list[Path]:
        """Sorted HR image files (the first ``limit`` when given)."""
        files = scan_images(self.hr_path)
        return files[:limit] if limit else files


@dataclass
class Pair:
    """One evaluation pair: ``lr`` uint8 (3, h, w), ``hr`` uint8 (3, H, W) with H, W = h·s, w·s (integer s)."""

    name: str
    lr: Tensor
    hr: Tensor


def lr_source(
    spec: BenchmarkSpec, scale: float, downsampler: str = "pil", generate_with: str | None = None
) -> str:
    """Where the LR of ``spec`` at ``scale`` comes from: ``"given"`` or the resampler that generates it.

    Given-LR scales use the LR folder when it exists, else ``generate_with`` (default: ``downsampler``);
    every other scale uses ``downsampler`` (the paper's PIL bicubic by default).
    """
    scale = normalize_scale(scale)
    for method in (downsampler, generate_with):
        if method is not None and method not in DOWNSAMPLE_METHODS:
            raise UserError(f"unknown resampler {method!r}; choose from {', '.join(DOWNSAMPLE_METHODS)}")
    if scale in spec.given_lr_scales:
        folder = spec.lr_path(scale)
        if folder is not None and folder.is_dir() and any(folder.iterdir()):
            return "given"
        return generate_with or downsampler
    return downsampler


def generate_pair(hr: Tensor, scale: float, method: str = "pil") -> tuple[Tensor, Tensor]:
    """LR made from ``hr`` (uint8 (3, H, W)) at ``scale``: ``(lr, hr_cropped)``, both uint8.

    ``matlab`` at an integer scale is exactly ``liif-sr make-lr`` (mod-crop, ``imresize(hr, 1/s)`` on uint8);
    everything else is the paper protocol :func:`~liif_sr.data.sampling.fixed_scale_pair`.
    """
    scale = normalize_scale(scale)
    if method == "matlab" and isinstance(scale, int):
        hr = hr[:, : hr.shape[-2] - hr.shape[-2] % scale, : hr.shape[-1] - hr.shape[-1] % scale]
        return imresize_matlab_uint8(hr, scale=1.0 / scale), hr
    return fixed_scale_pair(hr, scale, method)


def _to_chw(img: Any) -> Tensor:
    return torch.from_numpy(img).permute(2, 0, 1).contiguous()


def _find_lr(folder: Path, stem: str) -> Path | None:
    for ext in dict.fromkeys((".png", *IMAGE_EXTENSIONS)):
        for candidate in (folder / f"{stem}{ext}", folder / f"{stem}{ext.upper()}"):
            if candidate.is_file():
                return candidate
    return None


def _given_pair(spec: BenchmarkSpec, hr_file: Path, hr: Tensor, scale: int) -> Pair:
    folder = spec.lr_path(scale)
    assert folder is not None
    lr_file = _find_lr(folder, spec.lr_name.format(stem=hr_file.stem, scale=scale))
    if lr_file is None:
        raise UserError(
            f"{spec.name} x{scale}: no LR file {spec.lr_name.format(stem=hr_file.stem, scale=scale)}.* in {folder} "
            f"for {hr_file.name} (re-create the folder with `liif-sr make-lr {spec.hr_path} --out "
            f"{folder.parent} --scales {scale}`)"
        )
    lr = _to_chw(read_image(lr_file))
    h, w = lr.shape[-2] * scale, lr.shape[-1] * scale
    if h > hr.shape[-2] or w > hr.shape[-1]:
        raise UserError(
            f"{lr_file}: LR {lr.shape[-1]}x{lr.shape[-2]} x{scale} is larger than its HR "
            f"{hr.shape[-1]}x{hr.shape[-2]} ({hr_file})"
        )
    return Pair(hr_file.stem, lr, hr[:, :h, :w])


def iter_pairs(
    spec: BenchmarkSpec,
    scale: float,
    downsampler: str = "pil",
    generate_with: str | None = None,
    limit: int | None = None,
    files: Sequence[Path] | None = None,
) -> Iterator[Pair]:
    """Yield the evaluation pairs of ``spec`` at ``scale``, reading one image at a time.

    Args:
        spec: the set.
        scale: upscaling factor (> 1).
        downsampler: resampler for generated-LR scales (``pil`` = official LIIF code).
        generate_with: resampler for given-LR scales without an LR folder (default: ``downsampler``).
        limit: only the first ``limit`` images.
        files: HR files to use instead of scanning ``spec.hr_path``.

    Yields:
        :class:`Pair` with uint8 ``lr`` (3, h, w) and ``hr`` (3, H, W).
    """
    scale = normalize_scale(scale)
    source = lr_source(spec, scale, downsampler, generate_with)
    hr_files = list(files) if files is not None else spec.hr_files(limit)
    for hr_file in hr_files:
        hr = _to_chw(read_image(hr_file))
        if source == "given":
            assert isinstance(scale, int)
            yield _given_pair(spec, hr_file, hr, scale)
        else:
            if hr.shape[-2] < scale or hr.shape[-1] < scale:
                raise UserError(f"{hr_file}: {hr.shape[-1]}x{hr.shape[-2]} px is too small for x{scale}")
            lr, hr = generate_pair(hr, scale, source)
            yield Pair(hr_file.stem, lr, hr)
