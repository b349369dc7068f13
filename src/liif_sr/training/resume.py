"""Which checkpoint a training continues: ``resume=<run or multirun folder>`` or ``ckpt_path=<file>|last``
(``docs/resume.md``), and whether anything is left to train.

What a checkpoint restores is spread over the callbacks that write it: weights, optimizer and LR schedule
(Lightning), RNG states (:mod:`liif_sr.training.callbacks.rng_state`), ``last.ckpt`` cadence and paths
(:mod:`liif_sr.training.callbacks.model_checkpoint`), atomic files with a sha256 sidecar
(:mod:`liif_sr.training.checkpoint_io`, :mod:`liif_sr.training.integrity`), the metrics file
(:mod:`liif_sr.training.loggers.csv_append`) and the W&B run (:mod:`liif_sr.training.loggers.wandb_run`).
The command line of a resume (the run's own overrides + the changes now, refusals, the lock) is
:mod:`liif_sr.training.resume_plan`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from liif_sr.errors import UserError
from liif_sr.training import integrity

log = logging.getLogger(__name__)

#: Hydra writes this into every multirun folder: ``resume=<that folder>`` resumes the whole sweep
SWEEP_FILE = "multirun.yaml"
LAST = Path("checkpoints") / "last.ckpt"


def is_sweep_dir(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a Hydra multirun folder: it holds ``multirun.yaml`` (the grid sweeper writes it),
    or job folders ``<n>/.hydra`` and no ``.hydra`` of its own (an Optuna sweep)."""
    path = Path(path)
    if (path / SWEEP_FILE).is_file():
        return True
    if (path / ".hydra").is_dir() or not path.is_dir():
        return False
    return any(p.name.isdigit() and (p / ".hydra").is_dir() for p in path.iterdir())


def _job_dir_of_sweep(cfg: DictConfig) -> Path:
    """``resume=<multirun folder>`` inside one of its jobs: the job's own folder ``<sweep>/<job num>``."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    sweep = Path(str(cfg.resume))
    out = Path(str(cfg.paths.output_dir))
    inside = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    if not inside or out.resolve().parent != sweep.resolve():
        raise UserError(
            f"resume={cfg.resume} is a multirun folder: resume it with `liif-sr-train resume={cfg.resume}` "
            f"(every job continues its own folder), or one job with resume={cfg.resume}/<job number>"
        )
    return out


def resolve_ckpt_path(cfg: DictConfig) -> str | None:
    """``ckpt_path`` (a file or ``last``) and ``resume=<run dir>`` → a verified checkpoint file or None.

    ``resume=<multirun folder>`` (a job of a resumed sweep): the job's own ``last.ckpt``, or None for a job
    that never wrote one (it starts)."""
    ckpt = cfg.get("ckpt_path")
    if cfg.get("resume"):
        run_dir = _job_dir_of_sweep(cfg) if is_sweep_dir(cfg.resume) else Path(cfg.resume)
        furthest = resume_point(run_dir, f"resume={cfg.resume}")
        if furthest is None:
            if is_sweep_dir(cfg.resume):
                return None  # a job that never wrote a checkpoint starts
            raise UserError(f"resume={cfg.resume}: no checkpoints/last.ckpt in that run directory")
        if furthest != run_dir / LAST:
            log.info(
                "resume=%s: continuing from %s (further than checkpoints/last.ckpt)", cfg.resume, furthest
            )
        return str(furthest)
    if not ckpt:  # a SLURM / submitit job requeued into its folder continues from its hpc checkpoint
        out = Path(cfg.paths.output_dir)
        if not any(re.fullmatch(r"hpc_ckpt_\d+\.ckpt", p.name) for p in out.glob("hpc_ckpt_*.ckpt")):
            return None
        requeued = furthest_checkpoint(out)
        return str(requeued) if requeued is not None else None
    if ckpt == "last":
        last = Path(cfg.paths.output_dir) / LAST
        if not last.is_file():
            raise UserError(
                "ckpt_path=last: no checkpoints/last.ckpt in this run directory "
                f"({cfg.paths.output_dir}); use resume=<previous run dir> to continue a previous run"
            )
        integrity.check_integrity(last, "ckpt_path=last")
        return str(last)
    if ckpt and not Path(ckpt).is_file():
        raise UserError(f"ckpt_path={ckpt}: file not found")
    if ckpt:
        integrity.check_integrity(ckpt, f"ckpt_path={ckpt}")
    return ckpt


def resume_point(run_dir: Path, what: str) -> Path | None:
    """The checkpoint ``resume=<run_dir>`` continues (:func:`furthest_checkpoint`), or None; a damaged
    ``last.ckpt`` is refused (the message names the newest intact checkpoint)."""
    if (Path(run_dir) / LAST).is_file():
        integrity.check_integrity(Path(run_dir) / LAST, what)
    return furthest_checkpoint(run_dir)


def furthest_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint of ``run_dir`` that trained furthest: ``checkpoints/*.ckpt`` (not one whose sidecar
    differs) and SLURM's ``hpc_ckpt_<n>.ckpt`` (:mod:`liif_sr.training.callbacks.requeue`), by optimizer steps;
    ``last.ckpt`` wins a tie. A job killed after its first numbered checkpoint but before ``last.ckpt``, or
    requeued after ``last.ckpt``, continues from where it got, not from an older state or from scratch."""
    run_dir = Path(run_dir)
    last = run_dir / LAST
    candidates = [p for p in (run_dir / LAST.parent).glob("*.ckpt") if integrity.is_intact(p) is not False]
    candidates += [p for p in run_dir.glob("hpc_ckpt_*.ckpt") if re.fullmatch(r"hpc_ckpt_\d+\.ckpt", p.name)]
    best, best_key = None, None
    for path in candidates:
        done = read_progress(path)  # None: no progress recorded (ranked below any that has one)
        key = (done.steps if done is not None else -1, path == last, path.stat().st_mtime)
        if best_key is None or key > best_key:
            best, best_key = path, key
    return best


