"""Resume at the level of the sweep and of one run, with the real ``liif-sr-train`` (issue #17 points 2-4):
``resume=<multirun folder>`` continues each job from its own folder, leaves finished jobs alone and starts
the ones that never ran; a job resumed alone keeps its sweep's W&B group; W&B's ``_step`` continues the
global step; a bare ``resume=<run>`` keeps the run's own overrides (W&B logger, val_scales); a moved or
copied run folder resumes in place. W&B runs offline; its records are read back from the ``.wandb`` files.

``liif-sr-train`` runs in-process here (its console entry, ``liif_sr.train.main``, with ``sys.argv`` set): one
interpreter start-up per call would cost ~10 s of imports each; the console script itself is run as a
process by tests/training/test_sweeps.py and test_sweep_jobs.py, and with DDP below."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from test_sweeps import SWEEP_TINY
from wandb_records import read_run

SCRIPT = Path(sys.executable).parent / "liif-sr-train"
TINY = [
    *SWEEP_TINY,
    "model/encoder=edsr_baseline_small",
    "callbacks.val_images=null",
    "callbacks.model_checkpoint.every_n_epochs=1",
]

# W&B with a 0.1 s flush interval: the logger waits one interval after every checkpoint so that a SIGKILL loses
# no row (tests/training/test_wandb_resume.py tests that wait at the default); no run here is killed
WANDB_FAST = ["logger=[csv,wandb]", "logger.wandb.flush_interval_s=0.1"]


def _cli(tmp_path: Path, *args: str, wandb: bool = False) -> subprocess.CompletedProcess:
    if not SCRIPT.exists():
        pytest.skip(f"console script not installed: {SCRIPT}")
    env = {**os.environ, "WANDB_MODE": "offline" if wandb else "disabled"}
    for var in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        env[var] = str(tmp_path / "wandb_home")
    env.pop("WANDB_RUN_ID", None)
    cmd = [str(SCRIPT), *args]
    return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)


def _ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return proc.stderr


@pytest.fixture
def train_cli(tmp_path, monkeypatch, capsys):
    """``train_cli(*args, wandb=False)``: ``liif-sr-train *args`` in-process in ``tmp_path`` (W&B offline or
    disabled, its folders in ``tmp_path``); asserts exit status 0 and returns what it printed to stderr."""
    import wandb as wandb_lib
    from hydra.core.global_hydra import GlobalHydra

    from liif_sr.train import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    monkeypatch.delenv("WANDB_RUN_ID", raising=False)
    for var in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(var, str(tmp_path / "wandb_home"))

    def run(*args: str, wandb: bool = False) -> str:
        monkeypatch.setenv("WANDB_MODE", "offline" if wandb else "disabled")
        monkeypatch.setattr(sys, "argv", ["liif-sr-train", *args])
        wandb_lib.teardown()  # W&B keeps the first mode of a process in its singleton
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code or 0
        finally:
            wandb_lib.teardown()  # stops the W&B service: completes the offline run files, as a process exit
            GlobalHydra.instance().clear()
        out, err = capsys.readouterr()
        assert code == 0, (out + err)[-4000:]
        return err

    yield run
    wandb_lib.teardown()


def _ckpt(run: Path) -> dict:
    return torch.load(run / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")


def _lr(run: Path) -> float:
    return _ckpt(run)["optimizer_states"][0]["param_groups"][0]["initial_lr"]


def wandb_records(run_file: Path) -> tuple[dict, list[dict]]:
    """(run record fields, history rows) of an offline ``run-<id>.wandb`` file."""
    rec = read_run(run_file)
    return {"id": rec.run_id, "group": rec.group, "name": rec.name}, rec.history


def _segments(job: Path) -> list[tuple[dict, list[dict]]]:
    runs = sorted((job / "wandb").glob("offline-run-*"))
    return [wandb_records(next(r.glob("run-*.wandb"))) for r in runs]


def test_resume_a_sweep_job_by_job(tmp_path, train_cli):
    """3-job LR grid: job 2 never ran, job 1 was resumed alone to the end; ``resume=S`` does the rest."""
    sweep = tmp_path / "S"
    grid = [
        "model.optimizer.lr=1e-4,5e-4,1e-3",
        *TINY,
        *WANDB_FAST,
        f"paths.log_dir={tmp_path}/logs",
    ]
    train_cli("-m", *grid, "trainer.max_epochs=1", f"hydra.sweep.dir={sweep}", wandb=True)
    shutil.rmtree(sweep / "2")  # a job that never started (the sweep was killed before it)
    # one job alone: its own overrides are read back; it keeps the sweep's W&B group
    train_cli(f"resume={sweep}/1", "trainer.max_epochs=2", wandb=True)
    kept = {p: p.read_bytes() for p in (sweep / "1").rglob("*") if p.is_file() and "wandb" not in p.parts}

    err = train_cli(f"resume={sweep}", "trainer.max_epochs=2", wandb=True)
    assert "job 0 continues from epoch 1" in err and "job 2 starts" in err, err
    assert "job 1 finished: 2 of trainer.max_epochs=2 epochs trained (left alone)" in err, err
    for n, lr in enumerate([1e-4, 5e-4, 1e-3]):  # each job its own weights and LR: no cross-over
        assert _lr(sweep / str(n)) == pytest.approx(lr), n
        assert _ckpt(sweep / str(n))["epoch"] == 1
        names = sorted(p.name for p in (sweep / str(n) / "checkpoints").glob("*.ckpt"))
        assert names == ["best.ckpt", "epoch_0000.ckpt", "epoch_0001.ckpt", "last.ckpt"], n
    # the finished job is left alone: checkpoints, metrics, summary, .hydra (train.log gets Hydra's lines)
    now = {p: p.read_bytes() for p in (sweep / "1").rglob("*") if p.is_file() and "wandb" not in p.parts}
    assert {p: b for p, b in now.items() if p.name != "train.log"} == {
        p: b for p, b in kept.items() if p.name != "train.log"
    }
    overrides = yaml.safe_load((sweep / "0" / ".hydra" / "overrides.yaml").read_text())
    assert "model.optimizer.lr=0.0001" in overrides and f"resume={sweep}" in overrides

    # W&B read back: one run per job (its id kept), one group (the sweep's), _step = the global step
    for n in range(3):
        segments = _segments(sweep / str(n))
        assert len(segments) == (1 if n == 2 else 2), n
        ids = {run["id"] for run, _ in segments}
        assert ids == {(sweep / str(n) / "wandb_id.txt").read_text().strip()}
        assert {run["group"] for run, _ in segments} == {"S"}
        steps = [[row["_step"] for row in rows] for _, rows in segments]
        assert all(
            row["_step"] == row["trainer/global_step"]
            for _, rows in segments
            for row in rows
            if "trainer/global_step" in row
        )
        assert all(s == sorted(s) for s in steps)
        if len(segments) == 2:  # the resumed segment continues the step axis (1 step per epoch here)
            assert max(steps[0]) <= 1 and min(steps[1]) >= 1, steps
        assert any("val/psnr" in row for _, rows in segments for row in rows)
    assert len({(sweep / str(n) / "wandb_id.txt").read_text() for n in range(3)}) == 3

    # again: everything finished, nothing touched
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in sweep.rglob("*") if p.is_file()}
    assert "all 3 jobs are finished" in train_cli(f"resume={sweep}", "trainer.max_epochs=2")
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in sweep.rglob("*") if p.is_file()} == before


def test_bare_resume_keeps_the_runs_own_config_and_a_copy_resumes_in_place(tmp_path, train_cli):
    run = tmp_path / "R"
    tiny = [o for o in TINY if not o.startswith("data.batch_size=")]
    first = [
        *tiny,
        *WANDB_FAST,
        "data.val_scales=[2,3]",
        "data.batch_size=1",
        f"paths.log_dir={tmp_path}/logs",
    ]
    train_cli(*first, "trainer.max_epochs=1", f"hydra.run.dir={run}", wandb=True)
    summary = (run / "summary.json").read_bytes()
    config = (run / ".hydra" / "config.yaml").read_bytes()
    # nothing left to train: exit 0, nothing rewritten
    assert "nothing to do" in train_cli(f"resume={run}")
    assert (run / "summary.json").read_bytes() == summary and (
        run / ".hydra" / "config.yaml"
    ).read_bytes() == config

    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    train_cli(f"resume={copy}", "trainer.max_epochs=2", wandb=True)  # bare: no original overrides
    cfg = yaml.safe_load((copy / ".hydra" / "config.yaml").read_text())
    assert cfg["data"]["val_scales"] == [2, 3] and cfg["data"]["batch_size"] == 1 and "wandb" in cfg["logger"]
    assert cfg["trainer"]["max_epochs"] == 2
    names = sorted(p.name for p in (copy / "checkpoints").glob("*.ckpt"))
    assert names == ["best.ckpt", "epoch_0000.ckpt", "epoch_0001.ckpt", "last.ckpt"]  # no last-v1.ckpt
    assert _ckpt(copy)["epoch"] == 1 and _ckpt(run)["epoch"] == 0  # the original is untouched
    metrics = (copy / "csv" / "metrics.csv").read_text()
    assert "val/psnr_x2" in metrics and "val/psnr_x3" in metrics
    train_cli(f"resume={copy}", "trainer.max_epochs=3")
    assert _ckpt(copy)["epoch"] == 2 and not list((copy / "checkpoints").glob("last-v*"))
    assert len(_segments(copy)) == 3 - 1  # W&B logger kept on the bare resume (the 3rd ran with W&B off)

    # a checkpoint of another run continued in a new folder: a new W&B run, the old one is not written to
    other = tmp_path / "other"
    ckpt = copy / "checkpoints" / "epoch_0001.ckpt"
    train_cli(*first, "trainer.max_epochs=3", f"ckpt_path={ckpt}", f"hydra.run.dir={other}", wandb=True)
    (segment,) = _segments(other)
    assert segment[0]["id"] != (copy / "wandb_id.txt").read_text().strip()
    assert len(_segments(copy)) == 2


@pytest.mark.slow
def test_ddp_ranks_resume_with_the_rewritten_command_line(tmp_path):
    """Lightning re-launches ranks 1.. with ``sys.argv`` (the resume's rewritten command line): only rank 0
    locks the folder, every rank continues the same checkpoint."""
    run = tmp_path / "D"
    ddp = [
        *TINY,
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        f"paths.log_dir={tmp_path}/logs",
    ]
    _ok(_cli(tmp_path, *ddp, "trainer.max_epochs=1", f"hydra.run.dir={run}"))
    _ok(_cli(tmp_path, f"resume={run}", "trainer.max_epochs=2"))
    assert _ckpt(run)["epoch"] == 1 and _ckpt(run)["global_step"] == 2  # 1 step per epoch (2 images, 2 ranks)
    assert not (tmp_path / "logs" / "train" / "runs").exists()  # no rank wrote a run folder of its own
