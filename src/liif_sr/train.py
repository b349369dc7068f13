"""Training entry point: ``liif-sr-train`` / ``python -m liif_sr.train`` (Hydra, ``conf/train.yaml``).

The flow: check the launch, find the checkpoint to continue, seed, instantiate data / model / callbacks /
loggers / trainer from their ``_target_`` (:mod:`liif_sr.training`), fit, export the weights, and return the
optimised metric for sweepers. The Hydra plumbing (resolvers, user errors, ``wandb.finish``) is
:mod:`liif_sr.hydra_app`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from liif_sr.hydra_app import hydra_entry, instantiate_group

log = logging.getLogger("liif_sr.train")


def init_weights(net: Any, source: str) -> None:
    """Start from the weights of ``source`` (a checkpoint file or a shipped model name such as
    ``edsr-baseline-liif``): fine-tuning. Only the network's weights are taken (a fresh optimizer, LR
    schedule and step count); the checkpoint's model config must equal the run's."""
    from liif_sr.checkpoints import load_model, resolve_checkpoint
    from liif_sr.errors import CheckpointError, UserError
    from liif_sr.file_cache import take
    from liif_sr.training.preflight import INIT_WEIGHTS

    try:
        path = resolve_checkpoint(source)
        loaded = take(INIT_WEIGHTS, path)  # liif-sr-train's start-up check loaded it (same file version)
        if loaded is None or loaded.config != net.config:
            loaded = load_model(path, expect=net.config)
    except CheckpointError as exc:
        raise UserError(f"init_weights={source}: {exc}") from None
    net.load_state_dict(loaded.state_dict(), strict=True)  # copies in place: memory formats are kept
    log.info("initial weights from %s", source)


def train(cfg: DictConfig) -> tuple[dict[str, float], dict[str, Any]]:
    """Run one training job; returns (metrics, objects)."""
    from liif_sr.training import run_lock
    from liif_sr.training.launch import check_launch
    from liif_sr.training.preflight import check_config
    from liif_sr.training.resume import finished_run, resolve_ckpt_path
    from liif_sr.training.resume_changes import refuse_api_changes

    check_config(cfg)  # liif-sr-train checks more before Hydra writes anything (_preflight); API users: here
    check_launch(cfg)
    refuse_api_changes(cfg)  # resume=<run> changing what the run was trained with (the CLI: resume_plan)
    ckpt_path = resolve_ckpt_path(cfg)
    locked = run_lock.hold(cfg.paths.output_dir, str(cfg.paths.output_dir))  # one process per run folder
    done = finished_run(cfg, ckpt_path)  # a continued run with nothing left to train is left as it is
    if done is not None:
        if locked:
            run_lock.release(cfg.paths.output_dir)
        return done, {}
    try:
        return _fit(cfg, ckpt_path)
    finally:  # also when the job fails (a sweep goes on in this process and may resume it later)
        if locked:
            run_lock.release(cfg.paths.output_dir)


def _fit(cfg: DictConfig, ckpt_path: str | None) -> tuple[dict[str, float], dict[str, Any]]:
    """Build the job's objects and fit (the run folder is locked by :func:`train`)."""
    import lightning as L
    from hydra.utils import instantiate
    from lightning.pytorch.utilities import rank_zero_only

    from liif_sr.checkpoints import check_matches
    from liif_sr.models.registry import encoder_name
    from liif_sr.training.checkpoint_io import trainer_plugins
    from liif_sr.training.interrupt import fit_or_interrupt
    from liif_sr.training.loggers.wandb_run import prepare_wandb
    from liif_sr.training.run_name import run_identity

    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    # _convert_="all": plain lists/dicts, never ListConfig, reach the modules (checkpoints stay weights-only)
    datamodule = instantiate(cfg.data, _convert_="all")
    model = instantiate(cfg.model, _convert_="all")
    if ckpt_path:  # a checkpoint of another encoder/config: one clear line instead of a state_dict dump
        check_matches(ckpt_path, model.net.config)
    elif cfg.get("init_weights"):
        init_weights(model.net, cfg.init_weights)
    callbacks = instantiate_group(cfg.get("callbacks"))
    # the run's name, computed once here (the Hydra job): spawned DDP ranks get it with their callbacks
    identity = run_identity(model.net)
    for cb in callbacks:
        if hasattr(cb, "identity"):
            cb.identity = identity
    # W&B run id in <run dir>/wandb_id.txt (a continued run continues it), the sweep's group, the run's name
    prepare_wandb(cfg, ckpt_path, name=identity.name)
    loggers = instantiate_group(cfg.get("logger"))
    # AtomicCheckpointIO: checkpoints are written to a temp file and renamed (a kill never leaves half a file)
    plugins = trainer_plugins(cfg.trainer)
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, plugins=plugins)
    hparams = {
        k: OmegaConf.to_container(cfg[k], resolve=True) if OmegaConf.is_config(cfg[k]) else cfg[k]
        for k in cfg
        if k != "hydra"
    }
    n_params = sum(p.numel() for p in model.net.parameters())
    hparams.update(
        {"model/encoder": identity.encoder, "model/head": identity.head, "run/name": identity.name}
    )
    hparams.update({f"sweep/{k}": v for k, v in identity.swept.items()})
    hparams["model/params"] = n_params
    for lg in loggers:
        lg.log_hyperparams(hparams)
    log.info("model: %s, %.3fM parameters", encoder_name(model.net.encoder), n_params / 1e6)
    # Ctrl-C: last.ckpt at that step and one line with the resume command, exit 130 (training.interrupt)
    fit_or_interrupt(trainer, cfg, model=model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    metrics = _scalars(trainer.callback_metrics)
    if _needs_final_validation(cfg, trainer, metrics):
        # e.g. max_time stopped the fit before its first validation: the sweeper still gets its value
        log.info("no validation ran before training stopped (step %d): validating once", trainer.global_step)
        trainer.validate(model, datamodule=datamodule, verbose=False)
        metrics = _scalars(trainer.callback_metrics)
    if cfg.get("export_weights") and not trainer.interrupted:
        _export(model, Path(cfg.paths.output_dir))
    rank_zero_only(log.info)("metrics: %s", {k: round(v, 4) for k, v in metrics.items()})
    return metrics, {"trainer": trainer, "model": model, "datamodule": datamodule}


def _scalars(values: Any) -> dict[str, float]:
    return {k: float(v) for k, v in values.items() if getattr(v, "numel", lambda: 1)() == 1}


def _needs_final_validation(cfg: DictConfig, trainer: Any, metrics: dict[str, float]) -> bool:
    """The fit trained but never validated (``max_time``/``max_steps`` before the first validation) while a
    sweeper waits for a ``val/`` metric: one validation gives it a value (else Optuna has no completed trial)."""
    from liif_sr.training.job_failure import in_multirun

    name = cfg.get("optimized_metric")
    return bool(
        name
        and str(name).startswith("val/")
        and name not in metrics
        and in_multirun()
        and not trainer.interrupted
        and trainer.global_step > 0
        and trainer.limit_val_batches != 0
    )


def _export(model: Any, out_dir: Path) -> None:
    from lightning.pytorch.utilities import rank_zero_only

    from liif_sr.checkpoints import save_weights

    @rank_zero_only
    def write() -> None:
        path = save_weights(model.net, out_dir / "model.safetensors")
        log.info("weights written to %s (load with liif_sr.load_model)", path)

    write()


def _task(cfg: DictConfig) -> Any:
    from liif_sr.training.job_failure import in_multirun, is_job_failure, record_failure

    try:
        metrics, objects = train(cfg)
    except Exception as exc:  # one bad job of a sweep is recorded and the sweep goes on (job_failure.py)
        if not (in_multirun() and is_job_failure(exc)):
            raise
        return record_failure(cfg, exc)
    if "trainer" in objects and objects["trainer"].interrupted:
        raise SystemExit(130)
    name = cfg.get("optimized_metric")
    if name and name not in metrics:
        log.warning("optimized_metric %s was not logged (have: %s)", name, sorted(metrics))
    return metrics.get(name) if name else None


def _preflight(argv: Sequence[str]) -> list[str]:
    """Refuse a start that cannot work before Hydra creates or rewrites a run folder (values, resume, model);
    a resume's command line is rewritten first (the run's own overrides + the changes now)."""
    from liif_sr.training.launch_plan import dry_run_requested, print_plan
    from liif_sr.training.preflight import preflight_argv
    from liif_sr.training.renamed_keys import upgrade_overrides
    from liif_sr.training.resume_plan import plan

    argv = upgrade_overrides(
        plan(upgrade_overrides(argv))
    )  # model.fast.* → model.speed.*, also a resumed run's
    if dry_run_requested(argv):  # compose and check every job, print the plan (sbatch options); run nothing
        print_plan(argv)
        raise SystemExit(0)
    preflight_argv("train", argv)
    return argv


main = hydra_entry("liif-sr-train", "train", _task, module="liif_sr.train", preflight=_preflight)

if __name__ == "__main__":
    main()
