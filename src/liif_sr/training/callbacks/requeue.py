"""SLURM pre-emption / time-out: checkpoint at a step boundary, then requeue (``docs/resume.md``, "SLURM").

Two senders of SLURM's warning signal, each with its own handler in the training process:

* Lightning's ``SLURMEnvironment`` auto-requeue (an ``sbatch`` script with ``#SBATCH --signal=USR1@90``):
  on SIGUSR1 its handler writes ``<run>/hpc_ckpt_<n>.ckpt`` and calls ``scontrol requeue <job id>``.
* submitit (``hydra/launcher=slurm``): SIGUSR2 ``signal_delay_s`` before the time limit or at pre-emption;
  its handler resubmits the same job (the launcher's ``checkpoint()``; at a time-out only while
  ``max_num_timeout`` allows), calls ``scontrol requeue`` and exits. It saves no training state.

Both handlers run wherever the main thread is when the signal comes, e.g. after an optimizer step that
the loop has not yet counted: a checkpoint taken there does not continue exactly. :class:`RequeueOnSignal`
replaces each handler present at the start of training with a flag; at the end of the next training step
(the same step on every DDP rank: rank 0's flag is broadcast) it writes ``hpc_ckpt_<n>.ckpt`` and runs the
original handler (the requeue); once that step's metrics are logged it ends the job with
:class:`JobRequeued` (loggers flushed). The requeued job (the same
command, in the same run folder) is restored from that checkpoint by Lightning (the newest
``hpc_ckpt_<n>.ckpt`` of ``trainer.default_root_dir``, when SLURM is detected and no ``ckpt_path`` is given),
mid-epoch included (:mod:`liif_sr.data.resumable`). Outside SLURM no handler is present: nothing changes.
"""

from __future__ import annotations

import logging
import re
import signal
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch

log = logging.getLogger(__name__)


class JobRequeued(SystemExit):
    """The job saved its state at a step boundary and was requeued: the process ends here (not a failure)."""


def next_hpc_path(folder: str | Path) -> Path:
    """``<folder>/hpc_ckpt_<n+1>.ckpt`` after the newest ``hpc_ckpt_<n>.ckpt`` (the name Lightning restores)."""
    names = (re.fullmatch(r"hpc_ckpt_(\d+)\.ckpt", p.name) for p in Path(folder).glob("hpc_ckpt_*.ckpt"))
    return Path(folder) / f"hpc_ckpt_{max((int(m.group(1)) for m in names if m), default=0) + 1}.ckpt"


def _saves_itself(handler: Any) -> bool:
    """Lightning's auto-requeue handler writes the hpc checkpoint itself (submitit's does not)."""
    return type(handler).__module__.startswith("lightning.")


def _signal(value: str | int) -> signal.Signals:
    try:
        return signal.Signals[value] if isinstance(value, str) else signal.Signals(value)
    except (KeyError, ValueError):
        raise ValueError(f"signals: no signal {value!r} (e.g. SIGUSR1, SIGTERM)") from None


class RequeueOnSignal(L.Callback):
    """Defer SLURM's requeue signals (``signals``, default SIGUSR1 and SIGUSR2) to the end of a training step,
    write the hpc checkpoint there, requeue and stop (:class:`JobRequeued`). Only signals that already have
    a handler when training starts (Lightning's, submitit's) are taken over."""

    def __init__(self, signals: Sequence[str] = ("SIGUSR1", "SIGUSR2")) -> None:
        self.signals = [_signal(s) for s in signals]
        self._originals: dict[int, Callable[..., Any]] = {}
        self._pending = 0
        self.saved: Path | None = None  # the hpc checkpoint written
        self.requeued = ""  # the signal's name once the job checkpointed and asked for its requeue
        self._exit_code: Any = 0
        self._where = ""

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in self.signals:
            handler = signal.getsignal(sig)
            if callable(handler) and handler != self._defer:
                self._originals[int(sig)] = handler
                signal.signal(sig, self._defer)
        if self._originals:
            names = ", ".join(signal.Signals(s).name for s in self._originals)
            log.info("SLURM requeue on %s: checkpoint at the end of the running step, then requeue", names)

    def _defer(self, signum: int, frame: Any) -> None:
        self._pending = self._pending or int(signum)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        if not self._originals or self.requeued:
            return
        signum = self._pending
        if trainer.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
            flag = torch.tensor([signum], device=trainer.strategy.root_device)
            torch.distributed.broadcast(flag, src=0)  # every rank acts at the same step
            signum = int(flag.item())
        if signum:
            self._checkpoint_and_requeue(trainer, signum)

    def _checkpoint_and_requeue(self, trainer: L.Trainer, signum: int) -> None:
        """At the end of a step (the loop's state is consistent): hpc checkpoint, then the requeue."""
        handler = self._originals.get(signum) or self._originals[next(iter(self._originals))]
        self.saved = next_hpc_path(trainer.default_root_dir)
        if not _saves_itself(handler):
            trainer.save_checkpoint(self.saved)
        try:
            handler(signum, None)  # Lightning: hpc checkpoint + scontrol requeue; submitit: requeue + exit
        except SystemExit as exc:
            self._exit_code = exc.code
        self.requeued = signal.Signals(signum).name
        self._where = f"epoch {trainer.current_epoch}, step {trainer.global_step}"

    # the step's own metrics are logged after on_train_batch_end (and a validation due then runs):
    # the job stops at the next of these hooks, with the logged history at the checkpoint's step
    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        self._stop_if_requeued(trainer)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._stop_if_requeued(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._stop_if_requeued(trainer)

    def _stop_if_requeued(self, trainer: L.Trainer) -> None:
        if not self.requeued:
            return
        for logger in trainer.loggers:  # W&B: the open row (this step's) written before the process ends
            commit = getattr(logger, "commit", None)
            if callable(commit):
                commit()
            logger.save()
        if trainer.is_global_zero:
            log.warning(
                "%s at %s: %s written; the requeued job continues from it",
                self.requeued,
                self._where,
                self.saved,
            )
        raise JobRequeued(self._exit_code)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        for sig, handler in self._originals.items():
            if signal.getsignal(sig) == self._defer:
                signal.signal(sig, handler)
        self._originals = {}
