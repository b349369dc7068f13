"""Measured training speed: ``train/ms_per_step`` to every logger and the W&B summary, and ``<run>/summary.json``.

``summary.json`` is what a comparison reads without W&B (``liif-sr-eval checkpoint=<multirun folder>`` puts
its params and ms/step next to the PSNR table)::

    {"name": "edsr_baseline_small-lte", "encoder": "edsr_baseline_small", "head": "lte",
     "params": 123456, "ms_per_step": 41.2, "steps_timed": 120, "val/psnr": 27.1, ...}
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_only

SUMMARY_FILE = "summary.json"
METRIC = "train/ms_per_step"


def run_identity(net: Any) -> dict[str, str]:
    """``{"name", "encoder", "head"}`` of a run: the Hydra choices ``model/encoder`` / ``model/head``
    (``edsr_baseline_small``, ``lte``) inside a Hydra job, else the registry names of ``net``."""
    from hydra.core.hydra_config import HydraConfig

    choices: dict[str, Any] = HydraConfig.get().runtime.choices if HydraConfig.initialized() else {}
    encoder = choices.get("model/encoder") or (net.encoder.name if net is not None else None)
    head = choices.get("model/head") or (net.head.name if net is not None else None)
    name = f"{encoder}-{head}" if encoder and head else None
    return {"name": name, "encoder": encoder, "head": head}


class StepTime(L.Callback):
    """Wall time of each training step (forward, loss, backward, optimizer step; data loading excluded).

    The first ``warmup_steps`` steps of the fit are not timed (allocator, cuDNN autotuning, compile); with
    fewer steps than that, only the very first one is dropped. On CUDA the device is synchronised around
    each timed step. The median over the timed steps is logged as ``train/ms_per_step`` to every logger at
    each epoch end, written to the W&B run summary, and to ``<out_dir>/summary.json`` at the end of
    training (with the run's name, encoder, head, parameter count and last validation metrics).
    """

    def __init__(self, warmup_steps: int = 5, out_dir: str | None = None) -> None:
        self.warmup_steps = int(warmup_steps)
        self.out_dir = out_dir
        self._times: list[float] = []
        self._start: float | None = None
        self._seen = 0

    def _sync(self, pl_module: L.LightningModule) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        self._sync(pl_module)
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        if self._start is None:
            return
        self._sync(pl_module)
        self._times.append(time.perf_counter() - self._start)
        self._start = None
        self._seen += 1

    def ms_per_step(self) -> float | None:
        """Median wall time of the timed steps in ms, or None before the first step."""
        if not self._times:
            return None
        skip = min(self.warmup_steps, len(self._times) - 1)
        return 1000.0 * statistics.median(self._times[skip:])

    def timed_steps(self) -> int:
        return max(0, len(self._times) - min(self.warmup_steps, max(len(self._times) - 1, 0)))

    def _publish(self, trainer: L.Trainer) -> float | None:
        ms = self.ms_per_step()
        if ms is None:
            return None
        for lg in trainer.loggers:
            lg.log_metrics({METRIC: ms}, step=trainer.global_step)
            if type(lg).__name__ == "WandbLogger":  # the run's summary keeps it next to the config
                lg.experiment.summary[METRIC] = ms
        return ms

    @rank_zero_only
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._publish(trainer)

    @rank_zero_only
    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        ms = self._publish(trainer)
        if not self.out_dir:
            return
        net = getattr(pl_module, "net", None)
        summary: dict[str, Any] = run_identity(net)
        summary["params"] = sum(p.numel() for p in net.parameters()) if net is not None else None
        summary["ms_per_step"] = None if ms is None else round(ms, 3)
        summary["steps_timed"] = self.timed_steps()
        summary["global_step"] = int(trainer.global_step)
        summary["device"] = str(pl_module.device)
        for key, value in sorted(trainer.callback_metrics.items()):
            if key.startswith("val/") and getattr(value, "numel", lambda: 1)() == 1:
                summary[key] = round(float(value), 4)
        path = Path(self.out_dir) / SUMMARY_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(summary, indent=2) + "\n")
        tmp.replace(path)
