"""The evaluation runner behind ``liif-sr-eval`` (entry: :mod:`liif_sr.evaluate`, config ``conf/eval.yaml``).

The LIIF tables from one command (protocol: ``docs/method.md``, "Evaluation protocol")::

    liif-sr-eval checkpoint=runs/x/model.safetensors                      # Set5/Set14/B100/Urban100 x2..x8
    liif-sr-eval checkpoint=[a.pth,b.ckpt] benchmark=[set5,b100] scales=[2,4]
    liif-sr-eval benchmark=[div2k]                                         # bicubic row only, x2..x30
    liif-sr-eval paths.benchmark_dir=/data/benchmark generate_with=matlab  # Urban100 x2-x4 without LR files

Each image is evaluated by every model in turn and its prediction is dropped before the next one, so at most
one prediction is alive at a time. Per image: PSNR by the set's protocol (float prediction, no 8-bit
rounding, as the official ``test.py``) and SSIM (MATLAB convention, Y); the reported value is the mean of
the per-image values. Results go to ``results.{md,csv,json}`` and ``psnr_vs_scale.png`` in the run folder,
to stdout, and to the configured logger.
"""

from __future__ import annotations

import logging
import math
import platform
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from liif_sr.errors import UserError
from liif_sr.evaluation.benchmarks import iter_pairs
from liif_sr.evaluation.columns import load_specs, plan_columns, select_scales  # noqa: F401 (re-exported)
from liif_sr.evaluation.eval_logging import log_results
from liif_sr.evaluation.multirun_links import failed_rows, prepare_eval_wandb, record_in_multiruns
from liif_sr.evaluation.preflight import check_options  # noqa: F401  (re-exported: the API's check)
from liif_sr.evaluation.report import (
    BICUBIC,
    EvalResults,
    format_markdown,
    write_reports,
)
from liif_sr.metrics.sr import protocol_shave

log = logging.getLogger("liif_sr.evaluate")

#: ``predict(lr, (H, W))``: lr float (1, 3, h, w) in [0, 1] on the device → (1, 3, H, W) in [0, 1]
Predictor = Callable[[Tensor, tuple[int, int]], Tensor]


def checkpoint_names(checkpoint: Any) -> dict[str, str]:
    """Row name → checkpoint for ``checkpoint`` (None, a path/name, a list of them, or a {name: path} map).

    Names are file stems (``model`` for ``runs/a/model.safetensors``), made unique with the parent folder
    when stems collide; ``bicubic`` entries are dropped (the reference row is the ``bicubic`` option). A
    multirun folder gives one row per job, named ``<encoder>-<head>`` (:func:`~.multirun.expand_multirun`).
    """
    from liif_sr.evaluation.multirun import expand_multirun, is_multirun_folder

    if checkpoint is None:
        return {}
    if isinstance(checkpoint, Mapping):
        named = {str(k): str(v) for k, v in checkpoint.items()}
        if BICUBIC in named:
            raise UserError(f"checkpoint name {BICUBIC!r} is reserved for the reference row")
        return named
    items = _listed(checkpoint)
    stems = [Path(c).stem for c in items]
    jobs = {item: expand_multirun(item) for item in items if is_multirun_folder(item)}
    named_items = [pair for item in items for pair in jobs.get(item, [(None, item)])]
    names: dict[str, str] = {}
    for job_name, item in named_items:
        stem = Path(item).stem
        name = job_name or (stem if stems.count(stem) == 1 else "/".join(Path(item).parts[-2:-1] + (stem,)))
        base, i = name, 2
        while name in names or name == BICUBIC:
            name, i = f"{base}#{i}", i + 1
        names[name] = item
    return names


def _listed(checkpoint: str | Any) -> list[str]:
    items = [checkpoint] if isinstance(checkpoint, str) else [str(c) for c in checkpoint]
    return [c for c in dict.fromkeys(items) if c != BICUBIC]


def checkpoint_files(checkpoint: Any) -> list[str]:
    """The checkpoints (files, run or job folders) the rows of ``checkpoint`` read, in row order, found
    without reading any (a multirun folder: its jobs with weights). ``liif-sr-eval``'s start-up check loads
    them before :func:`checkpoint_names` names the rows: a job named from its weights
    (:func:`~.multirun.job_name`) then finds its config kept (:mod:`liif_sr.file_cache`) and its file is
    read once."""
    from liif_sr.evaluation.multirun import is_multirun_folder, jobs_with_weights

    if checkpoint is None:
        return []
    if isinstance(checkpoint, Mapping):
        return [str(v) for k, v in checkpoint.items() if k != BICUBIC]
    return [
        job
        for item in _listed(checkpoint)
        for job in (jobs_with_weights(item) if is_multirun_folder(item) else [item])
    ]


