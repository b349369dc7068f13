"""``gpu_tools.py report``: ``OUT/summary.{json,md}`` from what the steps of ``scripts/gpu_run.sh`` wrote."""

from __future__ import annotations

import csv
import json
import math
import time
from pathlib import Path

from bench.gpu_common import EDSR, RDN, SHIPPED_README, TARGETS, _load, _write
from bench.gpu_plan import _fast_path_row


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
        fp32, auto = find("100²", model, "fast fp32", batched), find("100²", model, "fast auto", batched)
        if fp32 and auto:  # the default (issue 21) against fp32, same run
            out.append(
                {
                    "target": f"{auto['model']} 100² → 800², batch {auto['batch']}: default {auto['path']} vs fp32",
                    "value": f"{fp32['ms_per_image'] / auto['ms_per_image']:.2f}× ({auto['ms_per_image']:.2f} ms/image)",
                    "goal": "≥ 1× (the default is not slower than fp32)",
                    "ok": auto["ms_per_image"] <= fp32["ms_per_image"] * 1.05,
                }
            )
    set5 = (infer or {}).get("set5")
    if set5 and set5.get("auto_max_abs_delta_db") is not None:
        out.append(
            {
                "target": f"Set5 PSNR, default auto ({set5['auto_resolved']}) − fp32 ({set5['checkpoint']})",
                "value": ", ".join(f"{k} {v['auto_delta_db']:+.4f} dB" for k, v in set5["scales"].items()),
                "goal": f"|Δ| ≤ {set5['tol_db']} dB (issue 21)",
                "ok": set5["auto_ok"],
            }
        )
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
