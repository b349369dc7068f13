"""SIGKILL a real ``liif-sr-train`` process at random moments (and in the middle of a checkpoint write), then
check that ``last.ckpt`` is never corrupt and that ``resume=<run dir>`` finishes with the exact weights of an
uninterrupted run (a checkpoint after every epoch: the kill loses at most the running epoch)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from test_preflight import _main
from test_train import TINY

from liif_sr.training.checkpoint_io import SLOW_WRITE_ENV

EPOCHS, STEPS_PER_EPOCH = 6, 8
ARGS = [
    *TINY,
    "data.repeat=8",  # 16 samples / batch 2 = 8 steps per epoch
    f"trainer.max_epochs={EPOCHS}",
    "trainer.check_val_every_n_epoch=100",  # no validation: keeps each process short
    "+trainer.num_sanity_val_steps=0",
    "callbacks.quickstart_report=null",
    "callbacks.model_checkpoint.every_n_epochs=100",  # numbered checkpoints never; last.ckpt every epoch
    "export_weights=false",
]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != SLOW_WRITE_ENV}
    return {**env, "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0", **extra}


def start(run_dir: Path, *args: str, slow_write: float = 0.0) -> subprocess.Popen:
    where = [f"resume={run_dir}"] if "resume" in args else [f"hydra.run.dir={run_dir}"]
    extra = {SLOW_WRITE_ENV: str(slow_write)} if slow_write else {}
    cmd = [sys.executable, "-m", "liif_sr.train", *ARGS, f"paths.log_dir={run_dir.parent}/logs", *where]
    cmd += [a for a in args if a != "resume"]
    with open(run_dir.parent / f"{run_dir.name}.log", "ab") as log:  # the child keeps its own descriptor
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=_env(**extra))


def finish(proc: subprocess.Popen, timeout: float = 120) -> int:
    return proc.wait(timeout=timeout)


def wait_for(cond, proc: subprocess.Popen, timeout: float = 60) -> bool:
    """Poll ``cond()`` every 5 ms until true (True) or the process exits first (False)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        if proc.poll() is not None:
            return cond()
        time.sleep(0.005)
    raise TimeoutError("condition not reached")


def kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def last_ckpt_ok(run_dir: Path) -> dict | None:
    """``last.ckpt`` is absent, or a complete weights-only checkpoint written at an epoch end."""
    last = run_dir / "checkpoints" / "last.ckpt"
    if not last.exists():
        return None
    ckpt = torch.load(last, weights_only=True)
    assert ckpt["global_step"] % STEPS_PER_EPOCH == 0 and ckpt["global_step"] > 0
    return ckpt


def temp_files(run_dir: Path) -> list[Path]:
    return (
        list((run_dir / "checkpoints").glob(".last.ckpt.*.tmp")) if (run_dir / "checkpoints").is_dir() else []
    )


def assert_same_final_weights(run_dir: Path, reference: dict) -> None:
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == EPOCHS * STEPS_PER_EPOCH
    for k, v in reference["state_dict"].items():
        assert torch.equal(ckpt["state_dict"][k], v), k
    for a, b in zip(
        ckpt["optimizer_states"][0]["state"].values(), reference["optimizer_states"][0]["state"].values()
    ):
        assert torch.equal(a["exp_avg"], b["exp_avg"]) and torch.equal(a["exp_avg_sq"], b["exp_avg_sq"])


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    run = tmp_path_factory.mktemp("killed") / "reference"
    assert finish(start(run)) == 0, (run.parent / "reference.log").read_text()[-3000:]
    return torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)


@pytest.mark.parametrize("seed", [0, 1])
def test_sigkill_at_random_moment_then_resume(tmp_path, reference, seed):
    run = tmp_path / "run"
    proc = start(run)
    wait_for(lambda: (run / "checkpoints" / "last.ckpt").exists(), proc)
    time.sleep(random.Random(seed).uniform(0.0, 1.5))  # somewhere in the following epochs
    kill(proc)
    assert last_ckpt_ok(run) is not None
    assert finish(start(run, "resume")) == 0, (tmp_path / "run.log").read_text()[-3000:]
    assert_same_final_weights(run, reference)
    assert not temp_files(run)


def test_sigkill_during_checkpoint_writes(tmp_path, reference, monkeypatch, capsys):
    run = tmp_path / "run"
    last = run / "checkpoints" / "last.ckpt"
    # 1) killed while the very first last.ckpt is being written: no last.ckpt at all, resume says so
    proc = start(run, slow_write=2.0)
    assert wait_for(lambda: bool(temp_files(run)), proc)
    kill(proc)
    assert temp_files(run) and not last.exists()
    code, err = _main(monkeypatch, capsys, tmp_path, f"resume={run}", *ARGS)  # in-process: a refusal
    assert code == 2, err
    assert f"liif-sr-train: error: resume={run}: no checkpoints/last.ckpt in that run directory" in err
    # 2) a fresh start in the same directory, killed while the 3rd epoch's checkpoint is being written:
    #    the previous last.ckpt (epoch 2) is intact
    proc = start(run, slow_write=0.5)
    assert wait_for(lambda: last.exists() and torch.load(last, weights_only=True)["global_step"] >= 16, proc)
    assert wait_for(lambda: bool(temp_files(run)), proc)
    kill(proc)
    ckpt = last_ckpt_ok(run)
    assert ckpt is not None and 2 * STEPS_PER_EPOCH <= ckpt["global_step"] < EPOCHS * STEPS_PER_EPOCH
    assert temp_files(run)  # the half-written temp file; cleaned up by the next write
    assert finish(start(run, "resume")) == 0, (tmp_path / "run.log").read_text()[-3000:]
    assert_same_final_weights(run, reference)
    assert not temp_files(run)
