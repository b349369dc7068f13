"""A failed job of a sweep is recorded, not fatal: the other jobs run (issue 17).

Inside a Hydra multirun, an exception of one job (the NaN guard's :class:`~liif_sr.errors.NonFiniteLossError`,
a user error, a crash such as out-of-memory) is recorded by :func:`record_failure`:

* ``<job>/summary.json``: ``"status": "failed"``, ``"reason"`` (one line), ``"exit_code"``, the run's name;
* the job's log: the reason (and the traceback of an unexpected error);
* W&B (when the job has a run): summary ``status=failed`` / ``failure``, and the run finished with the
  exit code (shown as failed);

and the job returns a :class:`FailedJob` (not a number): Hydra's sweepers go on; the Optuna sweeper tells
the trial as ``FAIL`` ("Failed experiment: Return value must be float-castable. Got 'job failed: <reason>'")
and continues the study whatever ``hydra.sweeper.max_failure_rate`` (the job itself did not crash). At the end,
:mod:`liif_sr.sweep_status` counts the failed jobs: ``<sweep>/sweep_status.json`` and the exit code.
A single run (no ``-m``) still stops with its one-line error and exit code, and so does a sweep whose launch
cannot work for any job (:class:`~liif_sr.training.launch.LaunchError`, e.g. subprocess DDP in a local
multirun).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

log = logging.getLogger("liif_sr.train")

FAILED = "failed"
COMPLETED = "completed"


def in_multirun() -> bool:
    """Whether this process runs a job of a Hydra multirun (``-m``, an Optuna sweep)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def is_job_failure(exc: BaseException) -> bool:
    """Whether ``exc`` fails one job (recorded; the sweep goes on), not the launch of every job
    (:class:`~liif_sr.training.launch.LaunchError`: the sweep stops with its one-line error) and not the
    user's Ctrl-C (:class:`~liif_sr.training.interrupt.TrainingInterrupted`: the sweep stops, exit 130)."""
    from liif_sr.hydra_app import user_cause
    from liif_sr.training.interrupt import TrainingInterrupted
    from liif_sr.training.launch import LaunchError

    cause = user_cause(exc)
    return isinstance(exc, Exception) and not isinstance(cause, LaunchError | TrainingInterrupted)


def failure_reason(exc: BaseException) -> tuple[str, int]:
    """One line saying why a job failed, and its exit code (a user error's own, else 1)."""
    from liif_sr.errors import UserError
    from liif_sr.hydra_app import user_cause

    cause = user_cause(exc) if isinstance(exc, Exception) else None
    if isinstance(cause, UserError):
        return " ".join(str(cause).split()), cause.exit_code
    return " ".join(f"{type(exc).__name__}: {exc}".split()), 1


class FailedJob:
    """The return value of a failed sweep job: not a number (``float()`` raises), so a sweeper that
    optimises the value records a failed trial; picklable (submitit returns it from another process)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def __float__(self) -> float:
        raise ValueError(f"job failed: {self.reason}")

    def __repr__(self) -> str:
        return f"job failed: {self.reason}"


#: the failures of the jobs that ran in this process (a sweep that ends in an error still reports them)
FAILURES: list[str] = []


def record_failure(cfg: DictConfig, exc: BaseException) -> FailedJob:
    """Record ``exc`` as this job's failure (summary.json, log, W&B); returns the sweeper's value."""
    from liif_sr.training.run_name import run_identity
    from liif_sr.training.summary_file import update_summary

    reason, code = failure_reason(exc)
    if code == 1:  # not a user error: the traceback goes to the job's log
        log.error("job failed: %s", reason, exc_info=exc)
    else:
        log.error("job failed: %s", reason)
    identity = run_identity()
    out_dir = Path(cfg.paths.output_dir)
    update_summary(out_dir, {**identity.as_dict(), "status": FAILED, "reason": reason, "exit_code": code})
    wandb = sys.modules.get("wandb")
    run = getattr(wandb, "run", None) if wandb is not None else None
    if run is not None:
        run.summary.update({"status": FAILED, "failure": reason})
        wandb.finish(exit_code=code)
    FAILURES.append(f"{identity.name}: {reason}")
    return FailedJob(reason)


def mark_completed(out_dir: str | Path, extra: dict[str, Any] | None = None) -> None:
    """``"status": "completed"`` in ``<out_dir>/summary.json`` (and drop a previous failure's reason)."""
    from liif_sr.training.summary_file import update_summary

    update_summary(out_dir, {"status": COMPLETED, "reason": None, "exit_code": 0, **(extra or {})})
