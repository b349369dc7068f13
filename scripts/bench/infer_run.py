"""``bench_infer.py``: one case on one model (plain vs fast paths; fp32, ``auto`` and bf16; batched and tiled)
and the Set5 precision check (fp32 vs ``auto`` vs bf16 of the whole network). Every path names its
``precision`` explicitly (``model.upscale``'s default is ``auto``, issue 21)."""

from __future__ import annotations

import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import torch

from bench.floor import decode_flops, gemm_rate
from bench.infer_cases import MODELS, PLAIN_CHUNK, Case, build, measure
from bench.infer_official import EVAL_BSIZE, DecodeClock, official_twin, official_upscale
from liif_sr.inference.tiling import auto_tile, untileable, upscale_tiled


def set5_precision(args, device: torch.device) -> dict:
    """Set5 Y-PSNR of ``args.checkpoint`` at ``args.set5_scales`` in fp32, bf16 (the whole network) and ``auto``
    (the default: the head's decode in bf16 where the device has native bf16, else fp32; ``auto_resolved``
    says which), from the given LR files."""
    import numpy as np
    from PIL import Image

    from liif_sr import load_model
    from liif_sr.metrics.sr import psnr_protocol

    root = Path(args.set5)
    model = load_model(args.checkpoint, device=device)
    bf16 = device.type == "cuda" or args.cpu_bf16
    out: dict = {"checkpoint": args.checkpoint, "root": str(root), "scales": {}, "tol_db": 0.01}
    out["auto_resolved"] = model.resolve_precision("auto")

    def read(path: Path) -> torch.Tensor:
        return torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1)

    precisions = ("fp32", "bf16", "auto") if bf16 else ("fp32", "auto")
    for s in args.set5_scales:
        vals: dict[str, list[float]] = {p: [] for p in ("fp32", "bf16", "auto")}
        for hr_file in sorted((root / "HR").glob("*.png")):
            lr = read(root / "LR_bicubic" / f"X{s}" / f"{hr_file.stem}x{s}.png")
            h, w = lr.shape[-2] * s, lr.shape[-1] * s
            hr = read(hr_file)[:, :h, :w].float().div(255)[None].to(device)
            inp = lr.float().div(255)[None].to(device)
            for prec in precisions:
                with torch.no_grad():  # the paper protocol
                    sr = model.upscale(inp, (h, w), chunk=args.chunk, border="none", precision=prec)
                vals[prec].append(float(psnr_protocol(sr.float(), hr, "benchmark", s).item()))
        row = {k: statistics.fmean(v) for k, v in vals.items() if v}
        row["images"] = len(vals["fp32"])
        row["auto_delta_db"] = row["auto"] - row["fp32"]
        if "bf16" in row:
            row["delta_db"] = row["bf16"] - row["fp32"]
            row["max_image_delta_db"] = max(abs(a - b) for a, b in zip(vals["bf16"], vals["fp32"]))
        out["scales"][f"x{s}"] = row
        print(
            f"  Set5 x{s}: " + ", ".join(f"{k} {v:.4f}" for k, v in row.items() if k != "images"), flush=True
        )
    deltas = [r["delta_db"] for r in out["scales"].values() if "delta_db" in r]
    out["max_abs_delta_db"] = max((abs(d) for d in deltas), default=None)
    out["bf16_ok"] = None if not deltas else out["max_abs_delta_db"] <= out["tol_db"]
    out["auto_max_abs_delta_db"] = max(abs(r["auto_delta_db"]) for r in out["scales"].values())
    out["auto_ok"] = out["auto_max_abs_delta_db"] <= out["tol_db"]
    return out


def set5_markdown(res: dict) -> str:
    scales = list(res["scales"])
    lines = [
        f"Set5 Y-PSNR (dB) of `{res['checkpoint']}`, given LR files, fp32 vs `auto` ({res['auto_resolved']}) "
        "vs bf16 of the whole network (same run):",
        "",
        "| precision | " + " | ".join(f"Set5 ×{k[1:]}" for k in scales) + " |",
        "|---|" + "---:|" * len(scales),
    ]
    for prec in ("fp32", "bf16", "auto"):
        if all(prec in r for r in res["scales"].values()):
            lines.append(f"| {prec} | " + " | ".join(f"{res['scales'][k][prec]:.4f}" for k in scales) + " |")
    if res["max_abs_delta_db"] is not None:
        lines.append(
            "| bf16 − fp32 | " + " | ".join(f"{res['scales'][k]['delta_db']:+.4f}" for k in scales) + " |"
        )
    lines.append(
        f"| auto ({res['auto_resolved']}) − fp32 | "
        + " | ".join(f"{res['scales'][k]['auto_delta_db']:+.4f}" for k in scales)
        + " |"
    )
    if res["max_abs_delta_db"] is not None:
        verdict = "within" if res["bf16_ok"] else "**not within**"
        lines += [
            "",
            f"bf16: largest |difference| {res['max_abs_delta_db']:.4f} dB: {verdict} the 0.01 dB tolerance.",
        ]
    verdict = "within" if res["auto_ok"] else "**not within**"
    lines.append(
        f"auto: largest |difference| {res['auto_max_abs_delta_db']:.4f} dB: {verdict} the 0.01 dB tolerance."
    )
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

    def upscale(mode: str, chunk: int, precision: str = "fp32", tile: int = 0) -> Callable[[], torch.Tensor]:
        def fn() -> torch.Tensor:
            model.head.fast = mode == "fast"
            with torch.no_grad():
                if tile:
                    return upscale_tiled(model, lr, case.out, tile, chunk=chunk, precision=precision)
                # the papers' protocol
                return model.upscale(lr, case.out, chunk=chunk, border="none", precision=precision)

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
        if (
            not case.large
        ):  # the default (bf16-decode on native bf16, else fp32); the tiled 16 MP case: fp32/bf16
            auto = model.resolve_precision("auto")
            paths.append((f"fast auto={auto}", upscale("fast", chunk, "auto")))
        if device.type == "cuda" or args.cpu_bf16:
            paths.append((label.replace("fp32", "bf16"), upscale("fast", chunk, "bf16", tile=tile)))
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
