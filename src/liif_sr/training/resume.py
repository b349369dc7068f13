"""Which checkpoint a training continues: ``resume=<run dir>`` or ``ckpt_path=<file>|last`` (``docs/resume.md``).

What a checkpoint restores is spread over the callbacks that write it: weights, optimizer and LR schedule
(Lightning), RNG states (:mod:`liif_sr.training.callbacks.rng_state`), ``last.ckpt`` cadence
(:mod:`liif_sr.training.callbacks.model_checkpoint`), atomic files (:mod:`liif_sr.training.checkpoint_io`),
the metrics file (:mod:`liif_sr.training.loggers.csv_append`) and the W&B run
(:mod:`liif_sr.training.loggers.wandb_run`).
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from liif_sr.errors import UserError


def resolve_ckpt_path(cfg: DictConfig) -> str | None:
    """``ckpt_path`` (a file or ``last``) and ``resume=<run dir>`` → a checkpoint file or None."""
    ckpt = cfg.get("ckpt_path")
    if cfg.get("resume"):
        last = Path(cfg.resume) / "checkpoints" / "last.ckpt"
        if not last.is_file():
            raise UserError(f"resume={cfg.resume}: no checkpoints/last.ckpt in that run directory")
        return str(last)
    if ckpt == "last":
        last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
        if not last.is_file():
            raise UserError(
                "ckpt_path=last: no checkpoints/last.ckpt in this run directory "
                f"({cfg.paths.output_dir}); use resume=<previous run dir> to continue a previous run"
            )
        return str(last)
    if ckpt and not Path(ckpt).is_file():
        raise UserError(f"ckpt_path={ckpt}: file not found")
    return ckpt
