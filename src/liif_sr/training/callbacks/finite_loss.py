"""The NaN guard: stop at the first non-finite training loss; no checkpoint with diverged weights is written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch

from liif_sr.errors import UserError
from liif_sr.training.checkpoint_io import is_local


class NonFiniteLossError(UserError):
    """Training diverged (NaN / inf loss); the message names the step and the last good checkpoint."""

    exit_code = 3


class FiniteLossGuard(L.Callback):
    """Stop training at the first NaN / inf training loss; never let a checkpoint with diverged weights be written.

    The per-step ``torch.isfinite(loss)`` flags stay on the device and are read (one host-device sync) every
    ``check_every_n_steps`` steps — default: every step on CPU, ``trainer.log_every_n_steps`` on accelerators,
    where the logger syncs at that cadence anyway — and always before a checkpoint is written, at each epoch end
    and at the end of training. A non-finite loss raises :class:`NonFiniteLossError` (the CLI prints its one-line
    message, exit code 3); as it is raised from ``on_save_checkpoint`` when needed, the checkpoint being
    written is never produced and ``last.ckpt`` keeps the last good state.
    """

    def __init__(self, check_every_n_steps: int | None = None) -> None:
        self.check_every_n_steps = check_every_n_steps
        self._pending: list[tuple[int, int, torch.Tensor]] = []
        self._failure: str | None = None  # sticky: a later save (e.g. save_on_exception) is refused too

    def _every(self, trainer: L.Trainer, device: torch.device) -> int:
        if self.check_every_n_steps:
            return max(1, int(self.check_every_n_steps))
        return 1 if device.type == "cpu" else max(1, int(trainer.log_every_n_steps))

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._step = trainer.global_step

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if not isinstance(loss, torch.Tensor):  # a skipped step still counts: ranks check at the same steps
            loss = torch.zeros((), device=pl_module.device)
        self._pending.append((self._step, trainer.current_epoch, torch.isfinite(loss.detach()).all()))
        if len(self._pending) >= self._every(trainer, loss.device):
            self.check(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.check(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.check(trainer)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        self.check(trainer)

    def check(self, trainer: L.Trainer) -> None:
        """Read the pending flags (one sync); raise :class:`NonFiniteLossError` if any rank saw a bad loss."""
        if self._failure:
            raise NonFiniteLossError(self._failure)
        pending, self._pending = self._pending, []
        never = torch.iinfo(torch.int64).max
        first = never
        if pending:
            ok = torch.stack([p[2] for p in pending]).cpu()
            bad = (~ok).nonzero()
            if len(bad):
                first = pending[int(bad[0])][0]
        if trainer.world_size > 1:  # every rank stops together (the first bad step of any rank)
            t = torch.tensor(first, dtype=torch.int64, device=trainer.strategy.root_device)
            first = int(trainer.strategy.reduce(t, reduce_op="min"))
        if first == never:
            return
        epoch = next((e for s, e, _ in pending if s == first), trainer.current_epoch)
        self._failure = f"non-finite loss at step {first} (epoch {epoch}); last good checkpoint: {last_good_checkpoint(trainer)}"
        raise NonFiniteLossError(self._failure)


def last_good_checkpoint(trainer: L.Trainer) -> str:
    """The newest existing checkpoint file of this run (or the one it resumed from), ``none`` if there is none."""
    paths: set[Path] = set()
    for cb in trainer.checkpoint_callbacks:
        for p in (getattr(cb, "last_model_path", ""), getattr(cb, "best_model_path", "")):
            if p:
                paths.add(Path(p))
        if getattr(cb, "dirpath", None) and is_local(cb.dirpath):
            paths.update(Path(cb.dirpath).glob("*.ckpt"))
    if trainer.ckpt_path:
        paths.add(Path(trainer.ckpt_path))
    files = [p for p in paths if p.is_file()]
    return str(max(files, key=lambda p: p.stat().st_mtime)) if files else "none"
