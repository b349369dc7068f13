"""``liif-sr upscale INPUT... (--scale S | --size HxW) --output PATH``: one image or folders of images."""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from liif_sr.errors import UserError
from liif_sr.inference.upscale_args import DEFAULT_MODEL, register  # noqa: F401  (the sub-command set-up)
from liif_sr.inference.upscale_plan import Job, Plan, plan  # noqa: F401  (re-exported)

if TYPE_CHECKING:
    from liif_sr.models.upscale_options import UpscaleOptions


@dataclass
class Report:
    done: int = 0
    failed: list[tuple[Path, str]] = field(default_factory=list)
    skipped: int = 0


def _check_options(args: argparse.Namespace) -> None:
    """Refuse bad option values (exit 2, before any work); ``args.options``: :func:`options_from_args`."""
    from liif_sr.inference.upscale import parse_scale, parse_size

    if args.batch < 1:
        raise UserError(f"--batch {args.batch}: must be a positive integer")
    limit = args.max_output_pixels
    if math.isnan(limit) or limit < 1:
        raise UserError(f"--max-output-pixels {limit:g}: must be at least 1 (inf = no limit)")
    args.scale = parse_scale(args.scale) if args.scale is not None else None
    args.size = parse_size(args.size) if args.size is not None else None
    if args.size is not None and args.size[0] * args.size[1] > limit:
        raise UserError(
            f"--size {args.size[0]}x{args.size[1]}: {args.size[0] * args.size[1]} pixels exceeds "
            f"--max-output-pixels {limit:.0f}"
        )
    if args.max_memory is not None:
        from liif_sr.inference.tiling import parse_bytes

        try:
            args.max_memory = parse_bytes(args.max_memory)
        except ValueError as exc:
            raise UserError(f"--max-memory: {exc}") from None
    args.options = options_from_args(args)


# the CLI's wording for a refused value of these flags (others: the options' own message)
_REASONS = {"chunk": "must be a positive integer", "tile": "must be >= 0 (0 = off)"}


def options_from_args(args: argparse.Namespace) -> UpscaleOptions:
    """The command's :class:`UpscaleOptions` (size: per image); a refused value is one line naming its flag."""
    import dataclasses

    from liif_sr.errors import InvalidArgumentError
    from liif_sr.models.upscale_options import UpscaleOptions

    fields = [f.name for f in dataclasses.fields(UpscaleOptions) if f.name != "size"]  # size: per image
    try:
        return UpscaleOptions.create(**{name: getattr(args, name) for name in fields})
    except InvalidArgumentError as exc:
        name = getattr(exc, "option", "")
        value = getattr(args, name, None)
        shown = f"{value:g}" if isinstance(value, float) else value
        raise UserError(f"--{name.replace('_', '-')} {shown}: {_REASONS.get(name, exc)}") from None


