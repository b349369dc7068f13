"""The W&B side of a resume (issue #17 point 4): offline, a SIGKILL of the whole process group keeps the
history logged up to a second before it; W&B's ``_step`` is the trainer's global step, so a resumed segment
continues the step axis; a value logged for an earlier step is kept (in the current row), not dropped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from test_resume_sweep import wandb_records

pytest.importorskip("wandb")

SEGMENT = textwrap.dedent(
    """
    import os, signal, sys, time
    from liif_sr.training.loggers.wandb_run import WandbLogger

    first, last, kill = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "kill"
    lg = WandbLogger(project="t", save_dir=sys.argv[1], id="seg12345", resume="allow", offline=True)
    for step in range(first, last + 1):
        lg.log_metrics({"train/loss": 1.0 / (step + 1)}, step=step)
        lg.log_metrics({"val/psnr": 20.0 + step}, step=step)
    lg.log_metrics({"late": 1.0}, step=first)  # an earlier step: kept in the current row
    if kill:
        time.sleep(2.5)  # more than flush_interval_s (1 s), far less than W&B's default 15 s
        os.killpg(0, signal.SIGKILL)  # the trainer and the wandb-core service together (a cluster kill)
    lg.experiment.finish()
    """
)


def _wandb_env(tmp_path: Path) -> dict[str, str]:
    env = {"WANDB_MODE": "offline"}
    for var in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        env[var] = str(tmp_path / "wandb_home")
    return env


def _resumed_in_process(monkeypatch, tmp_path: Path, script: str, first: int, last: int) -> None:
    """The segment that is not killed runs ``script`` in this process (a process of its own would only add
    its start-up): W&B offline, then torn down, which completes the run file as a process exit does."""
    import wandb

    for var, value in _wandb_env(tmp_path).items():
        monkeypatch.setenv(var, value)
    monkeypatch.delenv("WANDB_RUN_ID", raising=False)
    monkeypatch.setattr(sys, "argv", ["-c", str(tmp_path), str(first), str(last), "end"])
    wandb.teardown()  # W&B keeps the first mode of a process in its singleton
    try:
        exec(compile(script, "<segment>", "exec"), {"__name__": "__main__"})
    finally:
        wandb.teardown()


def _segment(tmp_path: Path, first: int, last: int, kill: bool) -> int:
    env = {**os.environ, **_wandb_env(tmp_path), "PYTHONPATH": os.pathsep.join(sys.path)}
    args = [sys.executable, "-c", SEGMENT, str(tmp_path), str(first), str(last), "kill" if kill else "end"]
    proc = subprocess.run(args, env=env, start_new_session=True, capture_output=True, timeout=120)
    return proc.returncode


def test_sigkill_keeps_history_and_resumed_segment_continues_step(tmp_path, monkeypatch):
    assert _segment(tmp_path, 0, 5, kill=True) == -signal.SIGKILL
    _resumed_in_process(monkeypatch, tmp_path, SEGMENT, 4, 8)  # resumed from a checkpoint at step 4
    files = [next(r.glob("run-*.wandb")) for r in sorted((tmp_path / "wandb").glob("offline-run-*"))]
    assert len(files) == 2
    killed, resumed = (wandb_records(f)[1] for f in files)
    assert files[0].stat().st_size > 7  # W&B's default flush interval left only the 7-byte header
    assert [r["_step"] for r in killed] == [0, 1, 2, 3, 4, 5][: len(killed)] and len(killed) >= 5
    assert [r["_step"] for r in resumed] == [4, 5, 6, 7, 8]
    assert all(r["trainer/global_step"] == r["_step"] and "val/psnr" in r for r in resumed)
    assert "late" in resumed[-1]  # logged for step 4 after step 8: kept, in step 8's row


CHECKPOINTED = textwrap.dedent(
    """
    import os, signal, sys
    from liif_sr.training.loggers.wandb_run import WandbLogger

    first, last, kill = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "kill"
    lg = WandbLogger(project="t", save_dir=sys.argv[1], id="ckp12345", resume="allow", offline=True)
    for step in range(first, last + 1):
        lg.log_metrics({"train/loss": 1.0 / (step + 1)}, step=step)
        lg.log_metrics({"lr": 0.1}, step=step)
    lg.after_save_checkpoint(None)  # what ModelCheckpoint calls after each checkpoint
    if kill:
        lg.log_metrics({"train/loss_epoch": 0.5}, step=last)  # after the checkpoint, for its step: next row
        os.kill(os.getpid(), signal.SIGKILL)  # right after the checkpoint; W&B's service writes what it got
    lg.experiment.finish()
    """
)


def test_sigkill_right_after_a_checkpoint_keeps_its_step_and_the_join_is_continuous(tmp_path, monkeypatch):
    """The open row of the checkpoint's step is committed with the checkpoint: a SIGKILL right after it
    keeps the history up to that step, and the segment resumed from it continues without gap or repeat."""
    env = {**os.environ, **_wandb_env(tmp_path), "PYTHONPATH": os.pathsep.join(sys.path)}
    args = [sys.executable, "-c", CHECKPOINTED, str(tmp_path), "0", "5", "kill"]
    assert subprocess.run(args, env=env, capture_output=True, timeout=120).returncode == -signal.SIGKILL
    _resumed_in_process(monkeypatch, tmp_path, CHECKPOINTED, 6, 8)
    files = [next(r.glob("run-*.wandb")) for r in sorted((tmp_path / "wandb").glob("offline-run-*"))]
    killed, resumed = (wandb_records(f)[1] for f in files)
    assert [r["_step"] for r in killed] == [0, 1, 2, 3, 4, 5]  # reaches the checkpoint's step
    assert all("lr" in r and "train/loss" in r for r in killed)  # every value of the committed rows
    joined = [r["_step"] for r in killed + resumed]
    assert joined == list(range(9))  # one continuous axis: no gap, no step twice
