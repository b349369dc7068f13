"""Best and last validation metric of a run: ``val/psnr_best`` next to the last ``val/psnr``.

W&B keeps the *last* logged value of a metric in the run summary; a comparison wants the best too. After
every validation (not the sanity check) :class:`ValBest` updates, on global rank 0, the W&B run summary with
``<monitor>_best`` and ``<monitor>_best_step``; ``summary.json`` gets both and the last value at the end of
training (the ``step_time`` callback writes it). The best survives a resume (callback state in checkpoints).
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L

from liif_sr.training.callbacks.log_step import log_step


class ValBest(L.Callback):
    """Track the best (``mode``: max or min) and the last value of ``monitor`` over the validations of a run."""

    def __init__(self, monitor: str = "val/psnr", mode: str = "max") -> None:
        if mode not in ("max", "min"):
            raise ValueError(f"val_best.mode must be max or min, got {mode!r}")
        self.monitor, self.mode = str(monitor), mode
        self.best: float | None = None
        self.best_step: int | None = None
        self.last: float | None = None

    @property
    def state_key(self) -> str:
        return f"ValBest{{{self.monitor}}}"

    def _better(self, value: float) -> bool:
        if self.best is None:
            return True
        return value > self.best if self.mode == "max" else value < self.best

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        value = trainer.callback_metrics.get(self.monitor)
        if trainer.sanity_checking or value is None:
            return
        value = float(value)
        self.last = value
        if not math.isnan(value) and self._better(value):
            self.best, self.best_step = value, log_step(trainer)
        if trainer.is_global_zero:
            for lg in trainer.loggers:
                if type(lg).__name__ == "WandbLogger":
                    lg.experiment.summary.update(self.summary_fields(digits=None))

    def summary_fields(self, digits: int | None = 4) -> dict[str, Any]:
        """``{<monitor>_best, <monitor>_best_step}`` and the last value as ``<monitor>_last`` (rounded to
        ``digits`` as ``summary.json``'s other metrics; None: as logged, for the W&B summary)."""
        rnd = lambda v: v if v is None or digits is None else round(v, digits)  # noqa: E731
        return {
            f"{self.monitor}_best": rnd(self.best),
            f"{self.monitor}_best_step": self.best_step,
            f"{self.monitor}_last": rnd(self.last),
        }

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_step": self.best_step, "last": self.last}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best = state_dict.get("best")
        self.best_step = state_dict.get("best_step")
        self.last = state_dict.get("last")