def bicubic_predictor(lr: Tensor, size: tuple[int, int]) -> Tensor:
    """MATLAB ``imresize(lr, [H W], 'bicubic')``, clamped to [0, 1] like the model rows: (1, 3, H, W)."""
    from liif_sr.data.resize import upsample_bicubic

    return upsample_bicubic(lr, size).clamp_(0, 1)


def model_note(name: str, cell_clip: float | None, border: str) -> str:
    """The table's note for one model row: its encoder-head and the protocol it was run with."""
    clip = (
        f"cell clipped to the x{cell_clip:g} cell above x{cell_clip:g}" if cell_clip else "no cell clipping"
    )
    pad = "" if border == "none" else f", border={border}"
    return f"{name}: {clip}{pad}"


#: the models :func:`~liif_sr.evaluation.preflight.check_eval_start` loaded, handed to the run
#: (:func:`liif_sr.file_cache.hand_over`; key ``<PRELOADED>/<head_mode>``)
PRELOADED = "eval-model"


def _load(path: str, device: torch.device, head_mode: str) -> Any:
    """The checkpoint's model on ``device``: the one ``liif-sr-eval``'s start-up check loaded from the same
    file (same version), else read now."""
    from liif_sr.checkpoints import load_model, resolve_checkpoint
    from liif_sr.file_cache import take

    resolved = resolve_checkpoint(path)
    model = take(f"{PRELOADED}/{head_mode}", resolved)
    return load_model(resolved, device=device, head_mode=head_mode) if model is None else model.to(device)


def build_predictors(cfg: DictConfig, device: torch.device) -> dict[str, Predictor]:
    """The rows of the table: bicubic (unless ``bicubic=false``) and one per checkpoint, in order."""
    from liif_sr.evaluation.multirun import run_summary
    from liif_sr.models.upscale_options import UpscaleOptions

    predictors: dict[str, Predictor] = {BICUBIC: bicubic_predictor} if cfg.bicubic else {}
    checkpoint = (
        OmegaConf.to_container(cfg.checkpoint) if OmegaConf.is_config(cfg.checkpoint) else cfg.checkpoint
    )
    border = cfg.get("border", "none")
    for name, path in checkpoint_names(checkpoint).items():
        model = _load(path, device, cfg.head_mode)
        opts = UpscaleOptions.create(
            chunk=cfg.chunk,
            cell_clip=cfg.cell_clip,
            border=border,
            precision="fp32",  # the papers' protocol
        ).for_model(model)
        clip = opts.cell_clip
        log.info(
            "%s: %s (%s, %.3fM parameters, cell clip %s)",
            name, path, model.name, sum(p.numel() for p in model.parameters()) / 1e6, clip,
        )  # fmt: skip

        def predict(lr: Tensor, size: tuple[int, int], model: Any = model, opts: Any = opts) -> Tensor:
            return model.render(lr, opts.with_size(size))  # options checked once per row

        predict.note = model_note(model.name, clip, border)  # type: ignore[attr-defined]
        summary = run_summary(path) or {}  # params, ms/step of the training run (its summary.json)
        predict.info = {  # type: ignore[attr-defined]
            "params": sum(p.numel() for p in model.parameters()),
            "ms_per_step": summary.get("ms_per_step"),
            "steps_timed": summary.get("steps_timed"),
            "train_steps": summary.get("global_step"),
            "summary": bool(summary),
        }
        predictors[name] = predict
    if not predictors:
        raise UserError("nothing to evaluate: give checkpoint=PATH or leave bicubic=true")
    return predictors


def score_image(
    predict: Predictor, lr: Tensor, hr: Tensor, protocol: str, scale: float, with_ssim: bool = True
) -> tuple[float, float | None]:
    """Predict ``hr``'s size from ``lr`` (both (1, 3, ·, ·) float) and score it: ``(psnr, ssim)``.

    The prediction lives only inside this function, so it is freed before the next model runs.
    """
    from liif_sr.metrics.sr import psnr_protocol, ssim_matlab

    sr = predict(lr, (hr.shape[-2], hr.shape[-1]))
    if sr.shape != hr.shape:
        raise RuntimeError(f"prediction has shape {tuple(sr.shape)}, expected {tuple(hr.shape)}")
    psnr = float(psnr_protocol(sr, hr, protocol, scale).item())
    ssim = None
    if with_ssim:
        try:
            ssim = float(ssim_matlab(sr, hr, protocol_shave(protocol, scale)[0]).item())
        except ValueError:  # image too small for an 11x11 window after shaving
            ssim = math.nan
    return psnr, ssim


