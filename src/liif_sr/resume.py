"""Exact, crash-safe resume (see ``docs/resume.md``).

* :class:`RNGState`: python / numpy / torch (CPU + CUDA) RNG states in every checkpoint, as plain data, restored
  on load: a checkpoint taken at an epoch end continues with the same shuffle order and random samples.
* :class:`AtomicCheckpointIO`: temp file beside the target + fsync + ``os.replace`` (never half a file).
* :class:`ModelCheckpoint`: also refreshes ``last.ckpt`` every ``last_every_n_epochs`` epochs.
* :class:`CSVLogger`: appends to the ``metrics.csv`` of a resumed run instead of deleting it.
* :class:`FiniteLossGuard`: stops on a NaN / inf loss; no checkpoint with diverged weights is written.
"""

from __future__ import annotations

import csv
import logging
import os
import random
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.fabric.plugins.io.checkpoint_io import CheckpointIO
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint as _LightningModelCheckpoint
from lightning.pytorch.loggers import CSVLogger as _LightningCSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment

from liif_sr.errors import UserError

log = logging.getLogger(__name__)

RNG_KEY = "rng_states"
# tests only: seconds to sleep between writing the temp file and renaming it (to SIGKILL a process mid-write)
SLOW_WRITE_ENV = "LIIF_SR_TEST_SLOW_CKPT_WRITE"


# ---------------------------------------------------------------------------------------------- RNG states
def collect_rng_states() -> dict[str, Any]:
    """The global RNG states of this process as plain data (lists, ints, floats, uint8 tensors)."""
    version, py_state, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": [version, list(py_state), gauss],
        "numpy": [str(name), keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
        "torch.cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng_states(states: dict[str, Any]) -> None:
    """Inverse of :func:`collect_rng_states`; CUDA states are restored when the device count matches."""
    version, py_state, gauss = states["python"]
    random.setstate((version, tuple(py_state), gauss))
    name, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(states["torch"].cpu())
    cuda = states.get("torch.cuda") or []
    if cuda and torch.cuda.is_available():
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([s.cpu() for s in cuda])
        else:
            log.warning(
                "checkpoint has CUDA RNG states of %d devices, this process sees %d: not restored",
                len(cuda),
                torch.cuda.device_count(),
            )


class RNGState(L.Callback):
    """Save the global RNG states of every rank in each checkpoint (``checkpoint["rng_states"]``); restore them.

    Restoring happens in ``on_load_checkpoint``, i.e. before the first training DataLoader iterator is created
    (the sanity check runs under ``isolate_rng``), so a checkpoint taken at an
    epoch end continues with the same shuffle order and random samples as an uninterrupted run.
    """

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        states = collect_rng_states()
        per_rank: list[Any] = [states]
        if trainer.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
            per_rank = [None] * trainer.world_size  # dump_checkpoint runs on every rank: a collective is safe
            torch.distributed.all_gather_object(per_rank, states)
        checkpoint[RNG_KEY] = {"per_rank": per_rank}

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        saved = checkpoint.get(RNG_KEY)
        if not saved:
            log.warning(
                "checkpoint has no RNG states (written without the RNGState callback): "
                "the resumed run will not repeat the random samples of an uninterrupted one"
            )
            return
        per_rank = saved["per_rank"]
        rank = trainer.global_rank
        if len(per_rank) != trainer.world_size:
            log.warning(
                "checkpoint has RNG states of %d ranks, this run has %d: every rank gets rank 0's states",
                len(per_rank),
                trainer.world_size,
            )
            rank = 0
        restore_rng_states(per_rank[rank])


# ------------------------------------------------------------------------------------ atomic checkpoints
def _is_local(path: Any) -> bool:
    return "://" not in str(path) or str(path).startswith("file://")


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` into ``.<name>.<pid>.tmp`` beside the target, ``fsync``, ``os.replace``, ``fsync`` the dir.

    Lightning 2.6's ``TorchCheckpointIO`` (``cloud_io._atomic_save``) serialises into memory and then uses an
    fsspec transaction, which for local paths writes a ``tempfile.mkstemp()`` file in the *system* temp dir
    and ``shutil.move``-s it: a copy + delete (not atomic) whenever /tmp is another filesystem, no fsync, and a
    stray temp file in /tmp after a kill. Remote (fsspec URL) paths still go through Lightning's code.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} does not support storage_options")
        if not _is_local(path):
            return super().save_checkpoint(checkpoint, path)
        path = Path(str(path).removeprefix("file://"))
        path.parent.mkdir(parents=True, exist_ok=True)
        for stale in path.parent.glob(f".{path.name}.*.tmp"):  # left by a process killed mid-write
            stale.unlink(missing_ok=True)
        tmp = path.parent / f".{path.name}.{os.getpid()}.tmp"
        try:
            with open(tmp, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            delay = float(os.environ.get(SLOW_WRITE_ENV) or 0)
            if delay > 0:
                time.sleep(delay)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. Windows: directories cannot be opened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def trainer_plugins(trainer_cfg: Any) -> list[Any]:
    """``trainer.plugins`` of the config (instantiated) plus :class:`AtomicCheckpointIO` unless one is a CheckpointIO."""
    from hydra.utils import instantiate

    raw = trainer_cfg.get("plugins") if trainer_cfg is not None else None
    if raw is None:
        plugins: list[Any] = []
    else:
        made = instantiate(raw, _convert_="all")
        plugins = list(made) if isinstance(made, list | tuple) else [made]
    if not any(isinstance(p, CheckpointIO) for p in plugins):
        plugins.append(AtomicCheckpointIO())
    return plugins


class ModelCheckpoint(_LightningModelCheckpoint):
    """Lightning's ``ModelCheckpoint`` that also writes ``last.ckpt`` every ``last_every_n_epochs`` epochs.

    Lightning writes ``last.ckpt`` only when a numbered checkpoint is written (``every_n_epochs``, 100 in the
    paper configs), so a killed run could lose up to 100 epochs. ``last_every_n_epochs=0`` keeps Lightning's
    behaviour. The callback state is stored under Lightning's ``ModelCheckpoint{...}`` key (old checkpoints load).
    """

    def __init__(self, *args: Any, last_every_n_epochs: int = 1, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.last_every_n_epochs = int(last_every_n_epochs)

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

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._save_last_now(trainer)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._save_last_now(trainer)


class _AppendingCSVWriter(ExperimentWriter):
    def _check_log_dir_exists(self) -> None:  # Lightning deletes an existing metrics.csv here
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as f:
                self.metrics_keys = list(csv.DictReader(f).fieldnames or [])


class CSVLogger(_LightningCSVLogger):
    """Lightning's ``CSVLogger`` that appends to an existing ``metrics.csv`` (``resume=<run dir>``).

    Lightning's writer deletes the file of the run being resumed. Rows of steps logged after the checkpoint and
    before a kill appear twice; the later rows are the resumed run's.
    """

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingCSVWriter(log_dir=self.log_dir)
        return self._experiment


# ------------------------------------------------------------------------------------ non-finite loss guard
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
        if getattr(cb, "dirpath", None) and _is_local(cb.dirpath):
            paths.update(Path(cb.dirpath).glob("*.ckpt"))
    if trainer.ckpt_path:
        paths.add(Path(trainer.ckpt_path))
    files = [p for p in paths if p.is_file()]
    return str(max(files, key=lambda p: p.stat().st_mtime)) if files else "none"
