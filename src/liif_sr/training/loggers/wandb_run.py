"""W&B run identity: a continued training continues the same W&B run; a sweep's runs share one group.

``WandbLogger`` passes ``resume="allow"`` with ``id=None`` by default, so a resumed training would start a
*new* W&B run. Instead, every run directory records its run id in ``<run dir>/wandb_id.txt`` (written on
global rank 0 only) and :func:`prepare_wandb` reuses it when training continues:

* ``resume=<run dir>`` (same directory) → the id of that directory;
* ``ckpt_path=<run dir>/checkpoints/x.ckpt`` → the id of the checkpoint's run directory;
* ``logger.wandb.id=<id>`` → that id, as given.

Ids are drawn from the OS entropy source, never from the seeded global RNGs (two runs with the same
``seed`` must not share a W&B run).
"""

from __future__ import annotations

import logging
import secrets
import string
from pathlib import Path

from omegaconf import DictConfig, open_dict

log = logging.getLogger(__name__)

ID_FILE = "wandb_id.txt"
_ALPHABET = string.ascii_lowercase + string.digits


def new_run_id(length: int = 8) -> str:
    """A fresh W&B-style run id (8 lowercase letters/digits), independent of any seed."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def read_run_id(run_dir: str | Path | None) -> str | None:
    """The id recorded in ``<run_dir>/wandb_id.txt``, or None."""
    if not run_dir:
        return None
    path = Path(run_dir) / ID_FILE
    if not path.is_file():
        return None
    return path.read_text().strip() or None


def write_run_id(run_dir: str | Path, run_id: str) -> None:
    """Record ``run_id`` in ``<run_dir>/wandb_id.txt`` (global rank 0 only; other ranks do nothing)."""
    from lightning.pytorch.utilities import rank_zero_only

    @rank_zero_only
    def write() -> None:
        path = Path(run_dir) / ID_FILE
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
    ckpt_run_dir = Path(ckpt_path).resolve().parent.parent if ckpt_path else None
    run_id = wb.get("id") or read_run_id(out_dir) or read_run_id(ckpt_run_dir)
    if run_id:
        log.info("continuing W&B run %s", run_id)
    else:
        run_id = new_run_id()
    with open_dict(wb):
        wb.id = run_id
        if wb.get("resume") is None:
            wb.resume = "allow"
        if wb.get("group") is None:
            wb.group = _sweep_group()
        if wb.get("name") is None:
            wb.name = name if name is not None else _job_name()
    write_run_id(out_dir, run_id)
    return run_id
