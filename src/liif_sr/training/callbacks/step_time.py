"""Measured training speed: ``train/ms_per_step`` to every logger and the W&B summary, and ``<run>/summary.json``.

``summary.json`` (:mod:`liif_sr.training.summary_file`) is what a comparison reads without W&B
(``liif-sr-eval checkpoint=<multirun folder>`` puts its params and ms/step next to the PSNR table).
"""

from __future__ import annotations

import logging
import statistics
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_only

from liif_sr.training.callbacks.log_step import is_logging_step, log_step
from liif_sr.training.run_name import RunIdentity, run_identity

log = logging.getLogger(__name__)

METRIC = "train/ms_per_step"
#: fewer timed steps than this: ``summary.json`` and the log say the timing is not reliable
MIN_RELIABLE_STEPS = 20


class StepTime(L.Callback):
    """Wall time of each training step (forward, loss, backward, optimizer step; data loading excluded).

    The first ``warmup_steps`` steps of the fit are never timed (allocator, cuDNN autotuning, compile): a
    fit with no step after them has no ``ms_per_step`` (null, with a note), and one with fewer than
    ``MIN_RELIABLE_STEPS`` timed steps gets a note saying so. On CUDA the device is synchronised around
    each timed step. The median of the timed steps is logged as ``train/ms_per_step`` once per logging step
    (``trainer.log_every_n_steps``), written to the W&B run summary (with ``train/steps_timed``), and to
    ``<out_dir>/summary.json`` at the end of training, with the run's identity (``identity``: set by
    ``train()`` from the Hydra job, so spawned DDP ranks write the same name), parameter count and the last
    and best validation metrics (:class:`~liif_sr.training.callbacks.val_best.ValBest`).
    """

    def __init__(self, warmup_steps: int = 5, out_dir: str | None = None) -> None:
        self.warmup_steps = max(0, int(warmup_steps))
        self.out_dir = out_dir
        self.identity: RunIdentity | None = None
        self._times: list[float] = []
        self._start: float | None = None
        self._seen = 0

    def _sync(self, pl_module: L.LightningModule) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        self._seen += 1
        if self._seen <= self.warmup_steps:  # warm-up: not timed
            self._start = None
            return
        self._sync(pl_module)
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        if self._start is not None:
            self._sync(pl_module)
            self._times.append(time.perf_counter() - self._start)
            self._start = None
        if self._times and trainer.is_global_zero and is_logging_step(trainer):  # with train/loss, once
            for lg in trainer.loggers:
                lg.log_metrics({METRIC: self.ms_per_step()}, step=log_step(trainer))

    def ms_per_step(self) -> float | None:
        """Median wall time of the timed steps (after warm-up) in ms, or None when no step was timed."""
        return 1000.0 * statistics.median(self._times) if self._times else None

    def timed_steps(self) -> int:
        return len(self._times)

    def note(self) -> str | None:
        """Why ``ms_per_step`` is missing or not reliable, or None."""
        n = self.timed_steps()
        if n == 0:
            return f"no step timed: the fit had no step after the {self.warmup_steps} warm-up steps"
        if n < MIN_RELIABLE_STEPS:
            return f"only {n} steps timed (after {self.warmup_steps} warm-up steps): not a reliable speed"
        return None

    @rank_zero_only
    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        from liif_sr.training.job_failure import mark_completed

        ms, note = self.ms_per_step(), self.note()
        if note:
            log.warning("train/ms_per_step: %s", note)
        for lg in trainer.loggers:
            if type(lg).__name__ == "WandbLogger":  # the run's summary keeps it next to the config
                lg.experiment.summary.update({METRIC: ms, "train/steps_timed": self.timed_steps()})
        if not self.out_dir:
            return
        net = getattr(pl_module, "net", None)
        identity = self.identity or run_identity(net)
        summary: dict[str, Any] = identity.as_dict()
        summary["params"] = sum(p.numel() for p in net.parameters()) if net is not None else None
        summary["ms_per_step"] = None if ms is None else round(ms, 3)
        summary["steps_timed"] = self.timed_steps()
        summary["warmup_steps"] = self.warmup_steps
        summary["timing_note"] = note
        summary["global_step"] = int(trainer.global_step)
        summary["device"] = str(pl_module.device)
        summary.update(_validation_fields(trainer))
        mark_completed(Path(self.out_dir), summary)

    @rank_zero_only
    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """A validation after the fit (``trainer.validate``: a sweep job stopped before its first one)
        updates the validation metrics of ``summary.json``."""
        from lightning.pytorch.trainer.states import TrainerFn

        if self.out_dir and trainer.state.fn == TrainerFn.VALIDATING:
            from liif_sr.training.summary_file import read_summary, update_summary

            if read_summary(self.out_dir):
                update_summary(self.out_dir, _validation_fields(trainer))


def _validation_fields(trainer: L.Trainer) -> dict[str, Any]:
    """The scalar ``val/*`` metrics and the best / last ones (the ``val_best`` callback)."""
    fields: dict[str, Any] = {}
    for key, value in sorted(trainer.callback_metrics.items()):
        if key.startswith("val/") and getattr(value, "numel", lambda: 1)() == 1:
            fields[key] = round(float(value), 4)
    for cb in trainer.callbacks:
        if hasattr(cb, "summary_fields"):
            fields.update(cb.summary_fields())
    return fields
