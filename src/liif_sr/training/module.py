"""LightningModule: L1 training of a LIIF model and full-image validation PSNR per scale."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from liif_sr.metrics.sr import MeanPSNR, protocol_shave
from liif_sr.models.implicit_sr import HeadFactory, ImplicitSR
from liif_sr.training.speed import (
    CompiledOrEager,
    SpeedOptions,
    build_optimizer,
    channels_last_input,
    reuse_host_memory,
)


def scale_key(scale: float) -> str:
    """``2.0`` → ``"x2"``, ``2.5`` → ``"x2.5"`` (metric names)."""
    return f"x{float(scale):g}"


class SRTrainingModule(L.LightningModule):
    """Train LIIF with L1 in the normalised space; validate with the paper's per-image PSNR.

    Args:
        encoder: encoder module (``model/encoder`` config group).
        head: decoder head factory (``model/head`` config group, ``_partial_``).
        optimizer: optimizer factory taking ``params`` (``_partial_``), Adam 1e-4 in the paper.
        scheduler: LR scheduler factory taking ``optimizer`` (``_partial_``), or None.
        scheduler_interval: ``epoch`` (paper: MultiStepLR per epoch) or ``step``.
        val_scales: validation scales (metric names ``val/psnr_x{s}``); ``val/psnr`` is their mean.
        val_protocol: ``div2k`` (RGB, shave s+6) or ``benchmark`` (Y, shave s).
        val_chunk: queries decoded at once during validation.
        speed: training-speed options ``{channels_last, fused_adam, reuse_host_memory, compile, compile_mode}`` (:class:`liif_sr.training.speed.SpeedOptions`,
            ``docs/training_speed.md``); mixed precision is the trainer's ``precision``.
    """

    def __init__(
        self,
        encoder: nn.Module,
        head: HeadFactory,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        scheduler_interval: str = "epoch",
        val_scales: Sequence[float] = (2, 3, 4),
        val_protocol: str = "div2k",
        val_chunk: int = 65536,
        speed: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.speed = SpeedOptions.from_config(speed)
        # plain data only in hparams: checkpoints stay loadable with weights_only=True
        val_scales = [float(s) for s in val_scales]
        self.save_hyperparameters(
            {
                "scheduler_interval": str(scheduler_interval),
                "val_scales": val_scales,
                "val_protocol": str(val_protocol),
                "val_chunk": int(val_chunk),
                "speed": self.speed.as_dict(),
            },
            logger=False,
        )
        self.net = ImplicitSR(encoder, head)
        if self.speed.channels_last:
            self.net.encoder.to(memory_format=torch.channels_last)
        self._compiled_net: CompiledOrEager | None = None  # built at the first training step
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.val_keys = [scale_key(s) for s in val_scales]
        self.val_psnr = nn.ModuleDict(
            {k: MeanPSNR(*protocol_shave(val_protocol, s)) for k, s in zip(self.val_keys, val_scales)}
        )

    def forward(self, lr: Tensor, coord: Tensor, cell: Tensor) -> Tensor:
        return self.net(lr, coord, cell)

    def on_fit_start(self) -> None:
        if self.speed.channels_last:  # again: an earlier fit of this module ended in the standard format
            self.net.encoder.to(memory_format=torch.channels_last)
        if self.speed.reuse_host_memory and self.device.type == "cpu":
            reuse_host_memory()

    def on_fit_end(self) -> None:
        """The trained network back in the standard memory format: after ``fit`` it computes bit for bit what
        the saved weights compute once loaded (``channels_last`` convolutions round differently)."""
        if self.speed.channels_last:
            self.net.encoder.to(memory_format=torch.contiguous_format)

    def training_forward(self, inp: Tensor, coord: Tensor, cell: Tensor) -> Tensor:
        """The training forward with the ``speed`` options (channels_last input, compiled net or eager)."""
        if self.speed.channels_last:
            inp = channels_last_input(inp)
        if not self.speed.compile:
            return self.net(inp, coord, cell)
        if self._compiled_net is None:
            self._compiled_net = CompiledOrEager(self.net, "the LIIF network", mode=self.speed.compile_mode)
        return self._compiled_net(inp, coord, cell)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        # no host-device synchronisation in here: the loss is logged as a tensor
        pred = self.training_forward(batch["inp"], batch["coord"], batch["cell"])
        loss = F.l1_loss(pred, (batch["gt"] - 0.5) / 0.5)
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=pred.shape[0])
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Tensor]:
        lr, hr = batch["lr"], batch["hr"]
        key = scale_key(float(batch["scale"][0]))
        if key not in self.val_psnr:
            raise ValueError(f"validation scale {key} is not in model.val_scales={self.val_keys}")
        # the paper protocol: no border padding; cell clipping as the head's paper test protocol
        sr = self.net.upscale(
            lr, tuple(hr.shape[-2:]), chunk=self.hparams.val_chunk, border="none", precision="fp32"
        )  # the papers' protocol
        self.val_psnr[key].update(sr, hr)
        return {"sr": sr}  # for callbacks (ValidationImages)

    def on_validation_epoch_end(self) -> None:
        # scales not present in this validation run are skipped, decided over all ranks: under DDP compute()
        # is a collective, so every rank must call it for the same scales even if its shard lacked one
        counts = torch.stack([metric.count for metric in self.val_psnr.values()])
        if self.trainer.world_size > 1:
            counts = self.all_gather(counts).reshape(-1, len(self.val_psnr)).sum(0)
        values = []
        for (key, metric), count in zip(self.val_psnr.items(), counts.tolist()):
            if count:
                with warnings.catch_warnings():  # this rank may have had no image at this scale
                    warnings.filterwarnings("ignore", message=".*called before the ..update.. method")
                    value = metric.compute()
                # value is already reduced over ranks (identical on all): sync_dist only silences the warning
                self.log(f"val/psnr_{key}", value, sync_dist=True)
                values.append(value)
            metric.reset()
        if values:
            self.log("val/psnr", torch.stack(values).mean(), prog_bar=True, sync_dist=True)

    def configure_optimizers(self) -> Any:
        optimizer = build_optimizer(self.optimizer_factory, self.parameters(), self.speed.fused_adam)
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer=optimizer)
        interval = self.hparams.scheduler_interval
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": interval}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        from liif_sr import __version__

        checkpoint["liif_sr"] = {"model": self.net.config, "version": __version__}


def __getattr__(name: str) -> Any:  # old names (issue 19): one release with a DeprecationWarning
    from liif_sr.deprecated import renamed

    return renamed(__name__, name)
