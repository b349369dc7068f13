#!/usr/bin/env python
"""The precision default, measured (issue 21): Y-PSNR and speed of ``precision="auto"`` against ``fp32``.

For each model type — the shipped EDSR-baseline-LIIF, and the test-only LTE and MetaSR heads fine-tuned on its
encoder (``tests/fixtures/precision_heads``, made by ``scripts/precision_heads.py``) — the mean Y-PSNR on
Set5/Set14 ×2/×3/×4 (given LR, ``liif-sr-eval``'s protocol) per precision, and the 100² → 800² time of
``model.upscale`` in fp32 and in ``auto`` (what the device resolves it to), with the load average.

    python scripts/bench_precision.py --data ../shared/data/benchmark --json prec.json
    python scripts/bench_precision.py --data DIR --models liif --sets Set5 --scales 2 --precisions fp32,auto,bf16
    python scripts/bench_precision.py --device cuda --data DIR     # the GPU run (scripts/gpu_run.sh)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))  # run from a checkout without install
sys.path.insert(0, str(ROOT / "scripts"))
from precision_heads import FIXTURES, load_head_model  # noqa: E402

from liif_sr.evaluation.precision_check import benchmark_set, psnr_by_precision  # noqa: E402
from liif_sr.inference.devices import resolve_device  # noqa: E402
from liif_sr.models.precision import precision_note  # noqa: E402

TOL_DB = 0.01
NAMES = {
    "liif": "EDSR-baseline-LIIF (shipped)",
    "lte": "EDSR-baseline-LTE (test)",
    "metasr": "EDSR-baseline-MetaSR (test)",
}


def load(key: str, device: torch.device):  # noqa: ANN201 (ImplicitSR)
    if key == "liif":
        from liif_sr import load_model

        return load_model("edsr-baseline-liif", device=device)
    return load_head_model(FIXTURES / f"{key}.safetensors").to(device)


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def speed(model, device: torch.device, precisions: list[str], repeats: int) -> dict[str, float]:  # noqa: ANN001
    """Median seconds of ``model.upscale`` 100² → 800² per precision (one warm-up each)."""
    lr = torch.rand(1, 3, 100, 100, generator=torch.Generator().manual_seed(0)).to(device)
    out = {}
    for p in precisions:
        times = []
        for i in range(repeats + 1):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
            model.upscale(lr, (800, 800), precision=p)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if i:
                times.append(time.perf_counter() - t0)
        out[p] = statistics.median(times)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "benchmark")
    p.add_argument("--device", default="cpu")
    p.add_argument("--models", default="liif,lte,metasr")
    p.add_argument("--sets", default="Set5,Set14")
    p.add_argument("--scales", default="2,3,4")
    p.add_argument(
        "--precisions",
        default="fp32,bf16-decode",
        help="the first is the reference (auto: as this device resolves it)",
    )
    p.add_argument("--limit", type=int, default=None, help="first N images of each set")
    p.add_argument("--speed-repeats", type=int, default=1, help="0: no timing")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    precisions = args.precisions.split(",")
    doc = {
        "device": str(device),
        "auto": precision_note("auto", device),
        "torch_threads": torch.get_num_threads(),
        "loadavg_start": loadavg(),
        "rows": [],
        "speed": {},
    }
    print(f"device {device}; precision {doc['auto']}; load {doc['loadavg_start']}", file=sys.stderr)
    head = (
        "| model | set | scale | "
        + " | ".join(precisions)
        + " | "
        + " | ".join(f"{q} − {precisions[0]}" for q in precisions[1:])
        + " |"
    )
    lines = [head, "|" + "---|" * (3 + 2 * len(precisions) - 1)]
    for key in args.models.split(","):
        model = load(key, device)
        doc.setdefault("auto_by_model", {})[key] = model.resolve_precision("auto")  # a head may opt out
        print(f"{key}: auto -> {doc['auto_by_model'][key]}", file=sys.stderr)
        for name in args.sets.split(","):
            spec = benchmark_set(args.data, name)
            for scale in (int(s) for s in args.scales.split(",")):
                t0 = time.perf_counter()
                res = psnr_by_precision(model, spec, scale, precisions, limit=args.limit)
                deltas = {q: res[q] - res[precisions[0]] for q in precisions[1:]}
                doc["rows"].append({"model": key, "set": name, "scale": scale, "psnr": res, "delta": deltas})
                lines.append(
                    f"| {NAMES[key]} | {name} | ×{scale} | "
                    + " | ".join(f"{res[q]:.4f}" for q in precisions)
                    + " | "
                    + " | ".join(f"{d:+.4f}" for d in deltas.values())
                    + " |"
                )
                print(lines[-1] + f"  ({time.perf_counter() - t0:.0f} s, load {loadavg()})", file=sys.stderr)
                _dump(args.json, doc)
        if args.speed_repeats:
            doc["speed"][key] = speed(model, device, precisions, args.speed_repeats)
            doc["speed"][key]["loadavg"] = loadavg()
            print(f"speed {key}: {doc['speed'][key]}", file=sys.stderr)
            _dump(args.json, doc)
    worst = max((abs(d) for r in doc["rows"] for d in r["delta"].values()), default=0.0)
    doc["max_abs_delta_db"], doc["loadavg_end"] = worst, loadavg()
    _dump(args.json, doc)
    print("\n".join(lines))
    if doc["speed"]:
        print(
            "\n| model | "
            + " | ".join(f"{q} s" for q in precisions)
            + " | speed-up | load |\n|---|"
            + "---|" * (len(precisions) + 2)
        )
        for key, s in doc["speed"].items():
            print(
                f"| {NAMES[key]} | "
                + " | ".join(f"{s[q]:.2f}" for q in precisions)
                + f" | {s[precisions[0]] / s[precisions[-1]]:.2f}× | {s['loadavg']} |"
            )
    print(
        f"\nlargest |Δ| {worst:.4f} dB ({'within' if worst <= TOL_DB else 'NOT within'} {TOL_DB} dB); {doc['auto']}"
    )
    print("auto picks: " + ", ".join(f"{k} {v}" for k, v in doc.get("auto_by_model", {}).items()))
    return 0 if worst <= TOL_DB else 1


def _dump(path: Path | None, doc: dict) -> None:
    if path is not None:
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(doc, indent=1))
        os.replace(tmp, path)


if __name__ == "__main__":
    sys.exit(main())