def _as_input(img: Tensor, device: torch.device) -> Tensor:
    return img.to(device).float().div_(255).unsqueeze(0)


def evaluate(cfg: DictConfig, output_dir: str | Path | None = None) -> EvalResults:
    """Run the evaluation described by ``cfg`` (``conf/eval.yaml``); write reports to ``output_dir``.

    Returns:
        :class:`EvalResults` with every per-image number; ``output_dir`` defaults to ``cfg.paths.output_dir``.
    """
    from tqdm import tqdm

    from liif_sr.hydra_app import instantiate_group
    from liif_sr.inference.devices import resolve_device

    start = time.perf_counter()
    check_options(cfg)
    out_dir = Path(output_dir if output_dir is not None else cfg.paths.output_dir)
    device = resolve_device(cfg.device, option="device=")
    specs = load_specs(cfg)
    plan = plan_columns(cfg, specs)
    predictors = build_predictors(cfg, device)
    prepare_eval_wandb(cfg)  # name and group of the evaluation's W&B run (a multirun's: the sweep's group)
    loggers = instantiate_group(cfg.get("logger"))
    results = EvalResults(models=list(predictors), columns=[col for _, col, _ in plan])
    results.failed = failed_rows(cfg.checkpoint)
    results.model_notes = {k: p.note for k, p in predictors.items() if getattr(p, "note", None)}
    results.model_info = {k: p.info for k, p in predictors.items() if getattr(p, "info", None)}
    _add_missing_jobs(cfg, results)
    bar = tqdm(
        total=sum(col.images for col in results.columns),
        unit="img",
        disable=not cfg.progress,
        file=sys.stderr,
    )
    with torch.inference_mode(), bar:
        for spec, col, files in plan:
            bar.set_description(f"{col.set} x{col.scale}")
            for pair in iter_pairs(spec, col.scale, cfg.downsampler, cfg.generate_with, files=files):
                image, lr, hr = pair.name, _as_input(pair.lr, device), _as_input(pair.hr, device)
                del pair
                for name, predict in predictors.items():
                    results.add(
                        name, col, image, *score_image(predict, lr, hr, col.protocol, col.scale, cfg.ssim)
                    )
                bar.update()
    results.meta = _metadata(cfg, device, time.perf_counter() - start)
    paths = write_reports(results, out_dir, plot=cfg.plot)
    record_in_multiruns(cfg.checkpoint, results, paths["md"])  # evaluations.txt, eval_latest, summary.json
    print(format_markdown(results))
    log.info("results written to %s", ", ".join(str(p) for p in paths.values()))
    log_results(results, loggers, paths.get("png"))
    return results


def _add_missing_jobs(cfg: DictConfig, results: EvalResults) -> None:
    """A marked, empty row for every multirun job without weights (a killed or failed job), so that a
    comparison never loses a job silently."""
    from liif_sr.evaluation.multirun import jobs_without_weights

    ckpt = cfg.checkpoint
    items = OmegaConf.to_container(ckpt) if OmegaConf.is_config(ckpt) else ckpt
    items = (
        [] if items is None or isinstance(items, Mapping) else [items] if isinstance(items, str) else items
    )
    for item in items:
        for job in jobs_without_weights(str(item)):
            row = f"job {job}: no weights" + (f" ({Path(str(item)).name})" if len(items) > 1 else "")
            results.models.append(row)
            results.model_notes[row] = (
                "not evaluated: the job folder holds no model.safetensors or checkpoints/last.ckpt "
                "(the job failed or was killed; see its train.log)"
            )


def _metadata(cfg: DictConfig, device: torch.device, seconds: float) -> dict[str, Any]:
    keys = (
        "checkpoint",
        "bicubic",
        "scales",
        "downsampler",
        "generate_with",
        "first_k",
        "chunk",
        "cell_clip",
        "border",
    )
    meta = {k: OmegaConf.to_container(v) if OmegaConf.is_config(v := cfg.get(k)) else v for k in keys}
    meta["benchmark"] = {k: str(v.root) for k, v in (cfg.get("benchmark") or {}).items()}
    meta.update(
        device=str(device),
        runtime_s=round(seconds, 2),
        torch=torch.__version__,
        python=platform.python_version(),
    )
    return meta
