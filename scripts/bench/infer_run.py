"""``bench_infer.py``: one case on one model (plain vs fast paths, fp32 and bf16; batched and tiled) and the
Set5 fp32-vs-bf16 precision check."""

from __future__ import annotations

import contextlib
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import torch

from bench.floor import decode_flops, gemm_rate
from bench.infer_cases import MODELS, PLAIN_CHUNK, Case, build, measure
from bench.infer_official import EVAL_BSIZE, DecodeClock, official_twin, official_upscale
from liif_sr.inference.tiling import auto_tile, untileable, upscale_tiled


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
    """Rows of one case and model: ``official`` (CPU, when the official code expresses the model; same
    weights), ``plain`` (our reference path), ``fast fp32`` (and ``fast bf16``). The first row is the reference
    of the ``max abs diff`` column; every row has its decode time and fraction of the FLOP floor."""
    cpu_official = device.type == "cpu" and not case.large and not args.no_official
    twin = official_twin(MODELS[model_key][1]) if cpu_official else None
    official, model = twin if twin else (None, build(model_key, device))
    model = model.to(device).eval()
    batch = batch if case.batched else 1
    gen = torch.Generator(device="cpu").manual_seed(1)
    lr = torch.rand(batch, 3, *case.lr, generator=gen).to(device)
    out_px = case.out[0] * case.out[1]
    rows, ref, times = [], None, {}
    warmup = (args.repeats > 1 or device.type == "cuda") and not case.large
    repeats = 1 if case.large else args.repeats  # the large case runs for tens of seconds per path
    clip = model.head.paper_cell_clip
    decode_times: list[tuple[float, float]] = []

    def clocked(owner: object, method: str, call: Callable[[], torch.Tensor]) -> Callable[[], torch.Tensor]:
        def fn() -> torch.Tensor:
            clock = DecodeClock(owner, method)
            try:
                return call()
            finally:
                clock.remove()
                decode_times.append((clock.seconds, clock.cpu_seconds))

        return fn

    def upscale(mode: str, chunk: int, bf16: bool = False, tile: int = 0) -> Callable[[], torch.Tensor]:
        def fn() -> torch.Tensor:
            model.head.fast = mode == "fast"
            ctx = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)
            with torch.no_grad(), ctx:
                if tile:
                    return upscale_tiled(model, lr, case.out, tile, chunk=chunk)
                return model.upscale(lr, case.out, chunk=chunk, border="none")  # the papers' protocol

        return clocked(model.head, "decode", fn)

    def official_fn() -> torch.Tensor:
        with torch.no_grad():
            return official_upscale(official, lr, case.out, clip)

    paths: list[tuple[str, Callable[[], torch.Tensor]]] = []
    tile = 0
    chunk = args.chunk
    if case.large:
        if untileable(model):  # e.g. LM-CiaoSR's non-local attention: tiles would change the image
            print(
                f"skipping {case.name} for {model_key}: {untileable(model)} cannot be tiled", file=sys.stderr
            )
            return []
        tile = args.tile or auto_tile(
            *case.lr, int(args.tile_memory * 2**30), model, chunk=chunk, out_size=case.out
        )
    else:
        if official is not None and "official" in args.paths:
            paths.append(("official", clocked(official, "query_rgb", official_fn)))
        if "plain" in args.paths:
            paths.append(("plain", upscale("plain", PLAIN_CHUNK)))
    label = f"fast fp32{f' (tile {tile})' if tile else ''}"
    if "fast" in args.paths:
        paths.append((label, upscale("fast", chunk, tile=tile)))
    if (device.type == "cuda" or args.cpu_bf16) and "fast" in args.paths:
        paths.append((label.replace("fp32", "bf16"), upscale("fast", chunk, bf16=True, tile=tile)))
    name = case.name + (f", batch {batch}" if case.batched else "")
    flops = decode_flops(model.head) * out_px * batch
    rate, cpu_rate = gemm_rate(device)
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
            "chunk": chunk if path.startswith("fast") else EVAL_BSIZE if path == "official" else PLAIN_CHUNK,
        }
        decode_times.clear()
        try:
            wall, cpu, peak, out = measure(fn, device, repeats, warmup)
        except torch.cuda.OutOfMemoryError:
            rows.append({**row, "oom": True})
            torch.cuda.empty_cache()
            continue
        new_rate, new_cpu_rate = gemm_rate(device)  # the best warm rates of the case (the machine is shared)
        rate, cpu_rate = max(rate, new_rate), max(cpu_rate, new_cpu_rate)
        decode_s = statistics.median(t for t, _ in decode_times[-repeats:])
        decode_cpu_s = statistics.median(c for _, c in decode_times[-repeats:])
        diff = None if ref is None else (out - ref).abs().max().item()
        if ref is None:
            ref = out
        times[path] = wall
        del out
        rows.append(
            {
                **row,
                "ms_per_image": wall * 1000 / batch,
                "cpu_s_per_image": cpu / batch,
                "output_mp_per_s": out_px * batch / wall / 1e6,
                "peak_bytes": peak,
                "speedup_vs_plain": times["plain"] / wall if "plain" in times else None,
                "speedup_vs_official": times["official"] / wall if "official" in times else None,
                "max_abs_diff_vs_ref": diff,  # None: this row is the reference
                "decode_ms_per_image": decode_s * 1000 / batch,
                "decode_cpu_s_per_image": decode_cpu_s / batch,
                "decode_gflop": flops / 1e9,
            }
        )
    for r in (r for r in rows if not r.get("oom")):  # against the best GEMM rates seen in the case
        r["gemm_gflops"], r["gemm_gflop_per_cpu_s"] = rate / 1e9, cpu_rate / 1e9
        r["floor_fraction"] = r["decode_gflop"] / (r["decode_ms_per_image"] / 1000) / (rate / 1e9) / batch
        r["floor_fraction_cpu"] = r["decode_gflop"] / r["decode_cpu_s_per_image"] / (cpu_rate / 1e9) / batch
    return rows
