"""``liif-sr upscale INPUT... (--scale S | --size HxW) --output PATH``: one image or folders of images."""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from liif_sr.errors import UserError

DEFAULT_MODEL = "edsr-baseline-liif"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "upscale",
        help="upscale images to any size or scale",
        description="Upscale images (files or folders) with a LIIF model. Output sizes are HxW (height first).",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files and/or folders of images")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--scale", type=str, help="scale factor, e.g. 4 or 2.5, or per axis SYxSX (e.g. 2x3)")
    g.add_argument("--size", type=str, help="output size HxW, e.g. 800x800")
    p.add_argument("--output", "--out", "-o", required=True, help="output file (one input) or folder")
    p.add_argument(
        "--checkpoint",
        "-c",
        default=DEFAULT_MODEL,
        help=f"checkpoint file (liif-sr or official LIIF) or shipped model name (default {DEFAULT_MODEL})",
    )
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    p.add_argument("--chunk", type=int, default=65536, help="queries decoded at once (bounds memory)")
    p.add_argument("--batch", type=int, default=4, help="images of equal size processed together")
    p.add_argument(
        "--cell-clip",
        type=float,
        default=None,
        metavar="S",
        help="use the cell of xS for larger scales (LTE-style; off by default, S=4 is typical)",
    )
    p.add_argument(
        "--tile",
        type=int,
        default=0,
        metavar="N",
        help="encode the input in NxN LR tiles (exact; bounds memory for large inputs; 0 = off)",
    )
    p.add_argument(
        "--max-memory",
        default=None,
        metavar="SIZE",
        help="memory budget, e.g. 8G: with --tile 0, pick the tile size from it (off by default)",
    )
    p.add_argument(
        "--max-output-pixels",
        type=float,
        default=100e6,
        help="refuse outputs larger than this many pixels (default 100e6)",
    )
    p.add_argument(
        "--format",
        default="png",
        choices=["png", "jpg", "webp", "bmp", "tif"],
        help="output format for folder outputs",
    )
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def parse_scale(text: str) -> float | tuple[float, float]:
    parts = text.lower().split("x")
    try:
        vals = [float(v) for v in parts]
    except ValueError:
        raise UserError(f"--scale {text!r}: expected a number like 4 or 2.5 (or SYxSX)") from None
    for v in vals:
        if not math.isfinite(v) or v <= 0:
            raise UserError(f"--scale {text!r}: the scale must be a positive finite number")
    if len(vals) == 1:
        return vals[0]
    if len(vals) == 2:
        return vals[0], vals[1]
    raise UserError(f"--scale {text!r}: expected one number or SYxSX")


@dataclass
class Job:
    src: Path
    dst: Path


@dataclass
class Report:
    done: int = 0
    failed: list[tuple[Path, str]] = field(default_factory=list)


def plan_jobs(inputs: list[str], output: str, fmt: str, overwrite: bool) -> list[Job]:
    """Map inputs to output files; check every output path before any work is done."""
    from liif_sr.data.images import IMAGE_EXTENSIONS, check_output_path, scan_images

    sources: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            sources += scan_images(path)
        elif path.is_file() or path.is_symlink():
            sources.append(path)
        else:
            raise UserError(f"input not found: {path}")
    out = Path(output)
    single_file = len(sources) == 1 and out.suffix.lower() in IMAGE_EXTENSIONS
    if single_file:
        jobs = [Job(sources[0], out)]
    else:
        if out.suffix.lower() in IMAGE_EXTENSIONS:
            raise UserError(
                f"--output {out} looks like a file but there are {len(sources)} inputs; give a folder"
            )
        if out.exists() and not out.is_dir():
            raise UserError(f"--output {out} exists and is not a folder")
        if not out.exists():
            if not out.parent.is_dir():
                raise UserError(f"output directory does not exist: {out.parent}")
            out.mkdir()
        jobs, seen = [], {}
        for src in sources:
            dst = out / f"{src.stem}.{fmt}"
            if dst in seen:
                raise UserError(f"{src} and {seen[dst]} would both be written to {dst}")
            seen[dst] = src
            jobs.append(Job(src, dst))
    for job in jobs:
        check_output_path(job.dst, overwrite)
    return jobs


def run(args: argparse.Namespace) -> int:
    from liif_sr.inference.upscale import parse_size

    scale = parse_scale(args.scale) if args.scale is not None else None
    size = parse_size(args.size) if args.size is not None else None
    if args.chunk < 1 or args.batch < 1:
        raise UserError("--chunk and --batch must be positive")
    if args.tile < 0:
        raise UserError("--tile must be >= 0 (0 = off)")
    if args.max_memory is not None:
        from liif_sr.inference.tiling import parse_bytes

        try:
            args.max_memory = parse_bytes(args.max_memory)
        except ValueError as exc:
            raise UserError(f"--max-memory: {exc}") from None
    jobs = plan_jobs(args.inputs, args.output, args.format, args.overwrite)

    import torch
    from tqdm import tqdm

    from liif_sr.checkpoints import load_model
    from liif_sr.inference.upscale import resolve_device

    device = resolve_device(args.device)
    model = load_model(args.checkpoint, device=device)
    report = Report()
    start = time.perf_counter()
    bar = tqdm(total=len(jobs), unit="img", disable=args.quiet, file=sys.stderr)
    pending: list[tuple[Job, object, tuple[int, int]]] = []

    def flush() -> None:
        if pending:
            _process(model, pending, args, device, report)
            bar.update(len(pending))
            pending.clear()

    from liif_sr.data.images import read_image_with_alpha
    from liif_sr.inference.upscale import target_size

    for job in jobs:
        try:
            img = read_image_with_alpha(job.src)
            h, w = img.rgb.shape[:2]
            out_size = target_size((h, w), scale, size)
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
        f"upscaled {report.done} image(s) in {seconds:.2f} s ({rate:.2f} images/s)"
        + (f"; {len(report.failed)} failed" if report.failed else ""),
        file=sys.stderr,
    )
    return 1 if report.failed else 0


def _process(model, pending, args, device, report: Report) -> None:
    import numpy as np
    import torch

    from liif_sr.data.images import write_image_atomic
    from liif_sr.inference.upscale import to_tensor, to_uint8, upscale_alpha, upscale_tensor

    out_size = pending[0][2]
    lr = torch.stack([to_tensor(img.rgb) for _, img, _ in pending]).to(device)
    sr = upscale_tensor(
        model, lr, out_size, args.precision, args.chunk, args.cell_clip, args.tile, args.max_memory
    ).cpu()
    for (job, img, _), out in zip(pending, sr):
        arr = to_uint8(out)
        if img.was_grayscale:  # grayscale in, grayscale out (channel mean of the RGB prediction)
            arr = to_uint8(out.mean(0, keepdim=True))
        if img.alpha is not None:  # alpha preserved: upscaled separately with bicubic
            arr = np.concatenate([arr, upscale_alpha(img.alpha, out_size)[..., None]], axis=2)
        elif arr.shape[2] == 1:
            arr = arr[..., 0]
        try:
            write_image_atomic(job.dst, arr, overwrite=args.overwrite)
            report.done += 1
        except UserError as exc:
            report.failed.append((job.src, str(exc)))
