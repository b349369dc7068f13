"""Launch checks of a training run: refuse set-ups that cannot work before anything is built."""

from __future__ import annotations

from omegaconf import DictConfig

from liif_sr.errors import UserError


class LaunchError(UserError):
    """A launch that cannot work for any job: refuses the whole sweep (not recorded as one failed job)."""


def check_launch(cfg: DictConfig) -> None:
    """Refuse Hydra multirun + subprocess DDP on the local launcher (every rank would re-run the sweep)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return
    hc = HydraConfig.get()
    launcher = str(hc.runtime.choices.get("hydra/launcher", "basic"))
    check_launch_values(cfg, hc.mode == RunMode.MULTIRUN, launcher)


def check_launch_values(cfg: DictConfig, multirun: bool, launcher: str) -> None:
    """:func:`check_launch` on given values (the preflight knows them before Hydra runs)."""
    strategy = str(cfg.trainer.get("strategy", "auto"))
    devices = cfg.trainer.get("devices", 1)
    many = devices == -1 or devices == "auto" or (isinstance(devices, int) and devices > 1)
    many = (
        many
        or (isinstance(devices, list | tuple) and len(devices) > 1)
        or cfg.trainer.get("num_nodes", 1) > 1
    )
    local = launcher in ("basic", "submitit_local") or launcher.startswith("joblib")
    if multirun and many and strategy.startswith("ddp") and "spawn" not in strategy and local:
        raise LaunchError(
            f"trainer.strategy={strategy} with several devices cannot run inside a local Hydra multirun "
            "(-m): Lightning re-launches the whole sweep on every rank. Use trainer=ddp_spawn for local "
            "sweeps, or hydra/launcher=slurm (one task per GPU)."
        )
