"""Training entry point: ``liif-sr-train`` / ``python -m liif_sr.train`` (Hydra).

Compose the config, seed, instantiate data / model / callbacks / loggers / trainer from their ``_target_``,
fit (optionally continuing a checkpoint), export weights, and return the optimised metric for sweepers.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from liif_sr.errors import UserError

log = logging.getLogger("liif_sr.train")

# `${liif_sr.or:a,b}`: a unless it is null/empty, else b (used for `resume=<run dir>` → hydra.run.dir)
if not OmegaConf.has_resolver("liif_sr.or"):
    OmegaConf.register_new_resolver("liif_sr.or", lambda a, b: b if a in (None, "") else a)


def _instantiate_group(group: DictConfig | None) -> list[Any]:
    from hydra.utils import instantiate

    if not group:
        return []
    return [
        instantiate(c, _convert_="all")
        for c in group.values()
        if isinstance(c, DictConfig) and "_target_" in c
    ]


def check_launch(cfg: DictConfig) -> None:
    """Refuse Hydra multirun + subprocess DDP on the local launcher (every rank would re-run the sweep)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return
    hc = HydraConfig.get()
    strategy = str(cfg.trainer.get("strategy", "auto"))
    devices = cfg.trainer.get("devices", 1)
    many = devices == -1 or devices == "auto" or (isinstance(devices, int) and devices > 1)
    many = (
        many
        or (isinstance(devices, list | tuple) and len(devices) > 1)
        or cfg.trainer.get("num_nodes", 1) > 1
    )
    launcher = str(hc.runtime.choices.get("hydra/launcher", "basic"))
    local = launcher in ("basic", "submitit_local") or launcher.startswith("joblib")
    if (
        hc.mode == RunMode.MULTIRUN
        and many
        and strategy.startswith("ddp")
        and "spawn" not in strategy
        and local
    ):
        raise UserError(
            f"trainer.strategy={strategy} with several devices cannot run inside a local Hydra multirun "
            "(-m): Lightning re-launches the whole sweep on every rank. Use trainer=ddp_spawn for local "
            "sweeps, or hydra/launcher=slurm (one task per GPU)."
        )


def resolve_ckpt_path(cfg: DictConfig) -> str | None:
    """``ckpt_path`` (a file or ``last``) and ``resume=<run dir>`` → a checkpoint file or None."""
    ckpt = cfg.get("ckpt_path")
    if cfg.get("resume"):
        last = Path(cfg.resume) / "checkpoints" / "last.ckpt"
        if not last.is_file():
            raise UserError(f"resume={cfg.resume}: no checkpoints/last.ckpt in that run directory")
        return str(last)
    if ckpt == "last":
        last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
        if not last.is_file():
            raise UserError(
                "ckpt_path=last: no checkpoints/last.ckpt in this run directory "
                f"({cfg.paths.output_dir}); use resume=<previous run dir> to continue a previous run"
            )
        return str(last)
    if ckpt and not Path(ckpt).is_file():
        raise UserError(f"ckpt_path={ckpt}: file not found")
    return ckpt


def init_weights(net: Any, source: str) -> None:
    """Start from the weights of ``source`` (a checkpoint file or a shipped model name such as
    ``edsr-baseline-liif``): fine-tuning. Only the network's weights are taken (a fresh optimizer, LR
    schedule and step count); the checkpoint's model config must equal the run's."""
    from liif_sr.checkpoints import load_model
    from liif_sr.errors import CheckpointError

    try:
        loaded = load_model(source, expect=net.config)
    except CheckpointError as exc:
        raise UserError(f"init_weights={source}: {exc}") from None
    net.load_state_dict(loaded.state_dict(), strict=True)  # copies in place: memory formats are kept
    log.info("initial weights from %s", source)


def train(cfg: DictConfig) -> tuple[dict[str, float], dict[str, Any]]:
    """Run one training job; returns (metrics, objects)."""
    import lightning as L
    from hydra.utils import instantiate
    from lightning.pytorch.utilities import rank_zero_only

    from liif_sr.resume import trainer_plugins
    from liif_sr.wandb_resume import prepare_wandb

    check_launch(cfg)
    ckpt_path = resolve_ckpt_path(cfg)
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    # _convert_="all": plain lists/dicts, never ListConfig, reach the modules (checkpoints stay weights-only)
    datamodule = instantiate(cfg.data, _convert_="all")
    model = instantiate(cfg.model, _convert_="all")
    if ckpt_path:  # a checkpoint of another encoder/config: one clear line instead of a state_dict dump
        from liif_sr.checkpoints import check_matches

        check_matches(ckpt_path, model.net.config)
    elif cfg.get("init_weights"):
        init_weights(model.net, cfg.init_weights)
    callbacks = _instantiate_group(cfg.get("callbacks"))
    prepare_wandb(cfg, ckpt_path)  # W&B run id in <run dir>/wandb_id.txt: a continued run continues it
    loggers = _instantiate_group(cfg.get("logger"))
    # AtomicCheckpointIO: checkpoints are written to a temp file and renamed (a kill never leaves half a file)
    plugins = trainer_plugins(cfg.trainer)
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, plugins=plugins)
    hparams = {
        k: OmegaConf.to_container(cfg[k], resolve=True) if OmegaConf.is_config(cfg[k]) else cfg[k]
        for k in cfg
        if k != "hydra"
    }
    n_params = sum(p.numel() for p in model.net.parameters())
    hparams["model/params"] = n_params
    for lg in loggers:
        lg.log_hyperparams(hparams)
    log.info("model: %s, %.3fM parameters", cfg.model.encoder._target_.rsplit(".", 1)[-1], n_params / 1e6)
    trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    metrics = {
        k: float(v) for k, v in trainer.callback_metrics.items() if getattr(v, "numel", lambda: 1)() == 1
    }
    if cfg.get("export_weights") and not trainer.interrupted:
        _export(model, Path(cfg.paths.output_dir))
    rank_zero_only(log.info)("metrics: %s", {k: round(v, 4) for k, v in metrics.items()})
    return metrics, {"trainer": trainer, "model": model, "datamodule": datamodule}


def _export(model: Any, out_dir: Path) -> None:
    from lightning.pytorch.utilities import rank_zero_only

    from liif_sr.checkpoints import save_weights

    @rank_zero_only
    def write() -> None:
        path = save_weights(model.net, out_dir / "model.safetensors")
        log.info("weights written to %s (load with liif_sr.load_model)", path)

    write()


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def _hydra_main(cfg: DictConfig) -> float | None:
    try:
        metrics, objects = train(cfg)
    except UserError as exc:  # one line, exit 2 (Hydra would print a traceback; a multirun stops here)
        print(f"liif-sr-train: error: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    if objects["trainer"].interrupted:
        raise SystemExit(130)
    try:
        import wandb

        if wandb.run is not None:  # each job of a multirun gets its own wandb run
            wandb.finish()
    except ImportError:
        pass
    name = cfg.get("optimized_metric")
    if name and name not in metrics:
        log.warning("optimized_metric %s was not logged (have: %s)", name, sorted(metrics))
    return metrics.get(name) if name else None


def main() -> None:
    """Console entry; user errors print one line (set HYDRA_FULL_ERROR=1 for tracebacks)."""
    try:
        _hydra_main()
    except UserError as exc:
        print(f"liif-sr-train: error: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None


if __name__ == "__main__":
    main()
