"""SLURM pre-emption / time-out on CPU with a simulated SLURM environment (no cluster): Lightning's
``SLURMEnvironment`` auto-requeue saves ``<run>/hpc_ckpt_<n>.ckpt`` on SIGUSR1 and calls
``scontrol requeue <job id>`` (a fake ``scontrol`` here); the requeued job (same command, same run folder)
continues from that checkpoint. What needs a cluster (the real requeue, submitit's USR2) is not tested."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from test_sweeps import SCRIPT

ARGS = [
    "data.repeat=100", "data.batch_size=2", "data.inp_size=16", "data.sample_q=64",
    "data.train_sources=[skimage:astronaut,skimage:rocket]", "data.val_sources=[skimage:chelsea]",
    "model.head.hidden_list=[16,16]", "trainer.accelerator=cpu", "trainer.max_epochs=2",
    "+trainer.num_sanity_val_steps=0", "callbacks.progress_bar=null", "callbacks.quickstart_report=null",
]  # fmt: skip


@pytest.mark.slow
def test_sigusr1_saves_requeues_and_the_requeued_job_continues(tmp_path):
    if not SCRIPT.exists():
        pytest.skip(f"console script not installed: {SCRIPT}")
    bin_dir, calls, run = tmp_path / "bin", tmp_path / "scontrol_calls.txt", tmp_path / "run"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    (bin_dir / "scontrol").chmod(0o755)
    env = {**os.environ, "WANDB_MODE": "disabled", "PATH": f"{bin_dir}:{os.environ['PATH']}",
           "SLURM_NTASKS": "1", "SLURM_JOB_NAME": "train", "SLURM_JOB_ID": "4242", "SLURM_PROCID": "0",
           "SLURM_LOCALID": "0", "SLURM_NODEID": "0"}  # fmt: skip
    cmd = [str(SCRIPT), *ARGS, f"hydra.run.dir={run}"]
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    deadline = time.monotonic() + 240
    while not (run / "checkpoints" / "last.ckpt").exists():  # epoch 0 done: signal during epoch 1
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0][-3000:]
        time.sleep(0.2)
    proc.send_signal(signal.SIGUSR1)
    out = proc.communicate(timeout=240)[0]
    assert proc.returncode == 0, out[-3000:]
    assert "Requeued SLURM job: 4242" in out
    assert calls.read_text().split() == ["requeue", "4242"]
    (hpc,) = run.glob("hpc_ckpt_*.ckpt")
    import torch

    step = torch.load(hpc, map_location="cpu", weights_only=True)["global_step"]
    assert 100 <= step < 200

    # the requeued job: the same command in the same folder continues from hpc_ckpt_1.ckpt
    again = subprocess.run(cmd, cwd=tmp_path, env={**env, "SLURM_RESTART_COUNT": "1"}, capture_output=True,
                           text=True, timeout=300)  # fmt: skip
    assert again.returncode == 0, (again.stdout + again.stderr)[-3000:]
    assert f"Restored all states from the checkpoint at {hpc}" in again.stdout + again.stderr
    assert json.loads((run / "summary.json").read_text())["global_step"] == 200
    assert Path(run / "model.safetensors").is_file()
