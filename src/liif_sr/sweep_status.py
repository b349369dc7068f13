"""The end of a sweep: which jobs failed, in ``<sweep>/sweep_status.json`` and in the exit code.

:class:`SweepStatus` is a Hydra callback (``hydra.callbacks.sweep_status`` in ``conf/hydra/default.yaml``).
When a multirun ends it reads every job folder's ``summary.json`` (:mod:`liif_sr.training.job_failure`
writes ``"status": "failed"`` there), writes ``<sweep>/sweep_status.json``::

    {"jobs": 2, "failed": 1, "failures": [{"job": "0", "name": "edsr_baseline_small-liif lr=1e+07",
     "reason": "non-finite loss at step 0 (epoch 0); ...", "exit_code": 3}]}

and :func:`exit_for_failures` (called by the console entry after Hydra returns) prints one line per the
sweep and exits with the number of failed jobs (at most 100); 0 when every job completed. It reads the job
folders, so it also counts jobs that ran in other processes (submitit, joblib).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

STATUS_FILE = "sweep_status.json"
MAX_EXIT = 100

_last: dict[str, Any] | None = None  # the status of the multirun that ended in this process


def sweep_failures(sweep_dir: str | Path) -> dict[str, Any]:
    """``{"jobs", "failed", "failures": [{"job", "name", "reason", "exit_code"}]}`` of a sweep folder."""
    from liif_sr.training.summary_file import read_summary

    folder = Path(sweep_dir)
    jobs = sorted((p for p in folder.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))
    failures = []
    for job in jobs:
        summary = read_summary(job)
        if summary.get("status") == "failed":
            failures.append({"job": job.name, "name": summary.get("name"), "reason": summary.get("reason"),
                             "exit_code": summary.get("exit_code")})  # fmt: skip
    return {"sweep_dir": str(folder), "jobs": len(jobs), "failed": len(failures), "failures": failures}


class SweepStatus(Callback):
    """Hydra callback: write ``<sweep>/sweep_status.json`` when a multirun ends; remember it for the exit code."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        global _last
        sweep_dir = Path(str(config.hydra.sweep.dir))
        if not sweep_dir.is_dir():
            return
        status = sweep_failures(sweep_dir)
        tmp = sweep_dir / (STATUS_FILE + ".tmp")
        tmp.write_text(json.dumps(status, indent=2) + "\n")
        tmp.replace(sweep_dir / STATUS_FILE)
        _last = status


def exit_for_failures(prog: str, stopped: bool = False) -> None:
    """After a multirun: one line naming the failed jobs and ``SystemExit(<number failed>)``; else nothing.

    ``stopped``: the sweep ended in an error (e.g. the Optuna sweeper's "No trials are completed yet" when
    every trial failed): the failures recorded in this process are reported instead."""
    from liif_sr.training.job_failure import FAILURES

    global _last
    status, _last = _last, None
    if stopped and status is None and FAILURES:
        print(f"{prog}: error: the sweep stopped after {len(FAILURES)} failed jobs; first: {FAILURES[0]}",
              file=sys.stderr)  # fmt: skip
        raise SystemExit(min(len(FAILURES), MAX_EXIT))
    if not status or not status["failed"]:
        return
    first = status["failures"][0]
    more = "" if status["failed"] == 1 else f" (and {status['failed'] - 1} more)"
    print(
        f"{prog}: error: {status['failed']} of {status['jobs']} jobs failed; job {first['job']} "
        f"({first['name']}): {first['reason']}{more}; see {Path(status['sweep_dir']) / STATUS_FILE}",
        file=sys.stderr,
    )
    raise SystemExit(min(status["failed"], MAX_EXIT))