# ------------------------------------------------------------------------------- what is left to train


@dataclass(frozen=True)
class Progress:
    """How far a checkpoint got: epochs fully processed, optimizer steps, training seconds (Timer)."""

    epochs: int
    steps: int
    seconds: float | None


def read_progress(ckpt_path: str | os.PathLike[str]) -> Progress | None:
    """The :class:`Progress` of a Lightning checkpoint, or None if it does not record one; read once per
    version of the file in a process (:mod:`liif_sr.file_cache`). The same read keeps the checkpoint's
    model config: the checks that follow (:func:`liif_sr.checkpoints.read_config`) read the file no more."""
    from liif_sr.file_cache import remembered

    return remembered("progress", ckpt_path, lambda: _read_progress(ckpt_path))


def _read_progress(ckpt_path: str | os.PathLike[str]) -> Progress | None:
    import torch

    from liif_sr.checkpoints import remember_loaded_config
    from liif_sr.file_cache import version

    ver = version(ckpt_path)
    try:
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - unreadable: the checkpoint checks report it
        return None
    remember_loaded_config(ckpt_path, ckpt, ver)
    if not isinstance(ckpt, dict) or "global_step" not in ckpt:
        return None
    epochs = int(ckpt.get("epoch", -1)) + 1
    with contextlib.suppress(KeyError, TypeError):
        epochs = int(ckpt["loops"]["fit_loop"]["epoch_progress"]["current"]["processed"])
    timer = next((v for k, v in (ckpt.get("callbacks") or {}).items() if str(k).startswith("Timer")), None)
    seconds = None
    if isinstance(timer, dict) and isinstance(timer.get("time_elapsed"), dict):
        seconds = float(timer["time_elapsed"].get("train") or 0.0)
    return Progress(epochs=epochs, steps=int(ckpt["global_step"]), seconds=seconds)