def run(args: argparse.Namespace) -> int:
    _check_options(args)
    scale, size = args.scale, args.size
    from liif_sr.inference.upscale import target_size

    planned = plan(
        args.inputs,
        args.output,
        args.format,
        args.overwrite,
        args.recursive,
        args.skip_existing,
        out_size=lambda hw: target_size(hw, scale, size),
    )
    jobs = planned.jobs
    for note in planned.notes:
        print(f"liif-sr upscale: note: {note}", file=sys.stderr)

    import torch
    from tqdm import tqdm

    from liif_sr.checkpoints import load_model, resolve_checkpoint
    from liif_sr.inference.upscale import for_model, resolve_device, tile_note
    from liif_sr.models.precision import precision_note

    device = resolve_device(args.device)
    weights = resolve_checkpoint(args.checkpoint)
    if Path(args.checkpoint).is_dir():
        print(f"liif-sr upscale: note: using the run's weights {weights}", file=sys.stderr)
    model = load_model(weights, device=device)
    note = tile_note(model, args.options)
    if note:
        print(f"liif-sr upscale: note: --{note}", file=sys.stderr)
    options = for_model(model, args.options)  # once per command
    precision = f"precision {options.precision}" + (
        f" ({precision_note(args.options.precision, device, model.head)})"
        if args.options.precision == "auto"
        else ""
    )
    report = Report(skipped=planned.skipped_existing)
    start = time.perf_counter()
    bar = tqdm(total=len(jobs), unit="img", disable=args.quiet, file=sys.stderr)
    pending: list[tuple[Job, object, tuple[int, int]]] = []

    def flush() -> None:
        if pending:
            _process(model, pending, options, args, report)
            bar.update(len(pending))
            pending.clear()

    from liif_sr.data.images import read_image_with_alpha

    for job in jobs:
        try:
            img = read_image_with_alpha(job.src)
            if img.frames > 1:
                tqdm.write(
                    f"liif-sr upscale: note: {job.src} has {img.frames} frames; only the first is upscaled",
                    file=sys.stderr,
                )
            h, w = img.rgb.shape[:2]
            try:
                out_size = target_size((h, w), scale, size)
            except UserError as exc:
                raise UserError(f"{job.src}: {exc}") from None
            if out_size[0] * out_size[1] > args.max_output_pixels:
                raise UserError(
                    f"{job.src}: output {out_size[0]}x{out_size[1]} exceeds --max-output-pixels "
                    f"{args.max_output_pixels:.0f}"
                )
        except UserError as exc:
            report.failed.append((job.src, str(exc)))
            bar.update(1)
            continue
        if pending and (
            pending[0][1].rgb.shape != img.rgb.shape
            or pending[0][2] != out_size
            or len(pending) >= args.batch
            or img.alpha is not None
        ):
            flush()
        pending.append((job, img, out_size))
    flush()
    bar.close()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    for path, reason in report.failed:
        msg = reason if str(path) in reason else f"{path}: {reason}"
        print(f"liif-sr upscale: failed: {msg}", file=sys.stderr)
    rate = report.done / seconds if seconds > 0 else float("inf")
    print(
        f"upscaled {report.done} image(s) in {seconds:.2f} s ({rate:.2f} images/s, {precision})"
        + (f"; {report.skipped} skipped (output exists)" if report.skipped else "")
        + (f"; {len(report.failed)} failed" if report.failed else ""),
        file=sys.stderr,
    )
    return 1 if report.failed else 0


def _process(model, pending, options: UpscaleOptions, args: argparse.Namespace, report: Report) -> None:
    """Upscale and write one batch of equal-sized images (``pending``) with the command's ``options``."""
    import numpy as np
    import torch

    from liif_sr.data.images import write_image_atomic
    from liif_sr.errors import OutputExistsError
    from liif_sr.inference.upscale import to_tensor, to_uint8, upscale_alpha, upscale_with

    out_size = pending[0][2]
    lr = torch.stack([to_tensor(img.rgb) for _, img, _ in pending])
    try:
        sr = upscale_with(model, lr, options.with_size(out_size)).cpu()
    except UserError as exc:  # e.g. an image too large for --max-memory: these files fail, the rest go on
        report.failed += [(job.src, str(exc)) for job, _, _ in pending]
        return
    for (job, img, _), out in zip(pending, sr):
        arr = to_uint8(out)
        if img.was_grayscale:  # grayscale in, grayscale out (channel mean of the RGB prediction)
            arr = to_uint8(out.mean(0, keepdim=True))
        if img.alpha is not None:  # alpha preserved: upscaled separately with bicubic
            arr = np.concatenate([arr, upscale_alpha(img.alpha, out_size)[..., None]], axis=2)
        elif arr.shape[2] == 1:
            arr = arr[..., 0]
        metadata = img.metadata.scaled(img.rgb.shape[:2], out_size)
        try:
            job.dst.parent.mkdir(parents=True, exist_ok=True)  # subfolders of a --recursive output
        except OSError as exc:
            report.failed.append((job.src, f"cannot create {job.dst.parent}: {exc.strerror or exc}"))
            continue
        try:
            write_image_atomic(job.dst, arr, overwrite=args.overwrite, metadata=metadata)
            report.done += 1
        except OutputExistsError as exc:
            if args.skip_existing:  # written meanwhile by another run
                report.skipped += 1
            else:
                report.failed.append((job.src, str(exc)))
        except UserError as exc:
            report.failed.append((job.src, str(exc)))
