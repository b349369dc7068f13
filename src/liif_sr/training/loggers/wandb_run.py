"""W&B run identity: a continued training continues the same W&B run; a sweep's runs share one group.

``WandbLogger`` passes ``resume="allow"`` with ``id=None`` by default, so a resumed training would start a
*new* W&B run. Instead, every run directory records its run id in ``<run dir>/wandb_id.txt`` and its group
in ``<run dir>/wandb_group.txt`` (written on global rank 0 only) and :func:`prepare_wandb` reuses them when
training continues in that directory:

* ``resume=<run dir>``, a job of ``resume=<multirun folder>`` → the id and group of that directory (a job
  resumed alone keeps its sweep's group);
* ``ckpt_path=<another run>/checkpoints/x.ckpt`` → a **new** run (the other run's W&B history already has
  those steps); ``logger.wandb.id=<id>`` → that id, as given.

:class:`WandbLogger` (``conf/logger/wandb.yaml``) is Lightning's, with the W&B ``_step`` set to the
trainer's global step (one step axis; a resumed segment continues it instead of restarting at 0) and the
run's ``.wandb`` file flushed every ``flush_interval_s`` seconds (W&B's default, 15 s, loses the history of
a short run killed with its process group: SIGKILL, a cluster's time limit).

Ids are drawn from the OS entropy source, never from the seeded global RNGs (two runs with the same
``seed`` must not share a W&B run).
"""

from __future__ import annotations

import logging
import secrets
import string
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import WandbLogger as _LightningWandbLogger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, open_dict

log = logging.getLogger(__name__)

ID_FILE = "wandb_id.txt"
GROUP_FILE = "wandb_group.txt"
_ALPHABET = string.ascii_lowercase + string.digits


def new_run_id(length: int = 8) -> str:
    """A fresh W&B-style run id (8 lowercase letters/digits), independent of any seed."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def read_run_id(run_dir: str | Path | None, name: str = ID_FILE) -> str | None:
    """The id (or with ``name=GROUP_FILE`` the group) recorded in ``<run_dir>``, or None."""
    if not run_dir:
        return None
    path = Path(run_dir) / name
    if not path.is_file():
        return None
    return path.read_text().strip() or None


def write_run_id(run_dir: str | Path, run_id: str, name: str = ID_FILE) -> None:
    """Record ``run_id`` (or a group) in ``<run_dir>/<name>`` (global rank 0 only; other ranks do nothing)."""
    from lightning.pytorch.utilities import rank_zero_only

    @rank_zero_only
    def write() -> None:
        path = Path(run_dir) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(run_id + "\n")
        tmp.replace(path)

    write()


def _sweep_group() -> str | None:
    """The sweep folder's name inside a Hydra multirun (shared by all its jobs), else None."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return None
    hc = HydraConfig.get()
    if hc.mode != RunMode.MULTIRUN:
        return None
    return Path(str(hc.sweep.dir)).name or None


def _job_name() -> str | None:
    from liif_sr.training.run_name import run_identity

    return run_identity().name


def prepare_wandb(cfg: DictConfig, ckpt_path: str | None = None, name: str | None = None) -> str | None:
    """Fix the W&B run id (and a sweep's group, the run name) in ``cfg.logger.wandb`` before it is created.

    ``name``: the run's name (:func:`liif_sr.training.run_name.run_identity`: ``<encoder>-<head>`` and a
    sweep job's swept values, e.g. ``edsr_baseline_small-liif lr=0.0005``); default: that of the running
    Hydra job. Does nothing without a ``logger.wandb`` entry. Returns the run id used.
    """
    logger_cfg = cfg.get("logger")
    wb = logger_cfg.get("wandb") if logger_cfg else None
    if not isinstance(wb, DictConfig) or "_target_" not in wb:
        return None
    out_dir = Path(cfg.paths.output_dir)
    # only a run continued in its own folder continues its W&B run (ckpt_path=<another run>/...: a new one)
    run_id = wb.get("id") or read_run_id(out_dir)
    if run_id:
        log.info("continuing W&B run %s", run_id)
    else:
        run_id = new_run_id()
    with open_dict(wb):
        wb.id = run_id
        if wb.get("resume") is None:
            wb.resume = "allow"
        if wb.get("group") is None:
            wb.group = read_run_id(out_dir, GROUP_FILE) or _sweep_group() or _parent_sweep(out_dir)
        if wb.get("name") is None:
            wb.name = name if name is not None else _job_name()
    write_run_id(out_dir, run_id)
    if wb.group:
        write_run_id(out_dir, str(wb.group), GROUP_FILE)
    return run_id


