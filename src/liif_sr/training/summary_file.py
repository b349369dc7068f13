"""``<run dir>/summary.json``: what a comparison reads without W&B (one atomic, merged write per update).

Written by the ``step_time`` callback at the end of a fit (name, params, ms/step, best and last validation
metrics, ``"status": "completed"``) and by a failed sweep job (``"status": "failed"``, ``"reason"``)::

    {"name": "edsr_baseline_small-liif lr=0.0005", "model": "edsr_baseline_small-liif", "status": "completed",
     "params": 123456, "ms_per_step": 41.2, "steps_timed": 120, "val/psnr": 27.1, "val/psnr_best": 27.3, ...}
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SUMMARY_FILE = "summary.json"


def read_summary(run_dir: str | Path) -> dict[str, Any]:
    """The run's ``summary.json`` as a dict ({} when absent or unreadable)."""
    file = Path(run_dir) / SUMMARY_FILE
    try:
        data = json.loads(file.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def update_summary(run_dir: str | Path, fields: dict[str, Any]) -> Path:
    """Merge ``fields`` into ``<run_dir>/summary.json`` (temp file + rename: never half a file)."""
    path = Path(run_dir) / SUMMARY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    summary = {**read_summary(run_dir), **fields}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(summary, indent=2) + "\n")
    tmp.replace(path)
    return path
