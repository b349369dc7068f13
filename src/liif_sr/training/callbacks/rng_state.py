"""Exact resume, part 1: the global RNG states in every checkpoint (``docs/resume.md``).

:class:`RNGState` saves python / numpy / torch (CPU + CUDA) RNG states as plain data and restores them on
load: a checkpoint taken at an epoch end continues with the same shuffle order and random samples.
"""

from __future__ import annotations

import logging
import random
from typing import Any

import lightning as L
import numpy as np
import torch

log = logging.getLogger(__name__)

RNG_KEY = "rng_states"


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
