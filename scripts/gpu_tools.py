#!/usr/bin/env python
"""Helpers of ``scripts/gpu_run.sh`` (issue #13): ``check``, ``plan`` and ``report``.

* ``check OUT [--dry-run]``: imports everything the run needs (from the carried ``.gpu/py`` where the box
  lacks it), loads the shipped model, checks the carried data and (unless ``--dry-run``) CUDA; writes
  ``OUT/env.json``; exits 1 within seconds with one line per problem.
* ``plan OUT --remaining S [--dry-run]``: the fine-tuning budget from the seconds left: the step's time
  limits, Lightning's ``max_time`` and a step count for the cosine schedule from the EDSR fast-path step time
  measured by ``bench_train.py`` in the same run (``OUT/bench_train.json``); writes ``OUT/finetune_plan.json``
  and prints ``KEY=value`` lines for the shell.
* ``report OUT``: ``OUT/summary.{json,md}`` from whatever the steps have written so far (the issue's
  targets, met or not, and the fine-tuned model against the shipped one); run after every step.

Standard library only (``check`` aside), so ``report`` works even when the environment is broken.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: the shipped model's README numbers (docs/shipped_model/results_*.md): given LR files, Y-PSNR
SHIPPED_README = {
    "Set5": {2: 37.28, 3: 33.65, 4: 31.54},
    "Set14": {2: 33.05, 3: 29.78, 4: 28.12},
}
#: the issue's targets (H200, one run)
TARGETS = {
    "edsr_train_speedup": 4.0,
    "rdn_train_speedup": 3.3,
    "infer_100_800_bf16_batched_ms": 5.0,
    "infer_512_4096_bf16_ms": 300.0,
    "tiled_peak_gib": 8.0,
    "set5_bf16_delta_db": 0.01,
}
EDSR, RDN = ("EDSR-baseline-LIIF", "EDSR-small-LIIF"), ("RDN-LIIF", "RDN-small-LIIF")
#: Lightning's per-step overhead over bench_train's bare step (logging, hooks, progress bar): a guess
LIGHTNING_OVERHEAD_MS = 1.5
FALLBACK_STEP_MS = 12.0  # no bench_train number: about the fp32 step of the shipped run (16 ms) minus bf16
FALLBACK_COMPILE_S = 60.0


def _load(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# ------------------------------------------------------------------------------------------------- check
def check(out: Path, dry_run: bool) -> int:
    problems: list[str] = []
    env: dict = {"python": sys.version.split()[0], "executable": sys.executable, "modules": {}}
    carry = Path(os.environ.get("GPU_CARRY", ROOT / ".gpu"))
    for name in (
        "torch",
        "numpy",
        "PIL",
        "lightning",
        "torchmetrics",
        "tqdm",
        "yaml",
        "omegaconf",
        "hydra",
        "safetensors",
        "liif_sr",
        "liif_sr.train",
        "liif_sr.evaluate",
    ):
        try:
            mod = __import__(name, fromlist=["_"])
            env["modules"][name] = {
                "file": getattr(mod, "__file__", None),
                "version": getattr(mod, "__version__", None),
            }
        except Exception as exc:  # noqa: BLE001 - report every failure, then stop
            problems.append(f"import {name}: {type(exc).__name__}: {exc}")
    src = env["modules"].get("liif_sr", {}).get("file") or ""
    if src and not Path(src).resolve().is_relative_to((ROOT / "src").resolve()):
        problems.append(f"liif_sr imported from {src}, not from this checkout's src/ (PYTHONPATH?)")
    if not problems:
        import torch

        from liif_sr import load_model

        env["torch"] = torch.__version__
        env["cuda"] = torch.cuda.is_available()
        if env["cuda"]:
            props = torch.cuda.get_device_properties(0)
            env["gpu"] = {"name": props.name, "memory_gib": round(props.total_memory / 2**30, 1)}
            env["tf32"] = {
                "matmul": torch.backends.cuda.matmul.allow_tf32,
                "cudnn": torch.backends.cudnn.allow_tf32,
            }
        elif not dry_run:
            problems.append("CUDA is not available (use --dry-run on a CPU machine)")
        try:
            model = load_model("edsr-baseline-liif")
            env["shipped_params"] = sum(p.numel() for p in model.parameters())
        except Exception as exc:  # noqa: BLE001
            problems.append(f"load_model('edsr-baseline-liif'): {exc}")
    data = carry / "data"
    env["data"] = {}
    for rel in ("train/T91", "train/BSDS400", "benchmark/Set5/HR", "benchmark/Set14/HR"):
        n = len(list((data / rel).glob("*"))) if (data / rel).is_dir() else 0
        env["data"][rel] = n
        if not n:
            problems.append(f"no images in {data / rel} (run `make gpu-prep` and carry .gpu)")
    for s in (2, 3, 4, 8):
        if not (data / f"benchmark/Set5/LR_bicubic/X{s}").is_dir():
            problems.append(f"missing {data}/benchmark/Set5/LR_bicubic/X{s}")
    env["problems"] = problems
    out.mkdir(parents=True, exist_ok=True)
    _write(out / "env.json", json.dumps(env, indent=1, default=str) + "\n")
    for p in problems:
        print(f"gpu_run check: {p}", file=sys.stderr)
    if not problems:
        where = {
            k: v["file"] for k, v in env["modules"].items() if k in ("hydra", "omegaconf", "safetensors")
        }
        print(
            f"gpu_run check: ok; python {env['python']}, torch {env.get('torch')}, gpu {env.get('gpu')}; {where}"
        )
    return 1 if problems else 0


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


# ------------------------------------------------------------------------------------------------ report
def _verdict(ok: bool | None) -> str:
    return "–" if ok is None else ("yes" if ok else "**no**")


def _targets_train(bench: dict | None) -> list[dict]:
    out = []
    for models, key in ((EDSR, "edsr_train_speedup"), (RDN, "rdn_train_speedup")):
        for data, label in (("synthetic", "model only"), ("device sampler", "end to end (device sampler)")):
            row = _fast_path_row(bench, models, data)
            if row is None:
                continue
            val = row["speedup"]
            ok = val >= TARGETS[key] if val is not None and math.isfinite(val) else None
            out.append(
                {
                    "target": f"{row['model']} training step, {label}: {row['variant']} vs fp32 ref",
                    "value": f"{val:.2f}× ({row['ms_per_step']:.2f} ms/step)",
                    "goal": f"≥ {TARGETS[key]}×",
                    "ok": ok,
                }
            )
            syncs = row.get("syncs_per_step")
            if syncs is not None and math.isfinite(syncs):
                out.append(
                    {
                        "target": f"{row['model']} {label}: host-device syncs per step ({row['variant']})",
                        "value": f"{syncs:g}",
                        "goal": "0",
                        "ok": syncs == 0,
                    }
                )
    for name, p in ((bench or {}).get("meta", {}).get("parity") or {}).items():
        out.append(
            {
                "target": f"{name} loss parity over {p['steps']} steps ({p['fast_variant']} vs {p['ref_variant']})",
                "value": f"rel. diff {p['tail_rel_diff']:.2e} of the last-third mean loss",
                "goal": f"≤ {p['tol']:g}",
                "ok": p["ok"],
            }
        )
    return out


def _targets_infer(infer: dict | None) -> list[dict]:
    out = []
    rows = (infer or {}).get("rows", [])

    def find(case_prefix: str, model: tuple[str, ...], path: str, batch: int | None = None) -> dict | None:
        return next(
            (
                r
                for r in rows
                if r["case"].startswith(case_prefix)
                and r["model"] in model
                and r["path"].startswith(path)
                and (batch is None or r["batch"] == batch)
                and not r.get("oom")
            ),
            None,
        )

    batched = max((r["batch"] for r in rows if r["case"].startswith("100²")), default=None)
    for model in (EDSR, RDN):
        r = find("100²", model, "fast bf16", batched)
        if r:
            out.append(
                {
                    "target": f"{r['model']} 100² → 800² bf16, batch {r['batch']}",
                    "value": f"{r['ms_per_image']:.2f} ms/image",
                    "goal": f"≤ {TARGETS['infer_100_800_bf16_batched_ms']} ms",
                    "ok": r["ms_per_image"] <= TARGETS["infer_100_800_bf16_batched_ms"],
                }
            )
        r = find("512²", model, "fast bf16")
        if r:
            out.append(
                {
                    "target": f"{r['model']} 512² → 4096² bf16",
                    "value": f"{r['ms_per_image']:.1f} ms",
                    "goal": f"≤ {TARGETS['infer_512_4096_bf16_ms']:g} ms",
                    "ok": r["ms_per_image"] <= TARGETS["infer_512_4096_bf16_ms"],
                }
            )
        for path in ("fast fp32", "fast bf16"):
            r = find("3456", model, path)
            if r and r.get("peak_bytes") is not None:
                gib = r["peak_bytes"] / 2**30
                out.append(
                    {
                        "target": f"{r['model']} tiled 3456×4608 → 6912×9216, {r['path']}: peak GPU memory",
                        "value": f"{gib:.2f} GiB ({r['ms_per_image'] / 1000:.1f} s)",
                        "goal": f"≤ {TARGETS['tiled_peak_gib']:g} GiB",
                        "ok": gib <= TARGETS["tiled_peak_gib"],
                    }
                )
    set5 = (infer or {}).get("set5")
    if set5 and set5.get("max_abs_delta_db") is not None:
        out.append(
            {
                "target": f"Set5 ×{'/×'.join(k[1:] for k in set5['scales'])} PSNR, bf16 − fp32 ({set5['checkpoint']})",
                "value": ", ".join(f"{k} {v['delta_db']:+.4f} dB" for k, v in set5["scales"].items()),
                "goal": f"|Δ| ≤ {set5['tol_db']} dB (else bf16 is not a default anywhere)",
                "ok": set5["bf16_ok"],
            }
        )
    return out


def _finetune(out: Path) -> dict | None:
    plan_doc = _load(out / "finetune_plan.json")
    if plan_doc is None:
        return None
    res: dict = {"plan": plan_doc}
    run = _load(out / "finetune_run.json")
    if run:
        res["run"] = run
    metrics = out / "finetune_metrics.csv"
    if metrics.is_file():
        with open(metrics, newline="") as f:
            rows = list(csv.DictReader(f))
        steps = [int(r["step"]) for r in rows if r.get("step")]
        losses = [float(r["train/loss_step"]) for r in rows if r.get("train/loss_step")]
        lrs = [float(v) for r in rows for k, v in r.items() if k.startswith("lr-") and v]
        val = [(int(r["step"]), float(r["val/psnr"])) for r in rows if r.get("val/psnr")]
        res["train"] = {
            "last_logged_step": max(steps, default=None),
            "first_losses": losses[:3],
            "last_losses": losses[-3:],
            "last_lr": lrs[-1] if lrs else None,
            "val_psnr": val,
        }
    ev = _load(out / "eval" / "results.json")
    if ev:
        means = {(r["model"], r["set"], int(r["scale"])): r["psnr"] for r in ev["results"]}
        cols = [(s, k) for s, d in SHIPPED_README.items() for k in d]
        table = []
        for set_name, scale in cols:
            table.append(
                {
                    "column": f"{set_name} ×{scale}",
                    "finetuned": means.get(("finetuned", set_name, scale)),
                    "shipped": means.get(("shipped", set_name, scale)),
                    "readme": SHIPPED_README[set_name][scale],
                }
            )
        res["eval"] = table
        have = [c for c in table if c["finetuned"] is not None and c["shipped"] is not None]
        res["better_on_every_column"] = (
            bool(have) and len(have) == len(table) and all(c["finetuned"] > c["shipped"] for c in have)
        )
        res["better_than_readme_on_every_column"] = bool(have) and all(
            round(c["finetuned"], 2) > c["readme"] for c in have if c["finetuned"] is not None
        )
    weights = out / "finetuned-edsr-baseline-liif.safetensors"
    res["weights"] = weights.name if weights.is_file() else None
    return res


def report(out: Path) -> int:
    env = _load(out / "env.json")
    bench = _load(out / "bench_train.json")
    infer = _load(out / "bench_infer.json")
    steps = []
    if (out / "steps.tsv").is_file():
        for line in (out / "steps.tsv").read_text().splitlines():
            name, rc, secs, limit = (line.split("\t") + ["", "", "", ""])[:4]
            steps.append({"step": name, "rc": int(rc), "seconds": int(secs), "limit_s": int(limit)})
    targets = _targets_train(bench) + _targets_infer(infer)
    ft = _finetune(out)
    doc = {
        "written": time.strftime("%Y-%m-%d %H:%M:%S"),
        "env": env,
        "steps": steps,
        "bench_train_complete": (bench or {}).get("complete"),
        "bench_infer_complete": (infer or {}).get("complete"),
        "targets": targets,
        "finetune": ft,
    }
    _write(out / "summary.json", json.dumps(doc, indent=1, default=str) + "\n")
    gpu = (env or {}).get("gpu") or {}
    lines = [
        f"# GPU run summary ({doc['written']})",
        "",
        f"Device: {gpu.get('name', 'no CUDA device (dry run)')}; python {(env or {}).get('python')}, "
        f"torch {(env or {}).get('torch')}.",
        "",
        "| step | exit status | seconds | limit |",
        "|---|---:|---:|---:|",
    ]
    lines += [
        f"| {s['step']} | {s['rc']}{' (timed out)' if s['rc'] in (124, 137) else ''} | {s['seconds']} | {s['limit_s']} |"
        for s in steps
    ]
    lines += ["", "## Targets (issue #13)", "", "| target | measured | goal | met |", "|---|---|---|---|"]
    lines += [f"| {t['target']} | {t['value']} | {t['goal']} | {_verdict(t['ok'])} |" for t in targets]
    if ft:
        p = ft["plan"]
        lines += [
            "",
            "## Fine-tuning the shipped edsr-baseline-liif (T91 + BSDS400, fast path)",
            "",
            f"Plan: {p['max_steps']} steps, max_time {p['max_time_s']} s, {p['schedule']} "
            f"(step time {p['step_ms_estimate']} ms from {p['step_ms_source']}).",
        ]
        if "run" in ft:
            r = ft["run"]
            lines.append(f"Training process: exit status {r.get('rc')}, {r.get('seconds')} s wall clock.")
        if "train" in ft:
            t = ft["train"]
            lines.append(
                f"Last logged step {t['last_logged_step']}, last LR {t['last_lr']}, train loss "
                f"{t['first_losses']} → {t['last_losses']}."
            )
        if "eval" in ft:
            lines += [
                "",
                "| column | fine-tuned | shipped (same run) | shipped (README) |",
                "|---|---:|---:|---:|",
            ]
            for c in ft["eval"]:
                f = "–" if c["finetuned"] is None else f"{c['finetuned']:.3f}"
                s = "–" if c["shipped"] is None else f"{c['shipped']:.3f}"
                lines.append(f"| {c['column']} | {f} | {s} | {c['readme']:.2f} |")
            lines += [
                "",
                f"Better on every column (vs the shipped model, same run): "
                f"**{'yes' if ft['better_on_every_column'] else 'no'}**.",
            ]
        if ft.get("weights"):
            lines.append(f"Weights: `{ft['weights']}` (load with `liif_sr.load_model`).")
    _write(out / "summary.md", "\n".join(lines) + "\n")
    print(f"gpu_run report: {out / 'summary.md'} ({len(targets)} targets measured)")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check")
    c.add_argument("out", type=Path)
    c.add_argument("--dry-run", action="store_true")
    q = sub.add_parser("plan")
    q.add_argument("out", type=Path)
    q.add_argument("--remaining", type=float, required=True)
    q.add_argument("--dry-run", action="store_true")
    r = sub.add_parser("report")
    r.add_argument("out", type=Path)
    args = p.parse_args(argv)
    if args.cmd == "check":
        return check(args.out, args.dry_run)
    if args.cmd == "plan":
        return plan(args.out, args.remaining, args.dry_run)
    return report(args.out)


if __name__ == "__main__":
    raise SystemExit(main())
