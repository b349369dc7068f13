"""LightningDataModule producing the paper's random-scale samples and fixed-scale validation pairs."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from liif_sr.data.sampling import fixed_scale_pair, random_scale_sample
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
    """``repeat`` passes over ``images``, each item a :func:`random_scale_sample`."""

    def __init__(self, images: HRImages, repeat: int = 1, **sample_kwargs) -> None:
        self.images, self.repeat, self.kwargs = images, repeat, sample_kwargs

    def __len__(self) -> int:
        return len(self.images) * self.repeat

    def __getitem__(self, idx: int) -> dict[str, Tensor]:
        # the global torch RNG: seeded by seed_everything in the main process, per worker by PyTorch
        return random_scale_sample(self.images[idx % len(self.images)], **self.kwargs)


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


class LIIFDataModule(L.LightningDataModule):
    """Random-scale training data and full-image validation at fixed scales.

    Args:
        train_sources / val_sources: folders, files or ``skimage:<name>`` (see :mod:`liif_sr.data.sources`).
        inp_size, scale_min, scale_max, sample_q, augment, downsampler: see :func:`random_scale_sample`.
        repeat: passes over the training images per epoch (20 for DIV2K in the paper).
        batch_size: **global** batch size; divided by the number of devices under DDP.
        val_scales: scales of the validation pairs; val_first_k: use only the first k validation images.
        val_downsampler: how validation LR is generated.
        cache: keep decoded uint8 images in memory.
        skip_bad_files: skip unreadable / too-small training images with a warning instead of failing.
        dataset_name: a downloadable dataset (``div2k``): a missing folder then names the download command.
    """

    def __init__(
        self,
        train_sources: Sequence[str] = (),
        val_sources: Sequence[str] = (),
        inp_size: int = 48,
        scale_min: float = 1.0,
        scale_max: float = 4.0,
        sample_q: int | None = 2304,
        augment: bool = True,
        downsampler: str = "pil",
        repeat: int = 1,
        batch_size: int = 16,
        num_workers: int = 0,
        val_scales: Sequence[float] = (2, 3, 4),
        val_downsampler: str = "pil",
        val_first_k: int | None = None,
        cache: bool = True,
        skip_bad_files: bool = False,
        first_k: int | None = None,
        pin_memory: bool = False,
        dataset_name: str | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(logger=False)
        self.train_set: RandomScaleDataset | None = None
        self.val_set: FixedScaleDataset | None = None
        self.batch_size_per_device = batch_size

    def setup(self, stage: str | None = None) -> None:
        hp = self.hparams
        world = self.trainer.world_size if self.trainer is not None else 1
        if hp.batch_size % world:
            raise ValueError(f"data.batch_size={hp.batch_size} (global) is not divisible by {world} devices")
        self.batch_size_per_device = hp.batch_size // world
        if hp.dataset_name:
            from liif_sr.download import require_dataset

            for src in [*hp.train_sources, *hp.val_sources]:
                require_dataset(Path(src), hp.dataset_name)
        if self.train_set is None and stage in (None, "fit") and hp.train_sources:
            items = check_sources(
                expand_sources(hp.train_sources, hp.first_k), hp.inp_size, hp.skip_bad_files
            )
            log.info("training on %d images (x%d repeat)", len(items), hp.repeat)
            self.train_set = RandomScaleDataset(
                HRImages(items, cache=hp.cache),
                repeat=hp.repeat,
                inp_size=hp.inp_size,
                scale_min=hp.scale_min,
                scale_max=hp.scale_max,
                sample_q=hp.sample_q,
                augment=hp.augment,
                downsampler=hp.downsampler,
            )
        if self.val_set is None and stage in (None, "fit", "validate") and hp.val_sources:
            items = expand_sources(hp.val_sources, hp.val_first_k)
            self.val_set = FixedScaleDataset(
                HRImages(items, cache=hp.cache), hp.val_scales, hp.val_downsampler
            )

    def train_dataloader(self) -> DataLoader:
        if self.train_set is None:
            raise ValueError("data.train_sources is empty: nothing to train on")
        return DataLoader(
            self.train_set,
            batch_size=self.batch_size_per_device,
            shuffle=True,
            num_workers=self.hparams.num_workers,
            pin_memory=self.hparams.pin_memory,
            drop_last=True,
            persistent_workers=self.hparams.num_workers > 0,
        )

    def val_dataloader(self) -> DataLoader | list:
        if self.val_set is None:
            return []
        return DataLoader(self.val_set, batch_size=1, shuffle=False, num_workers=0)
