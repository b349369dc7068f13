"""The step Lightning logs metrics at (one step axis for every callback's logging)."""

from __future__ import annotations

import lightning as L


def log_step(trainer: L.Trainer) -> int:
    """The step Lightning's logger connector writes ``train/*`` and ``val/*`` metrics at (also what
    Lightning's ``LearningRateMonitor`` uses): a validation at global step N logs at N - 1. Pictures and
    timings logged at this step line up with ``val/psnr`` and ``train/loss`` (W&B ``trainer/global_step``)."""
    loop = getattr(getattr(trainer, "fit_loop", None), "epoch_loop", None)
    return int(getattr(loop, "_batches_that_stepped", trainer.global_step))


def is_logging_step(trainer: L.Trainer) -> bool:
    """Whether Lightning logs the ``on_step`` metrics of the current training batch (``log_every_n_steps``)."""
    return (log_step(trainer) + 1) % max(1, int(trainer.log_every_n_steps)) == 0
