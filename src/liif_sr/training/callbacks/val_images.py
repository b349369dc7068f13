"""Sample images for experiment trackers: LR | bicubic | SR (the head: LIIF, LTE, MetaSR) | HR crops of a few validation images."""

from __future__ import annotations

import logging
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import Logger

from liif_sr.training.callbacks.log_step import log_step
from liif_sr.training.callbacks.pictures import comparison_crops, side_by_side

log = logging.getLogger(__name__)


def supports_images(logger: Logger) -> bool:
    """Whether :class:`ValidationImages` can log pictures to ``logger`` (W&B ``log_image``, TensorBoard)."""
    from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger

    return isinstance(logger, WandbLogger | TensorBoardLogger)


def log_images(logger: Logger, key: str, images: list[np.ndarray], captions: list[str], step: int) -> None:
    """Log (H, W, 3) uint8 pictures under ``key``: W&B ``log_image``, TensorBoard ``add_image`` per picture."""
    from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger

    if isinstance(logger, WandbLogger):
        logger.log_image(key=key, images=images, caption=captions, step=step)
    elif isinstance(logger, TensorBoardLogger):
        for i, (img, caption) in enumerate(zip(images, captions)):
            logger.experiment.add_image(f"{key}/{i}_{caption}", img, step, dataformats="HWC")


def head_label(pl_module: L.LightningModule) -> str:
    """The SR tile's label in captions: the model's head (``LIIF``, ``LTE``, ``MetaSR``)."""
    head = getattr(getattr(pl_module, "net", None), "head", None)
    name = str(getattr(head, "name", "") or "SR")
    return {"liif": "LIIF", "lte": "LTE", "metasr": "MetaSR"}.get(name.lower(), name)


class ValidationImages(L.Callback):
    """After each validation: ``n_images`` pictures of LR | bicubic | LIIF | HR centre crops.

    Uses the first validation items at ``scale`` (default: the largest validation scale) seen by global rank
    0, and the SR the module's ``validation_step`` returned (``{"sr": ...}``; re-rendered when absent).
    Logged as ``val/samples`` to loggers that take images (W&B, TensorBoard); a no-op for the others
    (CSV), and skipped during the sanity check.

    Args:
        n_images: pictures per validation.
        scale: validation scale to show; None = the largest in ``model.val_scales``.
        crop: crop side in HR pixels.
        size: side of each tile in the logged picture (nearest-resized).
    """

    def __init__(
        self, n_images: int = 2, scale: float | None = None, crop: int = 96, size: int = 192
    ) -> None:
        self.n_images, self.scale, self.crop, self.size = int(n_images), scale, int(crop), int(size)
        self._pictures: list[np.ndarray] = []
        self._captions: list[str] = []

    def _active(self, trainer: L.Trainer) -> bool:
        return (
            trainer.is_global_zero
            and not trainer.sanity_checking
            and self.n_images > 0
            and any(supports_images(lg) for lg in trainer.loggers)
        )

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._pictures, self._captions = [], []

    @torch.no_grad()
    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if len(self._pictures) >= self.n_images or not self._active(trainer):
            return
        scale = float(batch["scale"][0])
        wanted = self.scale if self.scale is not None else max(pl_module.hparams.get("val_scales") or [scale])
        if abs(scale - float(wanted)) > 1e-6:
            return
        from liif_sr.data.resize import upsample_bicubic

        lr, hr = batch["lr"][:1], batch["hr"][:1]
        sr = outputs.get("sr") if isinstance(outputs, dict) else None
        if sr is None:
            sr = pl_module.net.upscale(lr, tuple(hr.shape[-2:]), precision="fp32")
        size = tuple(hr.shape[-2:])
        bic = upsample_bicubic(lr.float().cpu(), size).clamp(0, 1)
        crops = comparison_crops(lr[0].cpu(), bic[0], sr[0].cpu(), hr[0].cpu(), scale, self.crop)
        self._pictures.append(side_by_side(crops, self.size))
        name = batch.get("name", ["?"])[0]
        self._captions.append(f"{name} x{scale:g}: LR | bicubic | {head_label(pl_module)} | HR")

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._pictures or not self._active(trainer):
            return
        for lg in trainer.loggers:
            if supports_images(lg):
                log_images(lg, "val/samples", self._pictures, self._captions, log_step(trainer))
        self._pictures, self._captions = [], []
