"""End-of-training report of the quickstart: held-out PSNR of the model (named by its head: LIIF, LTE, MetaSR)
vs bicubic, a picture, a JSON."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import lightning as L
import numpy as np
from lightning.pytorch.utilities import rank_zero_only

from liif_sr.training.callbacks.pictures import comparison_crops, side_by_side

log = logging.getLogger(__name__)
#: how a head is named in the report (others: their registry name in capitals)
HEAD_LABELS = {"liif": "LIIF", "lte": "LTE", "metasr": "MetaSR"}


def head_label(name: str) -> str:
    """``lte`` → ``LTE``: the model's head as the report names it (an LTE model is not called "LIIF")."""
    return HEAD_LABELS.get(name, name.upper())


class QuickstartReport(L.Callback):
    """At the end of training: held-out Y-PSNR of LIIF vs bicubic at ``scale``, a comparison picture, a JSON.

    Writes ``<run>/sample_x{scale}.png`` (LR | bicubic | LIIF | HR crops) and ``<run>/quickstart_result.json``.
    """

    def __init__(self, scale: float = 4.0, out_dir: str | None = None) -> None:
        self.scale, self.out_dir = float(scale), out_dir

    @rank_zero_only
    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or getattr(trainer, "fast_dev_run", False):
            return
        dm = trainer.datamodule
        if dm is None or dm.val_set is None:
            return
        from liif_sr.data.images import write_image_atomic
        from liif_sr.data.resize import upsample_bicubic
        from liif_sr.data.sampling import fixed_scale_pair
        from liif_sr.data.sources import image_name
        from liif_sr.metrics.sr import psnr_protocol

        out = Path(self.out_dir or trainer.default_root_dir)
        net = pl_module.net.eval()
        rows, picture = [], None
        for i, item in enumerate(dm.val_set.images.items):
            lr8, hr8 = fixed_scale_pair(dm.val_set.images[i], self.scale, dm.val_set.downsampler)
            lr, hr = lr8.float()[None] / 255, hr8.float()[None] / 255
            lr = lr.to(pl_module.device)
            sr = net.upscale(lr, tuple(hr.shape[-2:]), border="none", precision="fp32")  # paper protocol
            sr = sr.cpu()
            bic = upsample_bicubic(lr.cpu(), tuple(hr.shape[-2:])).clamp(0, 1)
            p_sr = float(psnr_protocol(sr, hr, "benchmark", self.scale)[0])
            p_bic = float(psnr_protocol(bic, hr, "benchmark", self.scale)[0])
            rows.append({"image": image_name(item), "liif": p_sr, "bicubic": p_bic})
            if picture is None:
                picture = side_by_side(comparison_crops(lr[0].cpu(), bic[0], sr[0], hr[0], self.scale))
        result = {
            "scale": self.scale,
            "protocol": "Y channel, shave = scale, per-image mean",
            "images": rows,
            "model": net.name,  # e.g. edsr_baseline-lte; liif_psnr (kept name) is this model's PSNR
            "liif_psnr": float(np.mean([r["liif"] for r in rows])),
            "bicubic_psnr": float(np.mean([r["bicubic"] for r in rows])),
        }
        result["gain_db"] = result["liif_psnr"] - result["bicubic_psnr"]
        done = trainer.current_epoch  # epochs completed (Lightning counts up after each one)
        result["epochs"] = {"done": int(done), "planned": int(trainer.max_epochs or 0)}
        result["steps"] = int(trainer.global_step)
        result["stopped_by_time_budget"] = bool(trainer.max_epochs and done < trainer.max_epochs)
        (out / "quickstart_result.json").write_text(json.dumps(result, indent=2))
        pic_path = out / f"sample_x{self.scale:g}.png"
        if picture is not None:
            write_image_atomic(pic_path, picture, overwrite=True)
        msg = (
            f"held-out x{self.scale:g} Y-PSNR: {head_label(net.head.name)} ({net.name}) "
            f"{result['liif_psnr']:.2f} dB, bicubic "
            f"{result['bicubic_psnr']:.2f} dB ({result['gain_db']:+.2f} dB); picture {pic_path}"
        )
        if result["stopped_by_time_budget"]:
            msg += f" (time budget reached after {done} of {trainer.max_epochs} epochs)"
        log.info(msg)
        print(msg)
        for lg in trainer.loggers:
            if hasattr(lg, "log_metrics"):
                lg.log_metrics(
                    {"final/liif_psnr": result["liif_psnr"], "final/bicubic_psnr": result["bicubic_psnr"]},
                    step=trainer.global_step,
                )
