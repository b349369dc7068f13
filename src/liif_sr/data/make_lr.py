"""``liif-sr make-lr``: make MATLAB-bicubic LR images from a folder of HR images (EDSR layout and names).

For each HR image (png/jpg/jpeg/bmp/webp/tif/tiff; read as 8-bit RGB with
:func:`liif_sr.data.images.read_image`, grayscale replicated to three channels) and each scale
``s``: mod-crop the HR to a multiple of ``s``, shrink it by ``1/s`` with MATLAB ``imresize`` bicubic on the
8-bit image (:func:`liif_sr.data.resize.imresize_matlab_uint8`, bit-exact with MATLAB) and write
``OUT/X{s}/{stem}x{s}.png`` (e.g. ``LR_bicubic/X4/babyx4.png``). Files are written atomically
(:func:`liif_sr.data.images.write_image_atomic`: temporary file in the same folder, then ``os.replace``), so
an interrupted run never leaves a truncated PNG, and existing files are kept unless ``--overwrite`` is
given, so a re-run resumes where it stopped. The result is bit-identical to the Set5 ``LR_bicubic/X2..X4``
files when run on Set5 ``HR``.

Example::

    liif-sr make-lr ../shared/data/benchmark/Urban100/HR --scales 2 3 4 --out data/Urban100/LR_bicubic
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
from tqdm import tqdm

from liif_sr.data.images import read_image, scan_images, write_image_atomic
from liif_sr.data.resize import imresize_matlab_uint8
from liif_sr.errors import UserError

__all__ = ["make_lr", "mod_crop", "register", "run"]


def mod_crop(img: torch.Tensor, scale: int) -> torch.Tensor:
    """Crop the bottom/right of a :math:`(..., H, W)` image so that H and W are multiples of ``scale``."""
    h, w = img.shape[-2:]
    return img[..., : h - h % scale, : w - w % scale]


def make_lr(
    hr_dir: Path, scales: Sequence[int], out_dir: Path, overwrite: bool = False, progress: bool = True
) -> tuple[int, int]:
    """Write ``out_dir/X{s}/{stem}x{s}.png`` for every image of ``hr_dir`` and every scale.

    Args:
        hr_dir: folder of HR images.
        scales: integer downscaling factors (>= 2).
        out_dir: output root; ``X{s}`` sub-folders are created.
        overwrite: replace existing LR files (otherwise they are skipped).
        progress: show a tqdm progress bar (on stderr).

    Returns:
        ``(written, skipped)`` file counts.

    Raises:
        UserError: ``hr_dir`` is missing or has no images, a scale is invalid, an image is smaller than a
            scale, or two images share a stem.
    """
    hr_dir, out_dir = Path(hr_dir), Path(out_dir)
    if not hr_dir.is_dir():
        raise UserError(f"HR folder not found: {hr_dir}")
    scales = list(dict.fromkeys(scales))
    if not scales or any(not isinstance(s, int) or isinstance(s, bool) or s < 2 for s in scales):
        raise UserError(f"scales must be integers >= 2, got {scales}")
    files = scan_images(hr_dir)
    stems = [p.stem for p in files]
    duplicates = sorted({s for s in stems if stems.count(s) > 1})
    if duplicates:
        raise UserError(f"several images share the name {duplicates[0]!r} in {hr_dir}; rename them")
    if out_dir.resolve() == hr_dir.resolve():
        raise UserError("--out must not be the HR folder")
    _check_out(out_dir, scales)
    _check_sizes(files, scales)

    written = skipped = 0
    bar = tqdm(files, desc="make-lr", unit="img", disable=not progress, file=sys.stderr)
    for path in bar:
        targets = {s: out_dir / f"X{s}" / f"{path.stem}x{s}.png" for s in scales}
        todo = {s: t for s, t in targets.items() if overwrite or not t.exists()}
        skipped += len(targets) - len(todo)
        if not todo:
            continue
        hr = torch.from_numpy(read_image(path)).permute(2, 0, 1)
        for s, target in todo.items():
            if hr.shape[-2] < s or hr.shape[-1] < s:
                raise UserError(
                    f"{path}: image of {hr.shape[-1]}x{hr.shape[-2]} px is smaller than scale {s}"
                )
            lr = imresize_matlab_uint8(mod_crop(hr, s), scale=1.0 / s)
            target.parent.mkdir(parents=True, exist_ok=True)  # X{s}/ only once it gets a file
            write_image_atomic(target, lr.permute(1, 2, 0).numpy(), overwrite=True)
            written += 1
    return written, skipped


def _check_out(out_dir: Path, scales: Sequence[int]) -> None:
    """``--out`` (and its ``X{s}`` folders) must be folders or creatable in a writable folder."""
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(
            f"--out {out_dir} exists and is not a folder; give a folder for the X{{s}}/ subfolders"
        )
    for s in scales:
        sub = out_dir / f"X{s}"
        if sub.exists() and not sub.is_dir():
            raise UserError(f"--out {out_dir}: {sub} exists and is not a folder")
    existing = next(p for p in (out_dir, *out_dir.parents) if p.exists())
    if not existing.is_dir():
        raise UserError(f"--out {out_dir}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"--out {out_dir}: cannot write to {existing} (permission denied)")


def _check_sizes(files: Sequence[Path], scales: Sequence[int]) -> None:
    """Refuse (before anything is written) an image smaller than a scale, from the files' headers."""
    from liif_sr.data.image_files import image_size

    top = max(scales)
    for path in files:
        size = image_size(path)  # None: unreadable, reported when it is read
        if size is not None and min(size) < top:
            s = next(s for s in sorted(scales) if min(size) < s)
            raise UserError(
                f"{path}: image of {size[1]}x{size[0]} px is smaller than scale {s} (nothing written)"
            )


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``make-lr`` sub-command to the ``liif-sr`` parser."""
    parser = subparsers.add_parser(
        "make-lr",
        help="make MATLAB-bicubic LR images (EDSR layout) from a folder of HR images",
        description=(
            "Mod-crop each HR image to a multiple of the scale, downscale it with MATLAB-exact bicubic "
            "(imresize on uint8) and write OUT/X{s}/{stem}x{s}.png."
        ),
    )
    parser.add_argument("hr_dir", type=Path, metavar="HR_DIR", help="folder of HR images")
    parser.add_argument(
        "--scales",
        type=int,
        nargs="+",
        default=[2, 3, 4],
        metavar="S",
        help="downscaling factors (default: 2 3 4)",
    )
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder (X{s}/ inside)")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace existing LR files (default: skip them)"
    )
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Handler of ``liif-sr make-lr``."""
    written, skipped = make_lr(args.hr_dir, args.scales, args.out, overwrite=args.overwrite)
    note = f", skipped {skipped} existing (use --overwrite to replace them)" if skipped else ""
    print(f"wrote {written} LR images to {args.out}{note}")
    return 0
