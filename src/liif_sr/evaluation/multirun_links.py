"""What ties an evaluation of a multirun folder to that folder and its training runs.

* :func:`failed_rows`: the failed jobs of the evaluated multirun folders (marked rows of the table);
* :func:`link_evaluation`: ``<multirun>/evaluations.txt`` gets one line per evaluation (time, the
  ``results.md`` path) and ``<multirun>/eval_latest`` links to the newest evaluation folder, so the table is
  found from the sweep folder;
* :func:`attach_to_jobs`: each evaluated job's ``summary.json`` gets its own numbers
  (``eval/<set>/x<s>/psnr``, ``eval/<set>/x<s>/ssim``, ``eval/results``: the results.md path), so a job's
  training and benchmark numbers sit in one file, joined by the job folder;
* :func:`prepare_eval_wandb`: ``logger=wandb`` runs of ``liif-sr-eval`` are named ``eval <checkpoint>`` and,
  for a multirun folder, grouped with its training runs (the sweep folder's name, as the training jobs).
"""

from __future__ import annotations

import datetime
import logging
import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

log = logging.getLogger("liif_sr.evaluate")

EVALUATIONS_FILE = "evaluations.txt"
LATEST_LINK = "eval_latest"


def multirun_folders(checkpoint: Any) -> list[Path]:
    """The multirun folders among ``checkpoint`` (a path, a list, a {name: path} map, or None)."""
    from liif_sr.evaluation.multirun import is_multirun_folder

    if OmegaConf.is_config(checkpoint):
        checkpoint = OmegaConf.to_container(checkpoint)
    if checkpoint is None:
        return []
    items = (
        checkpoint.values()
        if isinstance(checkpoint, dict)
        else [checkpoint]
        if isinstance(checkpoint, str)
        else checkpoint
    )
    return [Path(str(c)) for c in items if is_multirun_folder(str(c))]


def failed_rows(checkpoint: Any) -> dict[str, str]:
    """``{row name: reason}`` of the failed jobs (without weights) of every evaluated multirun folder."""
    from liif_sr.evaluation.multirun import failed_jobs

    rows: dict[str, str] = {}
    for folder in multirun_folders(checkpoint):
        rows.update(failed_jobs(folder))
    return rows


def link_evaluation(checkpoint: Any, results_md: Path) -> None:
    """Record the evaluation in every evaluated multirun folder (a read-only folder only gets a warning)."""
    for folder in multirun_folders(checkpoint):
        try:
            stamp = datetime.datetime.now().isoformat(timespec="seconds")
            with open(folder / EVALUATIONS_FILE, "a") as f:
                f.write(f"{stamp} {results_md.resolve()}\n")
            link = folder / LATEST_LINK
            tmp = folder / (LATEST_LINK + ".tmp")
            if tmp.is_symlink() or tmp.exists():
                tmp.unlink()
            os.symlink(results_md.resolve().parent, tmp)
            tmp.replace(link)
        except OSError as exc:
            log.warning("%s: could not record this evaluation there (%s)", folder, exc)


def prepare_eval_wandb(cfg: DictConfig) -> None:
    """Name (``eval <checkpoint name>``) and group (a multirun's: its folder name, the group of its training
    runs) of a ``logger.wandb`` entry, unless given; ``job_type`` stays ``eval``."""
    logger_cfg = cfg.get("logger")
    wb = logger_cfg.get("wandb") if logger_cfg else None
    if not isinstance(wb, DictConfig) or "_target_" not in wb:
        return
    folders = multirun_folders(cfg.checkpoint)
    target = folders[0].name if folders else Path(str(cfg.checkpoint or "bicubic")).name
    with open_dict(wb):
        if wb.get("name") is None:
            wb.name = f"eval {target}"
        if wb.get("group") is None and folders:
            wb.group = folders[0].name


def attach_to_jobs(job_rows: dict[str, str], summary_rows: list[dict[str, Any]], results_md: Path) -> None:
    """Write each job row's means into its job folder's ``summary.json`` (``job_rows``: row name → job
    folder, the rows that came from multirun folders; ``summary_rows``: ``EvalResults.summary()``)."""
    from liif_sr.training.summary_file import update_summary

    for name, job in job_rows.items():
        fields: dict[str, Any] = {"eval/results": str(results_md.resolve())}
        for r in summary_rows:
            if r["model"] == name:
                for key in ("psnr", "ssim"):
                    if r[key] is not None:
                        fields[f"eval/{r['set']}/x{r['scale']:g}/{key}"] = round(float(r[key]), 4)
        try:
            update_summary(job, fields)
        except OSError as exc:
            log.warning("%s: could not add the evaluation to its summary.json (%s)", job, exc)


def job_rows(checkpoint: Any) -> dict[str, str]:
    """Row name → job folder of the rows that come from the evaluated multirun folders."""
    from liif_sr.evaluation.multirun import expand_multirun

    rows: dict[str, str] = {}
    for folder in multirun_folders(checkpoint):
        rows.update(dict(expand_multirun(folder)))
    return rows


def record_in_multiruns(checkpoint: Any, results: Any, results_md: Path) -> None:
    """After an evaluation: :func:`link_evaluation` and :func:`attach_to_jobs` for its multirun rows."""
    link_evaluation(checkpoint, results_md)
    jobs = {k: v for k, v in job_rows(checkpoint).items() if k in results.models}
    attach_to_jobs(jobs, results.summary(), results_md)
