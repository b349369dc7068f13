"""``gpu_tools.py``: the repository root, the shipped model's numbers, the issue's targets, JSON read/write."""

from __future__ import annotations

import json
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

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
