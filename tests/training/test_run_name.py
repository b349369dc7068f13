"""Issue 17 (4, 5): one name per run — ``<encoder>-<head>`` of the configs plus the values its sweep varies;
the quickstart's time bound only bounds single runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from liif_sr.training.run_name import (
    RunIdentity,
    folder_identity,
    identity_from_hydra,
    job_values,
    swept_keys,
)


@pytest.mark.parametrize(
    ("sweep", "params", "keys"),
    [
        (["model.optimizer.lr=1e7,1e-4", "data.repeat=1"], None, ["model.optimizer.lr"]),
        (["model/encoder=a,b", "model/head=liif,lte", "seed=1,2"], None, ["seed"]),  # already in the name
        (["model.scheduler.gamma=range(1,3)"], None, ["model.scheduler.gamma"]),
        ([], {"model.optimizer.lr": "tag(log, interval(1e-4, 1e-3))", "model.scheduler.gamma": "choice(0.5, 0.2)"},
         ["model.optimizer.lr", "model.scheduler.gamma"]),  # Optuna's search space
        (["data.batch_size=4", "+trainer.num_sanity_val_steps=0"], None, []),  # nothing swept
    ],
)  # fmt: skip
def test_swept_keys(sweep, params, keys):
    assert swept_keys(sweep, params) == keys


def test_names_carry_the_swept_values():
    values = job_values(
        ["model.optimizer.lr=0.000312783", "data.repeat=1", "seed=2"], ["model.optimizer.lr", "seed"]
    )
    assert values == {"model.optimizer.lr": "0.000312783", "seed": "2"}
    identity = RunIdentity("edsr_baseline_small", "liif", values)
    assert identity.name == "edsr_baseline_small-liif lr=0.000313 seed=2"
    assert identity.model == "edsr_baseline_small-liif"
    assert RunIdentity("rdn", "lte").name == "rdn-lte"  # a single run or a grid over models only
    # keys sharing their last component keep the full key
    both = RunIdentity("a", "b", {"model.optimizer.lr": "1e-4", "other.lr": "2"})
    assert both.name == "a-b model.optimizer.lr=0.0001 other.lr=2"
    assert RunIdentity("a", "b", {"data": "div2k"}).name == "a-b data=div2k"


def test_identity_of_a_job_folder_matches_training(tmp_path):
    """The evaluation reads the name back from a job's .hydra/hydra.yaml and the sweep's multirun.yaml."""
    sweep = tmp_path / "sweep"
    job = sweep / "1" / ".hydra"
    job.mkdir(parents=True)
    (sweep / "multirun.yaml").write_text(
        yaml.safe_dump({"hydra": {"overrides": {"task": ["model.optimizer.lr=1e7,5e-4"]}}})
    )
    hydra = {"mode": "MULTIRUN", "sweep": {"dir": "${paths.log_dir}/gone"},
             "runtime": {"choices": {"model/encoder": "rdn_small", "model/head": "metasr"}},
             "overrides": {"task": ["model.optimizer.lr=5e-4"]}}  # fmt: skip
    (job / "hydra.yaml").write_text(yaml.safe_dump({"hydra": hydra}))
    identity = folder_identity(sweep / "1")
    assert identity.name == "rdn_small-metasr lr=0.0005"
    assert identity_from_hydra(OmegaConf.create(hydra), sweep_dir=sweep) == identity
    assert folder_identity(tmp_path) is None


def _multirun(cfg):
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import open_dict, read_write

    with read_write(cfg.hydra), open_dict(cfg.hydra):
        cfg.hydra.mode = RunMode.MULTIRUN
    HydraConfig().set_config(cfg)
    return cfg


def test_quickstart_time_bound_is_for_single_runs_only(compose_train):
    assert compose_train().trainer.max_time == "00:00:13:00"
    assert _multirun(compose_train()).trainer.max_time is None  # a sweep's budget is its own
    assert _multirun(compose_train("trainer.max_time=00:01:00:00")).trainer.max_time == "00:01:00:00"
    assert _multirun(compose_train("experiment=edsr_baseline_liif")).trainer.max_time is None


def test_wandb_name_and_group_in_a_sweep(compose_train, tmp_path):
    from omegaconf import open_dict, read_write

    from liif_sr.training.loggers.wandb_run import prepare_wandb

    sweep = tmp_path / "multiruns" / "2026-01-01_00-00-00"
    sweep.mkdir(parents=True)
    (sweep / "multirun.yaml").write_text(
        yaml.safe_dump({"hydra": {"overrides": {"task": ["model.optimizer.lr=1e-4,5e-4"]}}})
    )
    cfg = compose_train("logger=wandb", "model.optimizer.lr=5e-4")
    with read_write(cfg.hydra), open_dict(cfg.hydra):
        cfg.hydra.sweep.dir = str(sweep)
    cfg = _multirun(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(sweep / "1")
    prepare_wandb(cfg)
    assert cfg.logger.wandb.name == "edsr_baseline_small-liif lr=0.0005"
    assert cfg.logger.wandb.group == "2026-01-01_00-00-00"
    assert Path(cfg.paths.output_dir, "wandb_id.txt").is_file()
