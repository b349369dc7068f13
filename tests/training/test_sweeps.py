"""Hydra multiruns of the real ``liif-sr-train`` console script: a 2-value sweep, Optuna, submitit, refusals.

Each test runs the installed script in a subprocess (a multirun owns its process: Hydra's global state,
one wandb run per job), with a tiny config and the sweep directory in ``tmp_path``.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from liif_sr import load_model

SCRIPT = Path(sys.executable).parent / "liif-sr-train"

# no encoder-specific keys: the sweep swaps the encoder config
SWEEP_TINY = [
    "data.repeat=1",
    "data.batch_size=2",
    "data.inp_size=16",
    "data.sample_q=64",
    "data.train_sources=[skimage:astronaut,skimage:rocket]",
    "data.val_sources=[skimage:chelsea]",
    "model.head.hidden_list=[16,16]",
    "trainer.accelerator=cpu",
    "trainer.max_epochs=1",
    "trainer.check_val_every_n_epoch=1",
    "+trainer.num_sanity_val_steps=0",
    "callbacks.progress_bar=null",
    "callbacks.quickstart_report=null",
]

needs_optuna = pytest.mark.skipif(
    importlib.util.find_spec("hydra_plugins.hydra_optuna_sweeper") is None,
    reason='hydra-optuna-sweeper is not installed (pip install -c constraints.txt -e ".[sweep]")',
)
needs_submitit = pytest.mark.skipif(
    importlib.util.find_spec("hydra_plugins.hydra_submitit_launcher") is None,
    reason='hydra-submitit-launcher is not installed (pip install -c constraints.txt -e ".[slurm]")',
)


def _run(tmp_path: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    if not SCRIPT.exists():
        pytest.skip(f"console script not installed: {SCRIPT}")
    cmd = [str(SCRIPT), *args, f"paths.log_dir={tmp_path}/logs", f"hydra.sweep.dir={tmp_path}/sweep"]
    env = {**os.environ, "WANDB_MODE": "disabled"}
    return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout)


def _val_psnr(job_dir: Path) -> float:
    with open(job_dir / "csv" / "metrics.csv", newline="") as f:
        values = [float(r["val/psnr"]) for r in csv.DictReader(f) if r.get("val/psnr")]
    assert len(values) == 1, job_dir
    return values[0]


def _overrides(job_dir: Path) -> list[str]:
    return yaml.safe_load((job_dir / ".hydra" / "overrides.yaml").read_text())


def _check_only_sweep_written(tmp_path: Path) -> None:
    # nothing outside the sweep dir (no run dir of a re-launched rank, no second sweep)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep"]


def test_multirun_two_encoders(tmp_path):
    proc = _run(
        tmp_path,
        "-m",
        "model/encoder=edsr_baseline_small,rdn_small",
        "callbacks.step_time.warmup_steps=0",
        *SWEEP_TINY,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    _check_only_sweep_written(tmp_path)
    sweep = tmp_path / "sweep"
    assert (sweep / "multirun.yaml").is_file()
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1"]
    for num, encoder, cls in [("0", "edsr_baseline_small", "EDSRBaseline"), ("1", "rdn_small", "RDN")]:
        job = sweep / num
        assert f"model/encoder={encoder}" in _overrides(job)
        assert 5 < _val_psnr(job) < 50
        assert (job / "checkpoints" / "last.ckpt").is_file()
        assert type(load_model(job / "model.safetensors").encoder).__name__ == cls
        summary = json.loads((job / "summary.json").read_text())  # step_time callback: name, params, ms/step
        assert summary["name"] == f"{encoder}-liif" and summary["params"] > 0 and summary["ms_per_step"] > 0
    # the comparison table: checkpoint=<multirun folder> is a row per job, named <encoder>-<head>
    from liif_sr.evaluation.runner import checkpoint_names

    rows = checkpoint_names(str(sweep))
    assert rows == {"edsr_baseline_small-liif": str(sweep / "0"), "rdn_small-liif": str(sweep / "1")}


@pytest.mark.slow
@needs_optuna
def test_optuna_two_trials(tmp_path):
    proc = _run(tmp_path, "hparams_search=lr_optuna", "hydra.sweeper.n_trials=2", *SWEEP_TINY)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    _check_only_sweep_written(tmp_path)
    sweep = tmp_path / "sweep"
    result = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert result["name"] == "optuna"
    assert 1e-4 <= result["best_params"]["model.optimizer.lr"] <= 1e-3
    values, lrs = [], []
    for num in ("0", "1"):
        job = sweep / num
        values.append(_val_psnr(job))
        lrs.append(next(o for o in _overrides(job) if o.startswith("model.optimizer.lr=")))
    assert result["best_value"] == pytest.approx(max(values), abs=1e-4)  # maximised val/psnr
    assert lrs[0] != lrs[1]


@pytest.mark.slow
@needs_submitit
def test_submitit_local_one_job(tmp_path):
    proc = _run(tmp_path, "-m", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=5", *SWEEP_TINY)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    _check_only_sweep_written(tmp_path)
    sweep = tmp_path / "sweep"
    assert (sweep / ".submitit").is_dir()  # the job ran in a submitit-managed process
    assert 5 < _val_psnr(sweep / "0") < 50
    assert (sweep / "0" / "model.safetensors").is_file()


def test_multirun_with_subprocess_ddp_is_refused(tmp_path, monkeypatch, capsys):
    """A refusal at start: the console entry in-process (same exit status and stderr as the process)."""
    from test_preflight import _main

    args = ("-m", "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "seed=1,2")
    code, err = _main(monkeypatch, capsys, tmp_path, *args, f"hydra.sweep.dir={tmp_path}/sweep")
    assert code == 2, err
    lines = err.splitlines()
    assert lines[-1].startswith("liif-sr-train: error: trainer.strategy=ddp with several devices cannot run")
    assert "trainer=ddp_spawn" in lines[-1] and "hydra/launcher=slurm" in lines[-1]
    assert "Traceback" not in err
    assert not list((tmp_path / "sweep").rglob("*.ckpt"))  # refused before any training


@pytest.mark.slow
def test_multirun_with_ddp_spawn(tmp_path):
    """The local way to sweep multi-device jobs: spawned ranks, one sweep dir, one result per job."""
    args = (
        "-m",
        "trainer=ddp_spawn",
        "trainer.devices=2",
        "data.batch_size=4",
        "data.repeat=2",
        "model.optimizer.lr=1e-4,5e-4",
        *SWEEP_TINY,
    )
    proc = _run(tmp_path, *args)
    if proc.returncode != 0 and "terminated with signal SIGABRT" in proc.stderr:
        # Known intermittent abort of a gloo-spawned CPU rank as it exits after a finished fit (about 1 run
        # in 7 under pytest on 2 cores, never seen outside pytest; under investigation): one clean retry.
        # Every assertion below applies to the retried run.
        shutil.rmtree(tmp_path / "sweep", ignore_errors=True)
        shutil.rmtree(tmp_path / "logs", ignore_errors=True)
        proc = _run(tmp_path, *args)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    _check_only_sweep_written(tmp_path)
    sweep = tmp_path / "sweep"
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1"]
    for num, lr in (("0", "0.0001"), ("1", "0.0005")):
        assert 5 < _val_psnr(sweep / num) < 50
        # the run's name comes from the Hydra job, not from the spawned rank (which has no Hydra config)
        summary = json.loads((sweep / num / "summary.json").read_text())
        assert summary["name"] == f"edsr_baseline_small-liif lr={lr}" and summary["status"] == "completed"


def test_slurm_launcher_config(compose_train, monkeypatch):
    from omegaconf import OmegaConf

    monkeypatch.delenv("SLURM_PARTITION", raising=False)
    cfg = compose_train(
        "hydra/launcher=slurm",
        "experiment=rdn_liif",
        "trainer=ddp",
        "trainer.devices=4",
        "trainer.num_nodes=2",
    )
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert launcher["_target_"].endswith("SlurmLauncher")
    assert launcher["tasks_per_node"] == launcher["gpus_per_node"] == 4  # one task per GPU
    assert launcher["nodes"] == 2 and launcher["partition"] is None
    monkeypatch.setenv("SLURM_PARTITION", "gpu")
    cfg = compose_train("hydra/launcher=slurm", "trainer=ddp")
    assert cfg.hydra.launcher.partition == "gpu"