def _parent_sweep(out_dir: Path) -> str | None:
    """A job folder of a multirun resumed alone (``resume=<sweep>/<n>``): the sweep folder's name."""
    from liif_sr.training.resume import is_sweep_dir

    return out_dir.parent.name if is_sweep_dir(out_dir.parent) else None


class WandbLogger(_LightningWandbLogger):
    """Lightning's ``WandbLogger``; ``_step`` = the trainer's global step, the offline file flushed often.

    W&B keeps a step's row open in the training process until a later step is logged: a SIGKILL loses it.
    :meth:`commit` writes the open row now and waits until W&B's service has written it to the run file
    (one ``flush_interval_s``). It runs after every checkpoint (``after_save_checkpoint``), in ``finalize``
    and when a SLURM requeue stops the job, so the history always reaches the last checkpoint's step and a
    segment resumed from it (starting at the checkpoint's step) joins it without a gap or a repeated step.
    Cost: ``flush_interval_s`` per checkpoint (none when W&B is disabled). A value logged for a step below the
    open row, or for a committed row, goes into the next open row, with that row's ``trainer/global_step``
    (W&B would drop it).
    ``flush_interval_s`` is W&B's ``x_transaction_log_flush_interval`` (kept if ``settings`` set it).
    """

    def __init__(self, *args: Any, flush_interval_s: float = 1.0, **kwargs: Any) -> None:
        settings = kwargs.pop("settings", None)
        settings = dict(settings) if isinstance(settings, dict) else settings
        if settings is None or isinstance(settings, dict):
            settings = {"x_transaction_log_flush_interval": float(flush_interval_s), **(settings or {})}
        super().__init__(*args, settings=settings, **kwargs)
        self._last_step = -1
        self._committed = -1
        self._flush_interval_s = float(flush_interval_s)

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        if step is None or self._wandb_init.get("sync_tensorboard"):
            return super().log_metrics(metrics, step)
        self._last_step = max(int(step), self._last_step, self._committed + 1)
        metrics = {
            f"{self._prefix}{self.LOGGER_JOIN_CHAR}{k}" if self._prefix else k: v for k, v in metrics.items()
        }
        at = self._last_step  # the row (and its trainer/global_step) a late value joins
        self.experiment.log(dict(metrics, **{"trainer/global_step": at}), step=at)

    @rank_zero_only
    def commit(self) -> None:
        """Write the open row (the last logged step) now instead of at the next step."""
        if self._experiment is None or self._last_step <= self._committed:
            return
        self._experiment.log({}, step=self._last_step, commit=True)
        self._committed = self._last_step
        if getattr(self._experiment, "disabled", False):  # WANDB_MODE=disabled: nothing is written, no wait
            return
        # W&B's service writes its run file every flush_interval_s, also nothing more when this process is
        # SIGKILLed: the round trip (answered after the rows sent before) and one interval put the row on disk
        self._experiment.summary.keys()
        time.sleep(self._flush_interval_s)

    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        self.commit()
        super().after_save_checkpoint(checkpoint_callback)

    @rank_zero_only
    def finalize(self, status: str) -> None:  # also Lightning's SLURM handler, before its hpc checkpoint
        self.commit()
        super().finalize(status)
