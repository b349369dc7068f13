"""Evaluating a whole comparison: ``liif-sr-eval checkpoint=<multirun folder>`` gives one row per job.

A Hydra multirun folder (``liif-sr-train -m model/encoder=a,b model/head=x,y``) holds ``multirun.yaml`` and
one numbered folder per job, each a run folder (``model.safetensors``, else ``checkpoints/last.ckpt``).
:func:`expand_multirun` turns it into ``(row name, job folder)`` pairs in job order: the name is the job's
``<encoder>-<head>`` — the one in its ``summary.json`` (the Hydra choices, also its W&B run name, e.g.
``edsr_baseline_small-lte``), else its weights' registry names (``edsr_baseline-lte``); two jobs with the
same pair get their job number appended (``rdn_small-liif (job 3)``). Jobs without weights are not evaluated:
the table shows each as a marked row ``job N: no weights`` (:func:`jobs_without_weights`); a folder where no
job has weights is refused.

:func:`run_summary` reads a run's ``summary.json`` (written by the ``step_time`` training callback): the
evaluation table gets a side table with parameters and measured ms/step from it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from liif_sr.errors import UserError

log = logging.getLogger("liif_sr.evaluate")

MULTIRUN_FILE = "multirun.yaml"
SUMMARY_FILE = "summary.json"


def _has_weights(folder: Path) -> bool:
    from liif_sr.checkpoints import RUN_WEIGHTS

    return any((folder / name).is_file() for name in RUN_WEIGHTS)


def _job_folders(folder: Path) -> list[Path]:
    jobs = [p for p in folder.iterdir() if p.is_dir() and p.name.isdigit()]
    return sorted(jobs, key=lambda p: int(p.name))


def is_multirun_folder(path: str | Path) -> bool:
    """A folder without weights of its own holding ``multirun.yaml`` or numbered job folders."""
    folder = Path(path)
    if not folder.is_dir() or _has_weights(folder):
        return False
    return (folder / MULTIRUN_FILE).is_file() or bool(_job_folders(folder))


def run_summary(path: str | Path) -> dict[str, Any] | None:
    """The ``summary.json`` of the run a checkpoint belongs to (a run folder, ``<run>/model.safetensors`` or
    ``<run>/checkpoints/x.ckpt``), or None."""
    path = Path(path)
    folders = [path] if path.is_dir() else [path.parent, path.parent.parent]
    for folder in folders:
        file = folder / SUMMARY_FILE
        if file.is_file():
            try:
                data = json.loads(file.read_text())
            except (OSError, ValueError) as exc:
                log.warning("%s: unreadable (%s), ignored", file, exc)
                return None
            return data if isinstance(data, dict) else None
    return None


def _weights_name(job: Path) -> str:
    from liif_sr.checkpoints import read_checkpoint, resolve_checkpoint

    config, _ = read_checkpoint(resolve_checkpoint(job))
    return f"{config['encoder']['name']}-{config['head']['name']}"


def expand_multirun(path: str | Path) -> list[tuple[str, str]]:
    """``(row name, job folder)`` for every job of a multirun folder that has weights, in job order."""
    folder = Path(path)
    jobs = _job_folders(folder)
    with_weights = [job for job in jobs if _has_weights(job)]
    missing = [job.name for job in jobs if job not in with_weights]
    if not with_weights:
        what = f"jobs {', '.join(missing)} have" if missing else "it has no numbered job folders and"
        raise UserError(f"{folder}: a multirun folder, but {what} no weights (model.safetensors or "
                        "checkpoints/last.ckpt): nothing to evaluate")  # fmt: skip
    if missing:
        log.warning("%s: jobs without weights (marked rows, not evaluated): %s", folder, ", ".join(missing))
    names = []
    for job in with_weights:
        summary = run_summary(job) or {}
        names.append(str(summary.get("name") or _weights_name(job)))
    rows = []
    for job, name in zip(with_weights, names):
        rows.append((name if names.count(name) == 1 else f"{name} (job {job.name})", str(job)))
    return rows


def jobs_without_weights(path: str | Path) -> list[str]:
    """The job folder names of a multirun folder that hold no weights (killed or failed jobs), in job order:
    the evaluation table lists them as marked rows instead of dropping them."""
    folder = Path(path)
    if not is_multirun_folder(folder):
        return []
    return [job.name for job in _job_folders(folder) if not _has_weights(job)]
