#!/usr/bin/env python
"""Inference benchmark: each head's reference path (``plain``, built ``fast=False``) vs its fast path
(``fast=True``; fp32, bf16), for the LIIF, LTE and MetaSR heads and the EDSR-baseline, RDN and SwinIR encoders.

Prints a Markdown table for the current device (every row names it); ``--out BENCHMARKS.md`` appends it as
a dated section. Random weights at the paper sizes (EDSR-baseline-LIIF 1.57M, RDN-LIIF 22.3M parameters):
speed does not depend on the weights. Import-light (torch + liif_sr only) so it runs on a GPU box without
Hydra/Lightning.

    python scripts/bench_infer.py --quick                       # CPU: EDSR 100->800, one repeat
    python scripts/bench_infer.py --models lte,metasr,swinir --cases 100-800 --repeats 1
    python scripts/bench_infer.py --device cuda --large --out BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # run from a checkout without install

from liif_sr.inference.tiling import auto_tile, upscale_tiled  # noqa: E402
from liif_sr.models.build import build_model  # noqa: E402
from liif_sr.models.liif import LIIF  # noqa: E402

PLAIN_CHUNK = 30000  # the official eval_bsize
FAST_CHUNK = 65536


@dataclass(frozen=True)
class Case:
    name: str
    lr: tuple[int, int]
    out: tuple[int, int]
    batched: bool = False  # uses --batch images
    large: bool = False  # GPU only, tiled, no plain path


CASES = {
    "100-800": Case("100² → 800² (×8)", (100, 100), (800, 800), batched=True),
    "256x4": Case("256² → 1024² (×4)", (256, 256), (1024, 1024)),
    "512-4096": Case("512² → 4096² (×8)", (512, 512), (4096, 4096)),
    "tiny": Case("24² → 48² (×2)", (24, 24), (48, 48)),  # smoke test (tests/test_bench_infer.py)
    "large": Case("3456×4608 → 6912×9216 (×2, tiled)", (3456, 4608), (6912, 9216), large=True),
}


def _config(encoder: str, head: str) -> dict:
    return {"encoder": {"name": encoder, "args": {}}, "head": {"name": head}}


#: key → (row label, model config at the registry defaults = the paper sizes)
MODELS = {
    "edsr": ("EDSR-baseline-LIIF", _config("edsr_baseline", "liif")),
    "rdn": ("RDN-LIIF", _config("rdn", "liif")),
    "lte": ("EDSR-baseline-LTE", _config("edsr_baseline", "lte")),
    "metasr": ("EDSR-baseline-MetaSR", _config("edsr_baseline", "metasr")),
    "swinir": ("SwinIR-LIIF", _config("swinir", "liif")),
}


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    threads = torch.get_num_threads()
    return f"{model}, {os.cpu_count()} cores, {threads} torch thread{'s' if threads != 1 else ''}"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(fn: Callable[[], torch.Tensor], device: torch.device, repeats: int, warmup: bool):
    """Median wall seconds, median process CPU seconds, peak memory bytes (CUDA) or None, last output."""
    if warmup:
        fn()
        sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    walls, cpus, out = [], [], None
    for _ in range(repeats):
        del out
        sync(device)
        c0, t0 = time.process_time(), time.perf_counter()
        out = fn()
        sync(device)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    return statistics.median(walls), statistics.median(cpus), peak, out


def fmt_bytes(n: float | None) -> str:
    if n is None:
        return "–"
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def build(model_key: str, device: torch.device) -> LIIF:
    """One model for both paths: ``head.fast`` is switched per path (same weights)."""
    torch.manual_seed(0)
    return build_model(MODELS[model_key][1]).to(device).eval()


def run_case(case: Case, model_key: str, args, device: torch.device) -> list[list[str]]:
    model = build(model_key, device)
    batch = args.batch if case.batched else 1
    gen = torch.Generator(device="cpu").manual_seed(1)
    lr = torch.rand(batch, 3, *case.lr, generator=gen).to(device)
    out_px = case.out[0] * case.out[1]
    rows, ref, plain_s = [], None, None
    warmup = (args.repeats > 1 or device.type == "cuda") and not case.large
    repeats = 1 if case.large else args.repeats  # the large case runs for tens of seconds per path

    def upscale(mode: str, chunk: int, bf16: bool = False, tile: int = 0) -> Callable[[], torch.Tensor]:
        def fn() -> torch.Tensor:
            model.head.fast = mode == "fast"
            ctx = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)
            with torch.no_grad(), ctx:
                if tile:
                    return upscale_tiled(model, lr, case.out, tile, chunk=chunk)
                return model.upscale(lr, case.out, chunk=chunk)

        return fn

    paths: list[tuple[str, Callable[[], torch.Tensor]]] = []
    tile = 0
    if case.large:
        tile = args.tile or auto_tile(
            *case.lr, int(args.tile_memory * 2**30), model.encoder, 256, chunk=FAST_CHUNK, out_size=case.out
        )
    else:
        paths.append(("plain", upscale("plain", PLAIN_CHUNK)))
    label = f"fast fp32{f' (tile {tile})' if tile else ''}"
    paths.append((label, upscale("fast", FAST_CHUNK, tile=tile)))
    if device.type == "cuda" or args.cpu_bf16:
        paths.append((label.replace("fp32", "bf16"), upscale("fast", FAST_CHUNK, bf16=True, tile=tile)))
    for path, fn in paths:
        print(f"  {MODELS[model_key][0]} {case.name} {path} ...", file=sys.stderr, flush=True)
        try:
            wall, cpu, peak, out = measure(fn, device, repeats, warmup)
        except torch.cuda.OutOfMemoryError:
            rows.append([device.type, case.name, MODELS[model_key][0], path, "OOM", "", "", "", "", ""])
            torch.cuda.empty_cache()
            continue
        diff = "ref" if path == "plain" else ("–" if ref is None else f"{(out - ref).abs().max().item():.1e}")
        if path == "plain":
            ref, plain_s = out, wall
        else:
            del out
        speedup = "1.00×" if path == "plain" else ("–" if plain_s is None else f"{plain_s / wall:.2f}×")
        rows.append(
            [
                device.type,
                case.name,
                MODELS[model_key][0],
                path,
                f"{wall * 1000 / batch:,.0f}",
                f"{cpu / batch:,.1f}",
                f"{out_px * batch / wall / 1e6:.3g}",
                fmt_bytes(peak),
                speedup,
                diff,
            ]
        )
    return rows


HEADER = [
    "device",
    "case",
    "model",
    "path",
    "ms/image",
    "CPU s/image",
    "output MP/s",
    "peak memory",
    "speed-up vs plain",
]
HEADER.append("max abs diff vs plain")


def markdown(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


INFERENCE_HEADER = "## Inference"


def add_section(path: Path, section: str) -> None:
    """Insert ``section`` at the end of the ``## Inference`` part of ``path`` (other parts, e.g. training
    benchmarks, may follow it); create that part, or the file, when missing."""
    lines = path.read_text().splitlines(keepends=True) if path.exists() else []
    start = next((i for i, line in enumerate(lines) if line.startswith(INFERENCE_HEADER)), None)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    if start is None:
        if not lines:
            lines = ["# Benchmarks\n"]
        lines += ["\n", f"{INFERENCE_HEADER} (`make bench-infer`, `scripts/bench_infer.py`)\n"]
        start = len(lines) - 1
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    while end > start + 1 and not lines[end - 1].strip():
        end -= 1
    block = ["\n", section] + (["\n"] if end < len(lines) and lines[end].strip() else [])
    if lines and not lines[end - 1].endswith("\n"):
        lines[end - 1] += "\n"
    path.write_text("".join(lines[:end] + block + lines[end:]))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per path (median; one warm-up)")
    p.add_argument("--cases", default="100-800,256x4,512-4096", help=f"comma list of {','.join(CASES)}")
    p.add_argument("--models", default="edsr,rdn", help=f"comma list of {','.join(MODELS)}")
    p.add_argument("--batch", type=int, default=None, help="images in the 100->800 case (GPU 16, CPU 1)")
    p.add_argument("--quick", action="store_true", help="only EDSR 100->800, one repeat (for a CPU)")
    p.add_argument("--large", action="store_true", help="add the tiled 3456x4608 -> 6912x9216 case (GPU)")
    p.add_argument("--tile", type=int, default=0, help="LR tile for the large case (default: auto)")
    p.add_argument("--tile-memory", type=float, default=8.0, help="GiB budget for the auto tile (large case)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--cpu-bf16", action="store_true", help="also time bf16 autocast on a CPU")
    p.add_argument("--out", default=None, help="append a dated Markdown section to this file")
    args = p.parse_args(argv)

    if args.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(args.device)
    if args.repeats < 1 or (args.batch is not None and args.batch < 1):
        p.error("--repeats and --batch must be >= 1")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.cases, args.models, args.repeats = "100-800", "edsr", 1
    if args.batch is None:
        args.batch = 16 if device.type == "cuda" else 1
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    if args.large and "large" not in cases:
        cases.append("large")
    bad = [c for c in cases if c not in CASES] + [m for m in args.models.split(",") if m not in MODELS]
    if bad:
        p.error(f"unknown case/model {bad}")
    if "large" in cases and device.type != "cuda":
        print("skipping the large case: GPU only", file=sys.stderr)
        cases.remove("large")

    name = device_name(device)
    print(f"device: {name}", file=sys.stderr)
    rows: list[list[str]] = []
    for case_key in cases:
        for model_key in args.models.split(","):
            rows.extend(run_case(CASES[case_key], model_key, args, device))
    table = markdown(rows)
    notes = [
        f"- Device: **{name}**; torch {torch.__version__}; repeats {args.repeats} (median)"
        + (", one warm-up run" if args.repeats > 1 or device.type == "cuda" else ", no warm-up"),
        f"- `plain` = the head's reference algorithm (`fast=False`), query chunk {PLAIN_CHUNK}; "
        f"`fast` = its fast path (`fast=True`), chunk {FAST_CHUNK}. Random weights, paper sizes.",
        f"- 100² → 800² uses a batch of {args.batch}; ms/image = batch time / batch. "
        "CPU s/image = process CPU time (all threads).",
    ]
    if device.type == "cpu":
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        notes.append(
            f"- CPU: load average during the run {load}; peak memory not tracked per path "
            f"(process max RSS {fmt_bytes(maxrss)})."
        )
    text = "\n".join([table, "", *notes])
    print(text)
    if args.out:
        stamp = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
        add_section(Path(args.out), f"### {name} ({stamp})\n\n{text}\n")
        print(f"added a section to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
