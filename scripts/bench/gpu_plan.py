"""``gpu_tools.py plan``: the fine-tuning budget of ``scripts/gpu_run.sh`` from the seconds left."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from bench.gpu_common import EDSR, FALLBACK_COMPILE_S, FALLBACK_STEP_MS, LIGHTNING_OVERHEAD_MS, _load, _write


# -------------------------------------------------------------------------------------------------- plan
def _fast_path_row(bench: dict | None, models: tuple[str, ...], data: str) -> dict | None:
    rows = [r for r in (bench or {}).get("rows", []) if r["model"] in models and r["data"].startswith(data)]
    rows = [r for r in rows if r["variant"].startswith("fast") and r["variant"] != "fast head fp32"]
    return max(rows, key=lambda r: r["variant"] == "fast+compile", default=None)


def plan(out: Path, remaining: float, dry_run: bool) -> int:
    bench = _load(out / "bench_train.json")
    row = _fast_path_row(bench, EDSR, "device sampler")
    model_only = _fast_path_row(bench, EDSR, "synthetic")
    step_ms = row["ms_per_step"] if row and math.isfinite(row["ms_per_step"]) else None
    compile_s = model_only.get("warmup_s") if model_only else None
    source = (
        "bench_train.json: EDSR fast path, device sampler" if step_ms else "fallback (no bench_train number)"
    )
    step_ms = (step_ms or FALLBACK_STEP_MS) + LIGHTNING_OVERHEAD_MS
    compile_s = compile_s if compile_s and math.isfinite(compile_s) else FALLBACK_COMPILE_S
    eval_limit, report_s, startup_s = (240, 5, 0) if dry_run else (50, 10, 45)
    train_limit = int(remaining - eval_limit - report_s)
    max_time = max(30, train_limit - startup_s)
    steps = int((max_time - compile_s) * 1000 / step_ms * 0.85) if not dry_run else 3
    doc = {
        "dry_run": dry_run,
        "remaining_s": remaining,
        "train_limit_s": train_limit,
        "eval_limit_s": eval_limit,
        "max_time_s": max_time,
        "max_steps": max(steps, 0),
        "step_ms_estimate": round(step_ms, 3),
        "step_ms_source": source,
        "compile_s_estimate": round(compile_s, 1),
        "lr": 1e-4,
        "eta_min": 1e-6,
        # a fresh Adam's first steps move every weight by ~lr (m/sqrt(v) = ±1): warm up before the peak
        "schedule": "OneCycleLR per step: 5 % warm-up 4e-6 → 1e-4, cosine to 1e-6 over max_steps; fresh Adam; "
        "shipped weights",
    }
    problems = []
    if train_limit < 60 or doc["max_steps"] < 1:
        problems.append(f"only {remaining:.0f} s left: no time to fine-tune")
    doc["skip"] = bool(problems)
    _write(out / "finetune_plan.json", json.dumps(doc, indent=1) + "\n")
    m, sec = divmod(int(max_time), 60)
    h, m = divmod(m, 60)
    print(f"TRAIN_LIMIT={train_limit}")
    print(f"EVAL_LIMIT={eval_limit}")
    print(f"MAX_TIME=00:{h:02d}:{m:02d}:{sec:02d}")
    print(f"MAX_STEPS={doc['max_steps']}")
    print(f"SKIP={int(doc['skip'])}")
    for p in problems:
        print(f"gpu_run plan: {p}", file=sys.stderr)
    return 0
