"""Ctrl-C (SIGINT) during training: one line that says how to continue, exit code 130.

Lightning catches the ``KeyboardInterrupt`` inside ``trainer.fit``, runs the callbacks' ``on_exception``
(:class:`~liif_sr.training.callbacks.model_checkpoint.ModelCheckpoint` then writes ``last.ckpt`` at the
interrupted step, on a single device) and calls ``sys.exit(1)``. :func:`fit_or_interrupt` turns that exit
into :class:`TrainingInterrupted`, whose message is the exact resume command::

    liif-sr-train: error: interrupted at epoch 3, step 1130 (checkpoints/last.ckpt saved); continue with:
    liif-sr-train experiment=quickstart resume=logs/train/runs/2026-...

(on one line). A checkpoint written mid-epoch continues approximately (``docs/resume.md``).
"""

from __future__ import annotations

import shlex
import signal
import threading
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from liif_sr.errors import UserError

#: overrides a resume command does not repeat (``resume`` picks the run folder and its last.ckpt)
_DROPPED = ("resume=", "ckpt_path=", "hydra.run.dir=", "hydra.sweep.dir=", "hydra.job.num=")


class TrainingInterrupted(UserError):
    """Training stopped by Ctrl-C; the message says how to continue (exit code 130, as a shell's SIGINT)."""

    exit_code = 130


def resume_command(cfg: DictConfig, run_dir: Path) -> str:
    """``liif-sr-train <the job's overrides> resume=<run_dir>``: the same options, continued in place."""
    overrides: list[str] = []
    try:
        from hydra.core.hydra_config import HydraConfig

        if HydraConfig.initialized():
            overrides = [str(o) for o in HydraConfig.get().overrides.task]
    except Exception:  # noqa: BLE001 - the Python API without Hydra: options unknown
        overrides = []
    kept = [o for o in overrides if not o.lstrip("+~").startswith(_DROPPED)]
    return shlex.join(["liif-sr-train", *kept, f"resume={run_dir}"])


def interrupted_message(trainer: Any, cfg: DictConfig) -> str:
    """Where training stopped, whether ``last.ckpt`` holds that step, and the command that continues it."""
    run_dir = Path(str(cfg.paths.output_dir))
    last = run_dir / "checkpoints" / "last.ckpt"
    where = f"interrupted at epoch {trainer.current_epoch}, step {trainer.global_step}"
    if any(getattr(cb, "interrupt_saved", False) for cb in trainer.callbacks):
        state = "checkpoints/last.ckpt saved"
    elif last.is_file():
        state = "checkpoints/last.ckpt is from an earlier step"
    else:
        return f"{where}; no checkpoint was written, nothing to resume: start again"
    return f"{where} ({state}); continue with: {resume_command(cfg, run_dir)}"


def fit_or_interrupt(trainer: Any, cfg: DictConfig, **fit_kwargs: Any) -> None:
    """``trainer.fit(**fit_kwargs)``; a Ctrl-C raises :class:`TrainingInterrupted` instead of Lightning's
    ``sys.exit(1)``."""
    from liif_sr.training.callbacks.requeue import JobRequeued

    try:
        trainer.fit(**fit_kwargs)
    except SystemExit as exc:
        if isinstance(exc, JobRequeued) or not trainer.interrupted:
            raise
        requeued = [cb for cb in trainer.callbacks if getattr(cb, "requeued", "")]
        if requeued:  # SLURM's SIGTERM after the requeue: the job has checkpointed, not the user's Ctrl-C
            raise JobRequeued(exc.code) from None
        if threading.current_thread() is threading.main_thread():  # Lightning left Ctrl-C ignored
            signal.signal(signal.SIGINT, signal.default_int_handler)
        raise TrainingInterrupted(interrupted_message(trainer, cfg)) from None
