"""Issue 17: a sweep survives a bad job, its runs are named by what they sweep, the comparison says what it is.

Sweeps run the installed ``liif-sr-train`` in a subprocess with tiny 2-step jobs (see test_sweeps.py), W&B
offline; the W&B records are read back from the offline run files (:mod:`wandb_records`).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from test_sweeps import SCRIPT, SWEEP_TINY, needs_optuna, needs_submitit
from wandb_records import read_job

from liif_sr.evaluation.multirun import failed_jobs
from liif_sr.evaluation.runner import checkpoint_names

TWO_STEPS = [*SWEEP_TINY, "data.repeat=2", "callbacks.step_time.warmup_steps=0"]


def _sweep(tmp_path: Path, *args: str, wandb: bool = True, timeout: int = 400) -> subprocess.CompletedProcess:
    if not SCRIPT.exists():
        pytest.skip(f"console script not installed: {SCRIPT}")
    cmd = [str(SCRIPT), *args, f"paths.log_dir={tmp_path}/logs", f"hydra.sweep.dir={tmp_path}/sweep"]
    env = {**os.environ, "WANDB_MODE": "offline" if wandb else "disabled", "WANDB_SILENT": "true"}
    for var in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        env[var] = str(tmp_path / "wandb_home")
    return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout)


def _summary(job: Path) -> dict:
    return json.loads((job / "summary.json").read_text())


def _last_line(proc: subprocess.CompletedProcess) -> str:
    return proc.stderr.strip().splitlines()[-1]


def test_sweep_survives_a_diverging_job(tmp_path):
    # W&B's flush wait after each checkpoint (for a SIGKILL; none here) at 0.1 s instead of 1 s
    wandb = ["logger=[csv,wandb]", "logger.wandb.flush_interval_s=0.1"]
    proc = _sweep(tmp_path, "-m", "model.optimizer.lr=1e7,1e-4", *wandb, *TWO_STEPS)
    out = (proc.stdout + proc.stderr)[-4000:]
    assert proc.returncode == 1, out  # the number of failed jobs
    sweep = tmp_path / "sweep"
    assert _last_line(proc) == (
        "liif-sr-train: error: 1 of 2 jobs failed; job 0 (edsr_baseline_small-liif lr=1e+07): non-finite loss "
        f"at step 1 (epoch 0); last good checkpoint: none; see {sweep / 'sweep_status.json'}"
    ), out
    assert "Traceback" not in proc.stderr
    failed, done = _summary(sweep / "0"), _summary(sweep / "1")
    assert failed["status"] == "failed" and failed["exit_code"] == 3
    assert failed["reason"].startswith("non-finite loss at step 1")
    assert failed["name"] == "edsr_baseline_small-liif lr=1e+07"
    assert done["status"] == "completed" and done["name"] == "edsr_baseline_small-liif lr=0.0001"
    assert done["val/psnr_best"] == pytest.approx(done["val/psnr"], abs=1e-3) and done["steps_timed"] == 2
    assert (sweep / "1" / "checkpoints" / "best.ckpt").is_file()
    assert not (sweep / "0" / "model.safetensors").exists()
    status = json.loads((sweep / "sweep_status.json").read_text())
    assert (status["jobs"], status["failed"], status["failures"][0]["job"]) == (2, 1, "0")

    # W&B: distinct names carrying the swept value, one group, the failed run failed, one step axis
    bad, good = read_job(sweep / "0"), read_job(sweep / "1")
    assert (bad.name, good.name) == (
        "edsr_baseline_small-liif lr=1e+07",
        "edsr_baseline_small-liif lr=0.0001",
    )
    assert bad.group == good.group == "sweep"
    assert (bad.exit_code, good.exit_code) == (3, 0)
    assert bad.summary["status"] == "failed" and bad.summary["failure"].startswith("non-finite loss")
    assert good.config["sweep/model.optimizer.lr"] == "0.0001"
    assert good.summary["val/psnr_best"] == pytest.approx(good.summary["val/psnr"], abs=1e-4)
    assert good.steps_of("val/psnr") == good.steps_of("val/samples/count") == [1]
    assert good.summary["train/steps_timed"] == 2

    # the comparison: swept values in the row names, the failed job a marked row with its reason
    assert checkpoint_names(str(sweep)) == {"edsr_baseline_small-liif lr=0.0001": str(sweep / "1")}
    ((row, reason),) = failed_jobs(sweep).items()
    assert row == "edsr_baseline_small-liif lr=1e+07 [failed]" and reason.startswith("job 0: non-finite loss")


@pytest.mark.slow
def test_sweep_exit_code_counts_the_failed_jobs(tmp_path):
    proc = _sweep(tmp_path, "-m", "model.optimizer.lr=1e-4,1e8,1e6", *TWO_STEPS, wandb=False)
    assert proc.returncode == 2, (proc.stdout + proc.stderr)[-4000:]
    assert _last_line(proc).startswith(
        "liif-sr-train: error: 2 of 3 jobs failed; job 1 (edsr_baseline_small-liif"
    )
    assert "(and 1 more)" in _last_line(proc)
    sweep = tmp_path / "sweep"
    assert [_summary(sweep / j)["status"] for j in "012"] == ["completed", "failed", "failed"]
    assert (sweep / "0" / "model.safetensors").is_file()


@pytest.mark.slow
def test_single_run_still_stops_with_its_exit_code(tmp_path):
    cmd = [str(SCRIPT), "model.optimizer.lr=1e7", *TWO_STEPS, f"paths.log_dir={tmp_path}/logs"]
    if not SCRIPT.exists():
        pytest.skip(f"console script not installed: {SCRIPT}")
    env = {**os.environ, "WANDB_MODE": "disabled"}
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 3, (proc.stdout + proc.stderr)[-4000:]
    assert _last_line(proc).startswith("liif-sr-train: error: non-finite loss at step 1")


def test_job_stopped_before_its_first_validation_still_gives_a_value(tmp_path):
    """max_time ends the fit in epoch 0 of a run validating every 5 epochs (no validation at all): the job
    validates once, so a sweeper gets a value."""
    tiny = [
        a for a in SWEEP_TINY if not a.startswith(("trainer.check_val", "trainer.max_epochs", "data.repeat"))
    ]
    args = ["-m", "model.optimizer.lr=1e-4", "data.repeat=400", "trainer.max_time=00:00:00:01",
            "trainer.check_val_every_n_epoch=5", "trainer.max_epochs=5", *tiny]  # fmt: skip
    proc = _sweep(tmp_path, *args, wandb=False)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    job = tmp_path / "sweep" / "0"
    summary = _summary(job)
    assert 0 < summary["global_step"] < 400 and summary["status"] == "completed"
    assert 5 < summary["val/psnr"] < 50
    assert "validating once" in (job / "train.log").read_text()


@pytest.mark.slow
@needs_optuna
def test_optuna_study_survives_a_diverging_trial(tmp_path):
    args = [
        "hparams_search=lr_optuna",
        "hydra.sweeper.n_trials=3",
        "model.optimizer.lr=choice(1e7,1e-4)",
        "logger=[csv,wandb]",
        *TWO_STEPS,
    ]
    proc = _sweep(tmp_path, *args)
    sweep = tmp_path / "sweep"
    statuses = {j: _summary(sweep / j) for j in "012"}
    n_failed = sum(s["status"] == "failed" for s in statuses.values())
    assert 0 < n_failed < 3, statuses  # the seeded sampler proposes both values
    assert proc.returncode == n_failed, (proc.stdout + proc.stderr)[-4000:]
    result = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert result["best_params"]["model.optimizer.lr"] == pytest.approx(1e-4)
    assert not math.isnan(result["best_value"])
    names = [read_job(sweep / j).name for j in "012"]  # Optuna's params: lr and gamma
    for job, name in zip("012", names):
        lr = "1e+07" if statuses[job]["status"] == "failed" else "0.0001"
        assert name.startswith(f"edsr_baseline_small-liif lr={lr} gamma=0."), names
    # Optuna told the trial FAIL with the job's reason, and the study went on
    assert "Got 'job failed: non-finite loss at step 1" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
@needs_optuna
def test_optuna_study_where_every_trial_fails(tmp_path):
    args = ["hparams_search=lr_optuna", "hydra.sweeper.n_trials=2", "model.optimizer.lr=choice(1e7,1e8)"]
    proc = _sweep(tmp_path, *args, *TWO_STEPS, wandb=False)
    assert proc.returncode == 2, (proc.stdout + proc.stderr)[-4000:]
    assert _last_line(proc).startswith("liif-sr-train: error: the sweep stopped after 2 failed jobs; first: ")


@pytest.mark.slow
@needs_optuna
def test_optuna_trial_stopped_by_max_time_completes_the_study(tmp_path):
    tiny = [
        a for a in SWEEP_TINY if not a.startswith(("trainer.check_val", "trainer.max_epochs", "data.repeat"))
    ]
    args = ["hparams_search=lr_optuna", "hydra.sweeper.n_trials=1", "data.repeat=400",
            "trainer.max_time=00:00:00:01", "trainer.check_val_every_n_epoch=5", "trainer.max_epochs=5", *tiny]  # fmt: skip
    proc = _sweep(tmp_path, *args, wandb=False)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    result = yaml.safe_load((tmp_path / "sweep" / "optimization_results.yaml").read_text())
    assert 5 < result["best_value"] < 50


@needs_submitit
def test_slurm_dry_run_prints_the_jobs_and_sbatch_options(tmp_path):
    args = ["-m", "hydra/launcher=slurm", "experiment=rdn_liif", "trainer=ddp", "trainer.devices=4",
            "trainer.num_nodes=2", "hydra.launcher.partition=gpu", "model.optimizer.lr=1e-4,5e-4", "dry_run=true"]  # fmt: skip
    proc = _sweep(tmp_path, *args, wandb=False, timeout=120)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    out = proc.stdout
    assert out.startswith(f"dry run: 2 job(s), launcher slurm, into {tmp_path}/sweep; nothing run")
    assert "  run name: rdn-liif lr=0.0001\n" in out and "  run name: rdn-liif lr=0.0005\n" in out
    sbatch = "--nodes=2 --ntasks-per-node=4 --gpus-per-node=4 --cpus-per-task=10 --time=4320 --partition=gpu"
    assert out.count(f"  sbatch {sbatch} ") == 2 and "--signal=USR2@120" in out
    assert "strategy=ddp accelerator=gpu devices=4 num_nodes=2" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wandb_home"] or not any(tmp_path.iterdir())


def test_dry_run_refuses_what_the_launch_would_refuse(tmp_path):
    args = ["-m", "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "seed=1,2", "dry_run=true"]
    proc = _sweep(tmp_path, *args, wandb=False, timeout=120)
    assert proc.returncode == 2, (proc.stdout + proc.stderr)[-4000:]
    assert _last_line(proc).startswith("liif-sr-train: error: trainer.strategy=ddp with several devices")
    assert not (tmp_path / "sweep").exists() and not (tmp_path / "logs").exists()


@pytest.mark.parametrize(
    ("exc", "reason", "code"),
    [
        (
            RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"),
            "RuntimeError: CUDA out of memory.",
            1,
        ),
        (ValueError("bad\nvalue"), "ValueError: bad value", 1),  # one line
    ],
)
def test_a_crashing_job_is_recorded_in_a_sweep_and_raised_alone(
    compose_train, monkeypatch, exc, reason, code
):
    """Any exception of a sweep job (not only the NaN guard) is recorded and the sweep goes on."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import open_dict, read_write

    import liif_sr.train as train_module
    from liif_sr.training.job_failure import FailedJob
    from liif_sr.training.launch import LaunchError

    def crash(cfg):
        raise exc

    monkeypatch.setattr(train_module, "train", crash)
    cfg = compose_train("model.optimizer.lr=5e-4")
    with pytest.raises(type(exc)):  # a single run: raised (the entry prints it, exit code != 0)
        train_module._task(cfg)
    with read_write(cfg.hydra), open_dict(cfg.hydra):
        cfg.hydra.mode = RunMode.MULTIRUN
    HydraConfig().set_config(cfg)
    value = train_module._task(cfg)
    assert isinstance(value, FailedJob)
    with pytest.raises(ValueError, match="job failed: "):
        float(value)
    summary = _summary(Path(cfg.paths.output_dir))
    assert (
        summary["status"] == "failed"
        and summary["exit_code"] == code
        and summary["reason"].startswith(reason)
    )
    # a launch that cannot work for any job stops the sweep instead
    monkeypatch.setattr(train_module, "train", lambda cfg: (_ for _ in ()).throw(LaunchError("no local DDP")))
    with pytest.raises(LaunchError):
        train_module._task(cfg)
