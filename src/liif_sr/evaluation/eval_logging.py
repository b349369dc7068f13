"""``liif-sr-eval``'s numbers to Lightning loggers (W&B, TensorBoard, CSV): scalars, table, plot.

Keys are ``eval/<set>/x<scale>/<row key>/{psnr,ssim}`` where the row key is the row name made safe for
metric keys (:func:`metric_key`: no spaces, parentheses or ``=`` — ``edsr_baseline_small-liif lr=0.0005``
→ ``edsr_baseline_small-liif_lr-0.0005``), so evaluation metrics can be joined with the training runs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from liif_sr.evaluation.report import EvalResults


def metric_key(name: str) -> str:
    """A row name as one metric-key component: ``a b=c (job 1) [failed]`` → ``a_b-c_job1_failed``."""
    key = name.replace("=", "-").replace("(job ", "job").replace(" ", "_")
    return re.sub(r"[^A-Za-z0-9_.+\-]", "", key).strip("_") or "model"


def log_results(results: EvalResults, loggers: Sequence[Any], plot_path: Path | None = None) -> None:
    """Send the means to Lightning loggers: scalars ``eval/<set>/x<s>/<row key>/{psnr,ssim}`` everywhere,
    plus a table and the plot image on W&B (``log_table``/``log_image``) and the plot on TensorBoard."""
    if not loggers:
        return
    rows = results.summary()
    metrics = {}
    for r in rows:
        for key in ("psnr", "ssim"):
            if r[key] is not None:
                metrics[f"eval/{r['set']}/x{r['scale']}/{metric_key(r['model'])}/{key}"] = float(r[key])
    columns = ["model", "set", "scale", "lr", "protocol", "psnr", "ssim", "images"]
    for lg in loggers:
        lg.log_metrics(metrics)
        if hasattr(lg, "log_table"):  # lightning WandbLogger → wandb.Table
            lg.log_table(key="eval/results", columns=columns, data=[[r[c] for c in columns] for r in rows])
            if plot_path is not None and hasattr(lg, "log_image"):
                lg.log_image(key="eval/psnr_vs_scale", images=[str(plot_path)])
        elif plot_path is not None and hasattr(getattr(lg, "experiment", None), "add_image"):  # TensorBoard
            import numpy as np
            from PIL import Image

            with Image.open(plot_path) as im:
                lg.experiment.add_image(
                    "eval/psnr_vs_scale", np.asarray(im.convert("RGB")), dataformats="HWC"
                )
        lg.save()
        lg.finalize("success")
