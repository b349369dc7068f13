#!/usr/bin/env python
"""Inference benchmark: each head's reference path (``plain``, built ``fast=False``) vs its fast path
(``fast=True``; fp32, bf16), for the LIIF, LTE and MetaSR heads and the EDSR-baseline, RDN and SwinIR encoders.

Prints a Markdown table for the current device (every row names it); ``--out BENCHMARKS.md`` appends it as
a dated section. Random weights at the paper sizes (EDSR-baseline-LIIF 1.57M, RDN-LIIF 22.3M parameters):
speed does not depend on the weights. Import-light (torch + liif_sr only) so it runs on a GPU box without
Hydra/Lightning.

    python scripts/bench_infer.py --quick                       # CPU: EDSR 100->800, one repeat
    python scripts/bench_infer.py --models lte,metasr,swinir --cases 100-800 --repeats 1
    python scripts/bench_infer.py --device cuda --large --batch 1,16 --out BENCHMARKS.md \
        --set5 ../shared/data/benchmark/Set5 --json bench_infer.json
    python scripts/bench_infer.py --tiny --cpu-bf16 --large --tile 16 --set5 DIR   # CPU smoke run: seconds

``--set5 DIR`` first scores a checkpoint (default: the shipped model) on Set5 with the given LR files
(``LR_bicubic/X{s}``, Y-PSNR, shave = scale, as ``liif-sr-eval``) in fp32 and in bf16 autocast: bf16 may
only become a default where the difference is <= 0.01 dB. ``--tiny`` shrinks every case to a few thousand output pixels
and uses reduced random models (the same code paths, for a CPU dry run). ``--json`` is rewritten after every row.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
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
from liif_sr.models.implicit_sr import ImplicitSR  # noqa: E402

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


def _config(encoder: str, head: str, **encoder_args: int) -> dict:
    return {"encoder": {"name": encoder, "args": encoder_args}, "head": {"name": head}}


#: key → (row label, model config at the registry defaults = the paper sizes)
MODELS = {
    "edsr": ("EDSR-baseline-LIIF", _config("edsr_baseline", "liif")),
    "rdn": ("RDN-LIIF", _config("rdn", "liif")),
    "lte": ("EDSR-baseline-LTE", _config("edsr_baseline", "lte")),
    "metasr": ("EDSR-baseline-MetaSR", _config("edsr_baseline", "metasr")),
    "swinir": ("SwinIR-LIIF", _config("swinir", "liif")),
}
#: --tiny: reduced models (same code paths) and every case divided by TINY_DIV
TINY_MODELS = {
    "edsr": ("EDSR-small-LIIF", _config("edsr_baseline", "liif", n_resblocks=2, n_feats=16)),
    "rdn": ("RDN-small-LIIF", _config("rdn", "liif", G0=16, D=2, C=2, G=8)),
}
TINY_SIZES = {  # (LR, output) per case
    "100-800": ((12, 12), (96, 96)),
    "256x4": ((16, 16), (64, 64)),
    "512-4096": ((16, 16), (128, 128)),
    "large": ((36, 48), (72, 96)),
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


def build(model_key: str, device: torch.device) -> ImplicitSR:
    """One model for both paths: ``head.fast`` is switched per path (same weights)."""
    torch.manual_seed(0)
    return build_model(MODELS[model_key][1]).to(device).eval()


def tiny_case(key: str) -> Case:
    """The ``--tiny`` stand-in of a case: a few hundred to a few thousand output pixels, same kind."""
    case = CASES[key]
    lr, out = TINY_SIZES[key]
    return Case(
        f"{case.name} --tiny ({lr[0]}×{lr[1]} → {out[0]}×{out[1]})", lr, out, case.batched, case.large
    )


@contextlib.contextmanager
def _encoder_fp32(encoder: torch.nn.Module, enabled: bool):
    """Run ``encoder`` with autocast switched off (fp32) inside the block, for the ``bf16 head`` precision
    of the Set5 check (the encoder object, and so the model's contract, stays the same)."""
    if not enabled:
        yield
        return
    forward = encoder.forward

    def fp32_forward(x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return forward(x.float())

    encoder.forward = fp32_forward
    try:
        yield
    finally:
        del encoder.forward


def set5_precision(args, device: torch.device) -> dict:
    """Set5 Y-PSNR of ``args.checkpoint`` at ``args.set5_scales`` in fp32, bf16 autocast, and bf16 in the
    head only (encoder fp32: tells which part costs PSNR), from the given LR files."""
    import numpy as np
    from PIL import Image

    from liif_sr import load_model
    from liif_sr.metrics.sr import psnr_protocol

    root = Path(args.set5)
    model = load_model(args.checkpoint, device=device)
    bf16 = device.type == "cuda" or args.cpu_bf16
    out: dict = {"checkpoint": args.checkpoint, "root": str(root), "scales": {}, "tol_db": 0.01}

    def read(path: Path) -> torch.Tensor:
        return torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1)

    encoder = model.encoder
    precisions = ("fp32", "bf16", "bf16 head") if bf16 else ("fp32",)
    for s in args.set5_scales:
        vals: dict[str, list[float]] = {p: [] for p in ("fp32", "bf16", "bf16 head")}
        for hr_file in sorted((root / "HR").glob("*.png")):
            lr = read(root / "LR_bicubic" / f"X{s}" / f"{hr_file.stem}x{s}.png")
            h, w = lr.shape[-2] * s, lr.shape[-1] * s
            hr = read(hr_file)[:, :h, :w].float().div(255)[None].to(device)
            inp = lr.float().div(255)[None].to(device)
            for prec in precisions:
                with (
                    torch.no_grad(),
                    _encoder_fp32(encoder, prec == "bf16 head"),
                    torch.autocast(device.type, torch.bfloat16, enabled=prec != "fp32"),
                ):
                    sr = model.upscale(inp, (h, w), chunk=args.chunk, border="none")  # the paper protocol
                vals[prec].append(float(psnr_protocol(sr.float(), hr, "benchmark", s).item()))
        row = {k: statistics.fmean(v) for k, v in vals.items() if v}
        row["images"] = len(vals["fp32"])
        if "bf16" in row:
            row["delta_db"] = row["bf16"] - row["fp32"]
            row["head_only_delta_db"] = row["bf16 head"] - row["fp32"]
            row["max_image_delta_db"] = max(abs(a - b) for a, b in zip(vals["bf16"], vals["fp32"]))
        out["scales"][f"x{s}"] = row
        print(
            f"  Set5 x{s}: " + ", ".join(f"{k} {v:.4f}" for k, v in row.items() if k != "images"), flush=True
        )
    deltas = [r["delta_db"] for r in out["scales"].values() if "delta_db" in r]
    out["max_abs_delta_db"] = max((abs(d) for d in deltas), default=None)
    out["bf16_ok"] = None if not deltas else out["max_abs_delta_db"] <= out["tol_db"]
    return out


def set5_markdown(res: dict) -> str:
    scales = list(res["scales"])
    lines = [
        f"Set5 Y-PSNR (dB) of `{res['checkpoint']}`, given LR files, fp32 vs bf16 autocast (same run):",
        "",
        "| precision | " + " | ".join(f"Set5 ×{k[1:]}" for k in scales) + " |",
        "|---|" + "---:|" * len(scales),
    ]
    for prec in ("fp32", "bf16", "bf16 head"):
        if all(prec in r for r in res["scales"].values()):
            lines.append(f"| {prec} | " + " | ".join(f"{res['scales'][k][prec]:.4f}" for k in scales) + " |")
    if res["max_abs_delta_db"] is not None:
        lines.append(
            "| bf16 − fp32 | " + " | ".join(f"{res['scales'][k]['delta_db']:+.4f}" for k in scales) + " |"
        )
        lines.append(
            "| bf16 head − fp32 | "
            + " | ".join(f"{res['scales'][k]['head_only_delta_db']:+.4f}" for k in scales)
            + " |"
        )
        verdict = "within" if res["bf16_ok"] else "**not within**"
        lines += [
            "",
            f"Largest |difference| {res['max_abs_delta_db']:.4f} dB: {verdict} the 0.01 dB tolerance.",
        ]
    return "\n".join(lines)


def run_case(case: Case, model_key: str, args, device: torch.device, batch: int = 1) -> list[dict]:
    model = build(model_key, device)
    batch = batch if case.batched else 1
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
    chunk = args.chunk
    if case.large:
        tile = args.tile or auto_tile(
            *case.lr, int(args.tile_memory * 2**30), model, chunk=chunk, out_size=case.out
        )
    else:
        paths.append(("plain", upscale("plain", PLAIN_CHUNK)))
    label = f"fast fp32{f' (tile {tile})' if tile else ''}"
    paths.append((label, upscale("fast", chunk, tile=tile)))
    if device.type == "cuda" or args.cpu_bf16:
        paths.append((label.replace("fp32", "bf16"), upscale("fast", chunk, bf16=True, tile=tile)))
    name = case.name + (f", batch {batch}" if case.batched else "")
    for path, fn in paths:
        print(f"  {MODELS[model_key][0]} {name} {path} ...", file=sys.stderr, flush=True)
        row = {
            "device": device.type,
            "case": name,
            "model": MODELS[model_key][0],
            "path": path,
            "batch": batch,
            "lr": list(case.lr),
            "out": list(case.out),
            "tile": tile,
            "chunk": PLAIN_CHUNK if path == "plain" else chunk,
        }
        try:
            wall, cpu, peak, out = measure(fn, device, repeats, warmup)
        except torch.cuda.OutOfMemoryError:
            rows.append({**row, "oom": True})
            torch.cuda.empty_cache()
            continue
        diff = None if ref is None or path == "plain" else (out - ref).abs().max().item()
        if path == "plain":
            ref, plain_s = out, wall
        else:
            del out
        rows.append(
            {
                **row,
                "ms_per_image": wall * 1000 / batch,
                "cpu_s_per_image": cpu / batch,
                "output_mp_per_s": out_px * batch / wall / 1e6,
                "peak_bytes": peak,
                "speedup_vs_plain": 1.0 if path == "plain" else (None if plain_s is None else plain_s / wall),
                "max_abs_diff_vs_plain": diff,
            }
        )
    return rows


def table_row(r: dict) -> list[str]:
    head = [r.get("device", "–"), r["case"], r["model"], r["path"]]
    if r.get("oom"):
        return [*head, "OOM", "", "", "", "", ""]
    speedup = r["speedup_vs_plain"]
    diff = "ref" if r["path"] == "plain" else r["max_abs_diff_vs_plain"]
    return [
        *head,
        f"{r['ms_per_image']:,.0f}" if r["ms_per_image"] >= 100 else f"{r['ms_per_image']:.2f}",
        f"{r['cpu_s_per_image']:,.1f}",
        f"{r['output_mp_per_s']:.3g}",
        fmt_bytes(r["peak_bytes"]),
        "–" if speedup is None else f"{speedup:.2f}×",
        diff if isinstance(diff, str) else ("–" if diff is None else f"{diff:.1e}"),
    ]


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


def markdown(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(table_row(r)) + " |" for r in rows]
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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per path (median; one warm-up)")
    p.add_argument("--cases", default="100-800,256x4,512-4096", help=f"comma list of {','.join(CASES)}")
    p.add_argument("--models", default="edsr,rdn", help=f"comma list of {','.join(MODELS)}")
    p.add_argument(
        "--batch",
        default=None,
        help="images in the 100->800 case, or a comma list (GPU 16, CPU 1; e.g. 1,16)",
    )
    p.add_argument(
        "--chunk", type=int, default=FAST_CHUNK, help=f"queries per chunk, fast path ({FAST_CHUNK})"
    )
    p.add_argument("--quick", action="store_true", help="only EDSR 100->800, one repeat (for a CPU)")
    p.add_argument("--tiny", action="store_true", help="tiny cases and reduced models: a CPU dry run")
    p.add_argument("--large", action="store_true", help="add the tiled 3456x4608 -> 6912x9216 case (GPU)")
    p.add_argument("--tile", type=int, default=0, help="LR tile for the large case (default: auto)")
    p.add_argument("--tile-memory", type=float, default=8.0, help="GiB budget for the auto tile (large case)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--cpu-bf16", action="store_true", help="also time bf16 autocast on a CPU")
    p.add_argument("--set5", default=None, help="Set5 folder (HR, LR_bicubic/X{s}): fp32 vs bf16 PSNR first")
    p.add_argument("--set5-scales", default="2,4,8", help="scales of the Set5 check (given LR files)")
    p.add_argument("--checkpoint", default="edsr-baseline-liif", help="model of the Set5 check")
    p.add_argument("--json", type=Path, default=None, help="write every number as JSON (after every row)")
    p.add_argument("--out", default=None, help="append a dated Markdown section to this file")
    return p


def main(argv: list[str] | None = None) -> int:
    p = build_parser()
    args = p.parse_args(argv)

    if args.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(args.device)
    if args.quick:
        args.cases, args.models, args.repeats = "100-800", "edsr", 1
    try:
        batches = [int(b) for b in (args.batch or ("16" if device.type == "cuda" else "1")).split(",")]
        args.set5_scales = [int(x) for x in args.set5_scales.split(",")]
    except ValueError:
        p.error("--batch and --set5-scales take integers (comma lists)")
    if args.repeats < 1 or min(batches) < 1:
        p.error("--repeats and --batch must be >= 1")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    if args.large and "large" not in cases:
        cases.append("large")
    bad = [c for c in cases if c not in CASES] + [m for m in args.models.split(",") if m not in MODELS]
    if bad:
        p.error(f"unknown case/model {bad}")
    if "large" in cases and device.type != "cuda" and not args.tiny:
        print("skipping the large case: GPU only (or --tiny)", file=sys.stderr)
        cases.remove("large")
    if args.tiny:
        MODELS.update(TINY_MODELS)

    name = device_name(device)
    print(f"device: {name}", file=sys.stderr)
    doc: dict = {
        "complete": False,
        "device": name,
        "torch": torch.__version__,
        "tiny": args.tiny,
        "command": " ".join(["python scripts/bench_infer.py", *(sys.argv[1:] if argv is None else argv)]),
        "date": dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "set5": None,
        "rows": [],
    }

    def save() -> None:
        if args.json:
            tmp = args.json.with_suffix(".tmp")
            tmp.write_text(json.dumps(doc, indent=1))
            os.replace(tmp, args.json)

    if args.set5:
        doc["set5"] = set5_precision(args, device)
        save()
    rows: list[dict] = doc["rows"]
    for case_key in cases:
        case = tiny_case(case_key) if args.tiny else CASES[case_key]
        for model_key in args.models.split(","):
            for batch in batches if case.batched else [1]:
                rows.extend(run_case(case, model_key, args, device, batch))
                save()
    doc["complete"] = True
    save()
    table = markdown(rows)
    notes = [
        f"- Device: **{name}**; torch {torch.__version__}; repeats {args.repeats} (median)"
        + (", one warm-up run" if args.repeats > 1 or device.type == "cuda" else ", no warm-up"),
        f"- `plain` = the head's reference algorithm (`fast=False`), query chunk {PLAIN_CHUNK}; "
        f"`fast` = its fast path (`fast=True`; LIIF: factorised first layer), chunk {args.chunk}. Random "
        "weights, paper sizes" + (" (**--tiny: reduced models, tiny cases**)." if args.tiny else "."),
        f"- 100² → 800² uses a batch of {', '.join(map(str, batches))}; ms/image = batch time / batch. "
        "CPU s/image = process CPU time (all threads). Peak memory: `torch.cuda.max_memory_allocated`.",
    ]
    if device.type == "cpu":
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        notes.append(
            f"- CPU: load average during the run {load}; peak memory not tracked per path "
            f"(process max RSS {fmt_bytes(maxrss)})."
        )
    parts = [table, "", *notes]
    if doc["set5"]:
        parts += ["", set5_markdown(doc["set5"])]
    text = "\n".join(parts)
    print(text)
    if args.out:
        stamp = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
        add_section(Path(args.out), f"### {name} ({stamp})\n\n{text}\n")
        print(f"added a section to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
