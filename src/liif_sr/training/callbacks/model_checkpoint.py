"""Lightning's ``ModelCheckpoint`` that also refreshes ``last.ckpt`` every ``last_every_n_epochs`` epochs, and
keeps writing ``last.ckpt`` in place when the run folder was moved or copied. Before any checkpoint is written,
the loggers' open rows are committed (``commit()``, the W&B logger): a checkpoint on disk implies the logged
history up to its step is on disk too, so a SIGKILL between the two cannot leave a gap in the W&B history."""

from __future__ import annotations

import logging
import os
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint as _LightningModelCheckpoint

log = logging.getLogger(__name__)


class ModelCheckpoint(_LightningModelCheckpoint):
    """Lightning's ``ModelCheckpoint`` that also writes ``last.ckpt`` every ``last_every_n_epochs`` epochs.

    Lightning writes ``last.ckpt`` only when a numbered checkpoint is written (``every_n_epochs``, 100 in the
    paper configs), so a killed run could lose up to 100 epochs. ``last_every_n_epochs=0`` keeps Lightning's
    behaviour. The callback state is stored under Lightning's ``ModelCheckpoint{...}`` key (old checkpoints load).
    """

    def __init__(self, *args: Any, last_every_n_epochs: int = 1, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.last_every_n_epochs = int(last_every_n_epochs)
        self.interrupt_saved = False  # last.ckpt written at a Ctrl-C (liif_sr.training.interrupt)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """A run folder moved or copied since the checkpoint: the recorded paths are moved along.

        Lightning keeps the paths only when ``dirpath`` is unchanged; otherwise ``last_model_path`` is
        forgotten and the next write goes to ``last-v1.ckpt`` beside the stale ``last.ckpt``."""
        old = state_dict.get("dirpath")
        if old and self.dirpath and os.path.normpath(old) != os.path.normpath(self.dirpath):
            state_dict = dict(state_dict, dirpath=self.dirpath)
            for key in ("best_model_path", "kth_best_model_path", "last_model_path"):
                state_dict[key] = self._moved(state_dict.get(key), old)
            if isinstance(state_dict.get("best_k_models"), dict):
                state_dict["best_k_models"] = {
                    self._moved(k, old): v for k, v in state_dict["best_k_models"].items()
                }
        super().load_state_dict(state_dict)

    def _moved(self, path: Any, old_dir: str) -> Any:
        if not path or not self.dirpath:
            return path
        rel = os.path.relpath(str(path), old_dir)
        return path if rel.startswith("..") else os.path.join(self.dirpath, rel)

    @property
    def state_key(self) -> str:
        return super().state_key.replace(type(self).__qualname__, "ModelCheckpoint", 1)

    def _save_last_now(self, trainer: L.Trainer) -> None:
        n = self.last_every_n_epochs
        if (
            self.save_last
            and n > 0
            and (trainer.current_epoch + 1) % n == 0
            and self._last_global_step_saved != trainer.global_step
            and not self._should_skip_saving_checkpoint(trainer)
        ):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        """Called while a checkpoint is assembled, before its file is written (any writer)."""
        for logger in trainer.loggers:
            commit = getattr(logger, "commit", None)
            if callable(commit):
                commit()
        super().on_save_checkpoint(trainer, pl_module, checkpoint)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._save_last_now(trainer)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._save_last_now(trainer)

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        """Ctrl-C: write ``last.ckpt`` at the interrupted step (one device only: under DDP the other ranks
        may be gone, and a save is a collective), so that ``resume=<run dir>`` loses nothing."""
        if not isinstance(exception, KeyboardInterrupt) or not self.save_last or trainer.world_size != 1:
            return
        if self._last_global_step_saved == trainer.global_step:  # last.ckpt already holds this step
            self.interrupt_saved = trainer.global_step > 0
            return
        try:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
        except Exception as exc:  # noqa: BLE001 - the interrupt must still end the run
            log.warning("could not write last.ckpt after the interrupt: %s", exc)
            return
        self.interrupt_saved = True