def _seconds(max_time: Any) -> float | None:
    """``trainer.max_time`` ("DD:HH:MM:SS" or a dict of timedelta arguments) in seconds, or None."""
    if max_time is None:
        return None
    if isinstance(max_time, str):
        d, h, m, s = (int(x) for x in max_time.split(":"))
        return dt.timedelta(days=d, hours=h, minutes=m, seconds=s).total_seconds()
    if hasattr(max_time, "items"):
        return dt.timedelta(**{str(k): float(v) for k, v in max_time.items()}).total_seconds()
    return None


def nothing_left(trainer_cfg: Any, done: Progress, what: str) -> str | None:
    """Why a run at ``done`` has nothing left to train under ``trainer_cfg`` (None: it continues).

    Raises :class:`UserError` when a limit is set *below* what the run already trained."""
    max_epochs, max_steps = trainer_cfg.get("max_epochs"), trainer_cfg.get("max_steps", -1)
    if isinstance(max_epochs, int) and 0 <= max_epochs < done.epochs:
        raise UserError(
            f"{what}: trainer.max_epochs={max_epochs} is below the {done.epochs} epochs the run has trained; "
            f"give trainer.max_epochs above {done.epochs} to train on"
        )
    if isinstance(max_steps, int) and 0 <= max_steps < done.steps:
        raise UserError(
            f"{what}: trainer.max_steps={max_steps} is below the {done.steps} steps the run has trained; "
            f"give trainer.max_steps above {done.steps} to train on"
        )
    if isinstance(max_epochs, int) and max_epochs >= 0 and done.epochs >= max_epochs:
        return f"finished: {done.epochs} of trainer.max_epochs={max_epochs} epochs trained"
    if isinstance(max_steps, int) and max_steps >= 0 and done.steps >= max_steps:
        return f"finished: {done.steps} of trainer.max_steps={max_steps} steps trained"
    limit = _seconds(trainer_cfg.get("max_time"))
    if limit is not None and done.seconds is not None and done.seconds >= limit:
        return f"finished: its trainer.max_time ({trainer_cfg.max_time}) is used up"
    return None


def recorded_metrics(run_dir: str | os.PathLike[str]) -> dict[str, float]:
    """The ``val/*`` metrics a finished run recorded in its ``summary.json`` (empty if none)."""
    from liif_sr.training.summary_file import read_summary

    summary = read_summary(run_dir)
    return {k: float(v) for k, v in summary.items() if k.startswith("val/") and isinstance(v, int | float)}


_KEPT: dict[str, dict[str, bytes]] = {}


def keep_hydra_files(run_dir: Path) -> None:
    """Remember the ``.hydra/*.yaml`` of a finished job of a resumed sweep: Hydra rewrites them before the
    job learns it has nothing to do, and :func:`finished_run` puts them back (same process: the local
    launcher)."""
    _KEPT[str(run_dir.resolve())] = {p.name: p.read_bytes() for p in (run_dir / ".hydra").glob("*.yaml")}


def _restore_hydra_files(run_dir: Path) -> None:
    for name, data in _KEPT.pop(str(run_dir.resolve()), {}).items():
        tmp = run_dir / ".hydra" / f".{name}.tmp"
        tmp.write_bytes(data)
        tmp.replace(run_dir / ".hydra" / name)


def finished_run(cfg: DictConfig, ckpt_path: str | None) -> dict[str, float] | None:
    """A continued run with nothing left to train: its recorded metrics (nothing is rewritten); else None."""
    if not ckpt_path or not (cfg.get("resume") or cfg.get("ckpt_path") == "last"):
        return None
    done = read_progress(ckpt_path)
    if done is None:
        return None
    why = nothing_left(cfg.trainer, done, f"resume={cfg.get('resume') or ckpt_path}")
    if why is None:
        return None
    log.info("%s: %s; left as it is", cfg.paths.output_dir, why)
    _restore_hydra_files(Path(cfg.paths.output_dir))
    return recorded_metrics(cfg.paths.output_dir)
