"""Evaluating a whole comparison: ``liif-sr-eval checkpoint=<multirun folder>`` gives one row per job.

A Hydra multirun folder (``liif-sr-train -m model/encoder=a,b model/head=x,y``) holds ``multirun.yaml`` and
one numbered folder per job, each a run folder (``model.safetensors``, else ``checkpoints/last.ckpt``).
:func:`expand_multirun` turns it into ``(row name, job folder)`` pairs in job order: the name is the job's
run name (:func:`job_name`: ``<encoder>-<head>`` of its configs and the values its sweep varies, e.g.
``edsr_baseline_small-liif lr=0.0005``, also its W&B run name), else its weights' registry names
(``edsr_baseline-lte``); two jobs with the same name get their job number appended
(``rdn_small-liif (job 3)``). A job that recorded a failure (``summary.json`` ``status: failed``) is a row
marked ``[failed]`` (:func:`failed_jobs`: with the reason, also when it left no weights). Other jobs without
weights (killed) are marked rows ``job N: no weights`` (:func:`jobs_without_weights`); a folder where no job
has weights is refused.

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
    from liif_sr.checkpoints import read_config
    from liif_sr.training.run_name import model_name

    config = read_config(job)
    return model_name(config["encoder"]["name"], config["head"]["name"])


def expand_multirun(path: str | Path) -> list[tuple[str, str]]:
    """``(row name, job folder)`` for every job of a multirun folder that has weights, in job order."""
    folder = Path(path)
    jobs = _job_folders(folder)
    with_weights = [job for job in jobs if _has_weights(job)]
    missing = [job.name for job in jobs if job not in with_weights and not job_failure(job)]
    if not with_weights and not missing and jobs:
        return []  # every job failed: the failed rows say why (failed_jobs)
    if not with_weights:
        what = f"jobs {', '.join(missing)} have" if missing else "it has no numbered job folders and"
        raise UserError(f"{folder}: a multirun folder, but {what} no weights (model.safetensors or "
                        "checkpoints/last.ckpt): nothing to evaluate")  # fmt: skip
    if missing:
        log.warning("%s: jobs without weights (marked rows, not evaluated): %s", folder, ", ".join(missing))
    names = [job_name(job) for job in with_weights]
    rows = []
    for job, name in zip(with_weights, names):
        name = name if names.count(name) == 1 else f"{name} (job {job.name})"
        if job_failure(job):  # weights of a job that failed later (its last good checkpoint): marked
            name += " [failed]"
        rows.append((name, str(job)))
    return rows


def jobs_with_weights(path: str | Path) -> list[str]:
    """The job folders of a multirun folder that hold weights, in job order (nothing read)."""
    return [str(job) for job in _job_folders(Path(path)) if _has_weights(job)]


def jobs_without_weights(path: str | Path) -> list[str]:
    """The job folder names of a multirun folder that hold no weights and recorded no failure (killed jobs),
    in job order: the evaluation table lists them as marked rows instead of dropping them (failed jobs are
    :func:`failed_jobs` rows)."""
    folder = Path(path)
    if not is_multirun_folder(folder):
        return []
    return [job.name for job in _job_folders(folder) if not _has_weights(job) and not job_failure(job)]


def job_name(job: Path) -> str:
    """A job's row name: its run name (``<encoder>-<head>`` and the swept values, e.g.
    ``edsr_baseline_small-liif lr=0.0005``, :mod:`liif_sr.training.run_name`), from its ``.hydra`` folder,
    else its ``summary.json``, else its weights' registry names."""
    from liif_sr.training.run_name import folder_identity

    identity = folder_identity(job)
    if identity is not None and identity.name:
        return identity.name
    summary = run_summary(job) or {}
    return str(summary.get("name") or _weights_name(job))


def job_failure(job: Path) -> str | None:
    """The recorded failure of a sweep job (``summary.json`` ``status: failed``), or None."""
    summary = run_summary(job) or {}
    return str(summary.get("reason") or "failed") if summary.get("status") == "failed" else None


def failed_jobs(path: str | Path) -> dict[str, str]:
    """``{row name: reason}`` of the failed jobs of a multirun folder that left no weights (marked rows)."""
    return {
        f"{job_name(job)} [failed]": f"job {job.name}: {job_failure(job)}"
        for job in _job_folders(Path(path))
        if job_failure(job) and not _has_weights(job)
    }
