"""``bench_train.py``: the Markdown tables and the ``## Training`` section of ``BENCHMARKS.md``."""

from __future__ import annotations

import math
import os
from pathlib import Path

from bench.train_setup import Row


def fmt(x: float, digits: int = 1) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def markdown(rows: list[Row], data_rows: list[Row], meta: dict) -> str:
    lines = [
        f"### {meta['device']}",
        "",
        f"{meta['date']}, torch {meta['torch']}; batch {meta['batch']}, LR {meta['inp']}², {meta['q']} queries, "
        f"Adam 1e-4, L1; {meta['images']}. ms/step: median over {meta['windows']} timing window(s) of "
        f"{meta['steps']} step(s), after {meta['warmup']} warm-up step(s); best: the fastest window. "
        f"CPU ms: process CPU time per step, all threads (the work, without waiting for a busy core); "
        f"load average at the start {meta.get('loadavg', '–')}, at the end {meta.get('loadavg_end', '–')}. "
        f"`{meta['command']}`",
        "",
        "| model | variant | data | ms/step | best ms/step | samples/s | speed-up vs fp32 ref | CPU ms/step "
        "| CPU-time speed-up | peak MiB | syncs/step |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        variant = f"{r.variant} ({r.config})" + (f" — {'; '.join(r.notes)}" if r.notes else "")
        lines.append(
            f"| {r.model} | {variant} | {r.data} | {fmt(r.ms_per_step)} | {fmt(r.min_ms)} | {fmt(r.samples_per_s)} | "
            f"{fmt(r.speedup, 2)}× | {fmt(r.cpu_ms, 0)} | {fmt(r.cpu_speedup, 2)}× | {fmt(r.peak_mib, 0)} "
            f"| {fmt(r.syncs_per_step, 1)} |"
        )
    if data_rows:
        lines += ["", "| data pipeline alone | where | ms/batch | samples/s |", "|---|---|---:|---:|"]
        lines += [
            f"| {r.variant} | {r.data} | {fmt(r.ms_per_step)} | {fmt(r.samples_per_s)} |" for r in data_rows
        ]
    parity = meta.get("parity") or {}
    if parity:
        lines += [
            "",
            "| loss parity | reference | fast path | steps | mean loss, last third: ref | fast | rel. diff "
            "| first-step rel. diff | median step rel. diff | within tol. |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|---|",
        ]
        for name, p in parity.items():
            lines.append(
                f"| {name} | {p['ref_variant']} | {p['fast_variant']} | {p['steps']} | {p['ref_tail_mean']:.5f} "
                f"| {p['fast_tail_mean']:.5f} | {p['tail_rel_diff']:.2e} | {p['first_step_rel_diff']:.2e} "
                f"| {p['median_step_rel_diff']:.2e} | {'yes' if p['ok'] else '**no**'} (≤ {p['tol']:g}) |"
            )
    lines += [
        "",
        "Speed-ups compare with the fp32 reference of the same model fed the same way (model-only rows with "
        "the model-only reference, end-to-end rows with the reference on CPU workers), measured in this run.",
    ]
    if parity:
        lines.append(
            "Loss parity: both trained from the same initial weights on the same pre-built batches (seeded "
            "device sampler); rel. diff = |mean fast − mean ref| / mean ref over the last third of the steps."
        )
    if meta.get("skipped"):
        lines.append(
            f"**Skipped (--time-budget {meta['time_budget']:g} s spent):** {'; '.join(meta['skipped'])}."
        )
    tf32 = meta.get("tf32")
    if tf32:
        lines.append(
            f"TF32 (PyTorch defaults, unchanged): matmul {tf32['matmul']}, cuDNN {tf32['cudnn']}; cuDNN "
            "benchmark on for the fast variants only (as `trainer=gpu_speed`)."
        )
    return "\n".join(lines) + "\n"


def update_markdown(path: Path, subsection: str, preamble: str) -> None:
    """Put ``subsection`` (starting ``### <device>``) into the ``## Training`` section of ``path``.

    A subsection for the same device is replaced; other subsections and other ``##`` sections are kept.
    """
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == "## Training"), None)
    if start is None:
        body = ["## Training", "", *preamble.splitlines(), ""]
        end = len(lines)
        lines = [*lines, ""] if lines and lines[-1].strip() else lines
        start, end = len(lines), len(lines)
        section = body
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        section = lines[start:end]
    head = subsection.splitlines()[0]
    s0 = next((i for i, line in enumerate(section) if line.strip() == head.strip()), None)
    new = subsection.rstrip("\n").splitlines()
    if s0 is None:
        section = [*section, *([""] if section and section[-1].strip() else []), *new, ""]
    else:
        s1 = next((i for i in range(s0 + 1, len(section)) if section[i].startswith("### ")), len(section))
        section = [*section[:s0], *new, "", *section[s1:]]
    out = [*lines[:start], *section, *lines[end:]]
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text("\n".join(out).rstrip("\n") + "\n")
    os.replace(tmp, path)


PREAMBLE = (
    "`make bench-train` (`scripts/bench_train.py`): one training step = forward, L1, backward, Adam on a batch "
    "of 16 48² LR crops with 2304 queries (the paper's). `fp32 ref` is the official algorithm (plain head) in "
    "fp32; `fast` is the fast path of `docs/training_speed.md` (on the CPU without `--cpu-bf16`: the default fp32 training step, losses equal to `fp32 ref`'s). One subsection per device."
)
