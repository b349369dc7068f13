"""LightningDataModule producing the paper's random-scale samples and fixed-scale validation pairs."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from liif_sr.data.gpu_sampler import DeviceSampler
from liif_sr.data.options import DataOptions, check_batch_split
from liif_sr.data.resumable import EpochSampler, ResumableLoader, SampleKey, sample_generator
from liif_sr.data.sampling import fixed_scale_pair, min_image_side, random_scale_sample
from liif_sr.data.sources import check_sources, expand_sources, image_name, load_source_image

log = logging.getLogger(__name__)


class HRImages(Dataset):
    """HR images as uint8 (3, H, W) tensors, cached in memory (uint8: DIV2K is ~6 GB, not ~40 GB)."""

    def __init__(self, items: Sequence[str], cache: bool = True) -> None:
        self.items = list(items)
        self.cache: list[Tensor] | None = [load_source_image(i) for i in self.items] if cache else None

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Tensor:
        return self.cache[i] if self.cache is not None else load_source_image(self.items[i])


class RandomScaleDataset(Dataset):
    """``repeat`` passes over ``images``, each item a :func:`random_scale_sample`.

    A :class:`~liif_sr.data.resumable.SampleKey` (what the training loader's sampler yields) draws the sample
    from ``sample_generator(seed, epoch, position)`` (exact mid-epoch resume); a plain index from the global
    torch RNG.
    """

    def __init__(self, images: HRImages, repeat: int = 1, seed: int = 0, **sample_kwargs) -> None:
        self.images, self.repeat, self.seed, self.kwargs = images, repeat, seed, sample_kwargs

    def __len__(self) -> int:
        return len(self.images) * self.repeat

    def __getitem__(self, key: int | SampleKey) -> dict[str, Tensor]:
        generator = None
        if isinstance(key, SampleKey):
            generator = sample_generator(self.seed, key.epoch, key.position)
            key = key.index
        return random_scale_sample(self.images[key % len(self.images)], generator=generator, **self.kwargs)


class ImageIndexDataset(Dataset):
    """``data.sampler=device``: ``repeat`` passes over the image indices; the batch is built on the device."""

    def __init__(self, n_images: int, repeat: int = 1) -> None:
        self.n_images, self.repeat = n_images, repeat

    def __len__(self) -> int:
        return self.n_images * self.repeat

    def __getitem__(self, key: int | SampleKey) -> dict[str, int]:
        return {"index": (key.index if isinstance(key, SampleKey) else key) % self.n_images}


class FixedScaleDataset(Dataset):
    """Every (image, scale) pair: ``{"lr", "hr"}`` float [0, 1], ``"scale"``, ``"name"``."""

    def __init__(self, images: HRImages, scales: Sequence[float], downsampler: str = "pil") -> None:
        self.images, self.scales, self.downsampler = images, [float(s) for s in scales], downsampler

    def __len__(self) -> int:
        return len(self.images) * len(self.scales)

    def __getitem__(self, idx: int) -> dict:
        img_i, scale_i = divmod(idx, len(self.scales))
        scale = self.scales[scale_i]
        lr, hr = fixed_scale_pair(self.images[img_i], scale, self.downsampler)
        return {
            "lr": lr.float() / 255,
            "hr": hr.float() / 255,
            "scale": torch.tensor(scale),
            "name": image_name(self.images.items[img_i]),
        }


def decorrelate_ranks(rank: int) -> None:
    """Give each DDP rank its own stream of random scales, crops, flips and query pixels.

    ``seed_everything(seed)`` seeds every rank identically, and with ``num_workers=0`` the samples are drawn
    from the process's global torch RNG, so without this all ranks would draw the same sequence (for different
    images: the DistributedSampler that Lightning adds already splits the images between ranks). DataLoader
    workers are distinct per rank anyway (Lightning's ``worker_init_fn`` mixes in the global rank).
    ``PL_GLOBAL_SEED`` is left alone: the DistributedSampler's shuffle must use the same seed on every rank.
    """
    import os

    seed = int(os.environ.get("PL_GLOBAL_SEED", torch.initial_seed() % 2**31))
    torch.manual_seed(seed + 1_000_003 * rank)


class RandomScaleDataModule(L.LightningDataModule):
    """Random-scale training data and full-image validation at fixed scales.

    Takes one :class:`~liif_sr.data.options.DataOptions` (``RandomScaleDataModule(options)``), or its fields as
    keywords (``RandomScaleDataModule(train_sources=[...], batch_size=8)``, as ``instantiate(cfg.data)`` passes them).

    Options:
        train_sources / val_sources: folders, files or ``skimage:<name>`` (see :mod:`liif_sr.data.sources`).
        inp_size, scale_min, scale_max, sample_q, augment, downsampler: see :func:`random_scale_sample`.
        repeat: passes over the training images per epoch (20 for DIV2K in the paper).
        batch_size: **global** batch size; divided by the number of devices under DDP (each rank draws
            ``batch_size / world_size`` samples per step, from its own share of the images).
        val_scales: scales of the validation pairs; val_first_k: use only the first k validation images.
        val_downsampler: how validation LR is generated.
        val_protocol: PSNR protocol of the validation images, ``div2k`` (RGB, shave s+6) or ``benchmark``
            (MATLAB Y, shave s); ``model.val_protocol`` follows it (``conf/model/liif.yaml``).
        cache: keep decoded uint8 images in memory.
        skip_bad_files: skip unreadable / too-small training images with a warning instead of failing.
        dataset_name: a downloadable dataset (``div2k``): a missing folder then names the download command.
        sampler: ``cpu`` (DataLoader workers run :func:`random_scale_sample`, the reference) or ``device``
            (the loader yields image indices only and :class:`~liif_sr.data.gpu_sampler.DeviceSampler` builds
            each batch on the training device in :meth:`on_after_batch_transfer`, from uint8 images kept
            there; PIL-exact LR, same sample distribution; ``docs/training_speed.md``).
    """

    def __init__(self, options: DataOptions | None = None, **values: Any) -> None:
        super().__init__()
        if options is not None and values:
            options = replace(options, **values)
        self.options = options if options is not None else DataOptions(**values)
        self.save_hyperparameters(asdict(self.options), logger=False)
        self.device_sampler: DeviceSampler | None = None  # sampler=device: built at the first batch
        self._sampler_seed = 0
        self._sampler_rng: Tensor | None = None  # generator state from a checkpoint, applied at the build
        self.data_seed: int | None = None  # the training data's order and samples (data/resumable.py)
        self.train_set: RandomScaleDataset | None = None
        self.val_set: FixedScaleDataset | None = None
        self.batch_size_per_device = self.options.batch_size

    def per_device_batch(self, world_size: int) -> int:
        """The per-device share of the global ``data.batch_size`` (refused when it does not divide)."""
        return check_batch_split(self.options.batch_size, world_size)

    def setup(self, stage: str | None = None) -> None:
        hp = self.options
        world = self.trainer.world_size if self.trainer is not None else 1
        self.batch_size_per_device = self.per_device_batch(world)
        if self.data_seed is None and stage in (None, "fit"):
            self.data_seed = self.draw_data_seed()
        if world > 1 and stage in (None, "fit"):
            decorrelate_ranks(self.trainer.global_rank)
        if hp.dataset_name:
            from liif_sr.data.download.manifest import require_dataset

            for src in [*hp.train_sources, *hp.val_sources]:
                require_dataset(Path(src), hp.dataset_name)
        if self.train_set is None and stage in (None, "fit") and hp.train_sources:
            items = check_sources(
                expand_sources(hp.train_sources, hp.first_k),
                min_image_side(hp.inp_size, hp.sample_q),
                hp.skip_bad_files,
            )
            log.info("training on %d images (x%d repeat)", len(items), hp.repeat)
            self.train_set = RandomScaleDataset(
                HRImages(items, cache=hp.cache), repeat=hp.repeat, **self.sample_kwargs()
            )
            if hp.sampler == "device":
                if hp.downsampler != "pil" or hp.sample_q is None:
                    raise ValueError(
                        "data.sampler=device needs data.downsampler=pil and an integer data.sample_q"
                    )
                # the sampler's own generator: from the (seeded) global RNG, distinct per DDP rank
                rank = self.trainer.global_rank if self.trainer is not None else 0
                self._sampler_seed = int(torch.randint(0, 2**31 - 1, ())) + 1_000_003 * rank
        if self.val_set is None and stage in (None, "fit", "validate") and hp.val_sources:
            items = expand_sources(hp.val_sources, hp.val_first_k)
            self.val_set = FixedScaleDataset(
                HRImages(items, cache=hp.cache), hp.val_scales, hp.val_downsampler
            )

    def draw_data_seed(self) -> int:
        """The data seed: from the (seeded) global RNG, rank 0's under DDP (one order shared by the ranks);
        a resumed run gets its checkpoint's instead (:meth:`ResumableLoader.load_state_dict`)."""
        seed = int(torch.randint(0, 2**31 - 1, ()))
        strategy = getattr(self.trainer, "strategy", None)
        if strategy is not None and self.trainer.world_size > 1:
            seed = int(strategy.broadcast(seed, src=0))
        return seed

    def sample_kwargs(self) -> dict:
        """The random-scale sampling settings shared by the CPU and the device samplers."""
        keys = ("inp_size", "scale_min", "scale_max", "sample_q", "augment", "downsampler")
        return {k: getattr(self.options, k) for k in keys}

    def train_dataloader(self) -> DataLoader:
        """A :class:`~liif_sr.data.resumable.ResumableLoader`: exact mid-epoch resume; under DDP its
        :class:`~liif_sr.data.resumable.EpochSampler` is each rank's shard (Lightning keeps it)."""
        if self.train_set is None:
            raise ValueError("data.train_sources is empty: nothing to train on")
        trainer = self.trainer
        world, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        seed = self.data_seed if self.data_seed is not None else 0
        if self.options.sampler == "device":  # indices only: no workers needed
            warnings.filterwarnings("ignore", message=".*train_dataloader. does not have many workers.*")
            indices = ImageIndexDataset(len(self.train_set.images), self.train_set.repeat)
            return ResumableLoader(
                indices,
                batch_size=self.batch_size_per_device,
                sampler=EpochSampler(indices, world, rank, seed),
                pin_memory=self.options.pin_memory,
            )
        self.train_set.seed = seed
        return ResumableLoader(
            self.train_set,
            batch_size=self.batch_size_per_device,
            sampler=EpochSampler(self.train_set, world, rank, seed),
            num_workers=self.options.num_workers,
            pin_memory=self.options.pin_memory,
            persistent_workers=self.options.num_workers > 0,
        )

    def val_dataloader(self) -> DataLoader | list:
        if self.val_set is None:
            return []
        world = self.trainer.world_size if self.trainer is not None else 1
        sampler = None
        if world > 1 and len(self.val_set) >= world:
            # every (image, scale) item on exactly one rank: Lightning's default DistributedSampler repeats
            # items to even out the ranks, which biases the mean PSNR. Uneven batch counts are safe here:
            # validation has no backward and the LIIF networks have no buffers for DDP to broadcast.
            from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler

            sampler = UnrepeatedDistributedSampler(
                self.val_set, num_replicas=world, rank=self.trainer.global_rank, shuffle=False
            )
        return DataLoader(self.val_set, batch_size=1, shuffle=False, sampler=sampler, num_workers=0)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """``data.sampler=device``: turn a batch of image indices (already on the device) into samples."""
        if not (isinstance(batch, dict) and "index" in batch and self.train_set is not None):
            return batch
        index = batch["index"]
        if self.device_sampler is None or self.device_sampler.device != index.device:
            images = self.train_set.images
            self.device_sampler = DeviceSampler(
                [images[i] for i in range(len(images))],
                **self.sample_kwargs(),
                device=index.device,
                seed=self._sampler_seed,
            )
            if self._sampler_rng is not None:  # resumed: continue the saved random stream
                self.device_sampler.generator.set_state(self._sampler_rng)
                self._sampler_rng = None
            log.info(
                "data.sampler=device: %d images (%.2f GiB) on %s",
                len(self.device_sampler),
                self.device_sampler.nbytes / 2**30,
                index.device,
            )
        return self.device_sampler(index)

    def state_dict(self) -> dict[str, Any]:
        """``data.sampler=device``: every rank's sampler generator state, for exact resume (as ``RNGState``)."""
        if self.device_sampler is None:
            return {}
        state = self.device_sampler.generator.get_state()
        per_rank: list[Any] = [state]
        trainer = self.trainer
        if trainer is not None and trainer.world_size > 1 and torch.distributed.is_initialized():
            per_rank = [None] * trainer.world_size  # dump_checkpoint runs on every rank: a collective is safe
            torch.distributed.all_gather_object(per_rank, state)
        return {"device_sampler_rng": per_rank}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        per_rank = state_dict.get("device_sampler_rng")
        if not per_rank:
            return
        world = self.trainer.world_size if self.trainer is not None else 1
        if len(per_rank) != world:
            log.warning(
                "checkpoint has device-sampler states of %d ranks, this run has %d: fresh seeds",
                len(per_rank),
                world,
            )
            return
        state = per_rank[self.trainer.global_rank if self.trainer is not None else 0].cpu()
        if self.device_sampler is not None:
            self.device_sampler.generator.set_state(state)
        else:
            self._sampler_rng = state


def __getattr__(name: str) -> Any:  # old names (issue 19): one release with a DeprecationWarning
    from liif_sr.deprecated import renamed

    return renamed(__name__, name)
