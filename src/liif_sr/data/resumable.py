"""Training data that resumes exactly in the middle of an epoch (``docs/resume.md``, "Exactness").

Every random draw of the training data is a pure function of the data seed, the epoch and the sample's
position in that epoch, never of what ran before in the process:

* :class:`EpochSampler` — each epoch's order is torch's ``DistributedSampler`` permutation (seeded with
  ``seed + epoch``; under DDP each rank takes every ``world``-th item of that one padded permutation) and it
  yields :class:`SampleKey` ``(epoch, position, index)``: the key travels to the ``Dataset`` (also into
  DataLoader worker processes), which draws that sample's scale, crop, flips and query pixels from
  :func:`sample_generator` ``(seed, epoch, position)``.
* :class:`ResumableLoader` — a ``DataLoader`` with Lightning's stateful-loader interface (``state_dict`` /
  ``load_state_dict``, saved in every checkpoint under ``loops.fit_loop.state_dict.combined_loader``): the
  epoch, the batches of it already trained and the seed. A checkpoint written mid-epoch (SLURM requeue,
  Ctrl-C, ``every_n_train_steps``, ``max_steps``) continues with the next batch of the same epoch, so the
  resumed run sees exactly the batches an uninterrupted run sees.

Same distribution as the global-RNG sampling before: a uniform permutation per epoch; per sample
``s ~ U(scale_min, scale_max)``, a uniform crop, the flips and ``sample_q`` query pixels
(:func:`liif_sr.data.sampling.random_scale_sample`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sized
from typing import Any, NamedTuple

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler


class SampleKey(NamedTuple):
    """One training sample: the epoch, its position in the epoch's (padded) order, the dataset index."""

    epoch: int
    position: int
    index: int


def sample_generator(seed: int, epoch: int, position: int) -> torch.Generator:
    """The generator of one sample's random draws: a pure function of ``(seed, epoch, position)``."""
    words = np.random.SeedSequence([seed, epoch, position]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(words[0]) << 32 | int(words[1]))


class EpochSampler(DistributedSampler):
    """``DistributedSampler``'s per-epoch order (one rank: ``num_replicas=1``), yielding :class:`SampleKey`;
    ``start`` items of the epoch are skipped (a resumed epoch). Lightning keeps a ``DistributedSampler`` as
    it is (no re-instantiation) and calls ``set_epoch`` at every epoch start."""

    def __init__(self, data: Sized, num_replicas: int = 1, rank: int = 0, seed: int = 0) -> None:
        super().__init__(data, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)  # type: ignore[arg-type]
        self.start = 0

    def __iter__(self) -> Iterator[SampleKey]:  # type: ignore[override]
        local = list(super().__iter__())
        epoch, start, self.start = self.epoch, self.start, 0
        for i in range(start, len(local)):
            yield SampleKey(epoch, self.rank + i * self.num_replicas, local[i])


class ResumableLoader(DataLoader):
    """A training ``DataLoader`` over an :class:`EpochSampler` whose place in the epoch is checkpointed.

    ``state_dict()`` = ``{"epoch", "batches", "seed"}`` (``batches``: batches of ``epoch`` handed to the
    training loop); ``load_state_dict`` makes the next iterator of that epoch skip those batches.
    """

    sampler: EpochSampler

    def __init__(self, dataset: Any, *, batch_size: int, sampler: EpochSampler, **kwargs: Any) -> None:
        super().__init__(dataset, batch_size=batch_size, sampler=sampler, drop_last=True, **kwargs)
        self.batches_done = 0
        self._resume: tuple[int, int] | None = None

    def set_seed(self, seed: int) -> None:
        """The data seed of the order (sampler) and of the samples (dataset)."""
        self.sampler.seed = int(seed)
        if hasattr(self.dataset, "seed"):
            self.dataset.seed = int(seed)

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        # a generator: the body runs at the first batch, after Lightning's set_epoch
        skip = 0
        if self._resume is not None and self._resume[0] == self.sampler.epoch:
            skip = self._resume[1]
        self._resume = None
        self.sampler.start = skip * int(self.batch_size or 1)
        self.batches_done = skip
        for batch in super().__iter__():
            self.batches_done += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        return {
            "epoch": int(self.sampler.epoch),
            "batches": self.batches_done,
            "seed": int(self.sampler.seed),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        epoch, batches = int(state["epoch"]), int(state["batches"])
        if batches >= len(self):  # saved at the epoch's end: the next epoch starts from its first batch
            epoch, batches = epoch + 1, 0
        self.set_seed(int(state["seed"]))
        self.sampler.set_epoch(epoch)  # an iterator made before Lightning's set_epoch (workers) is right too
        self._resume = (epoch, batches)
