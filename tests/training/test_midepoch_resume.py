"""Exact resume from a checkpoint written in the middle of an epoch (``liif_sr.data.resumable``): a run
continued from an ``every_n_train_steps`` checkpoint and a run requeued by SLURM's SIGUSR1 (Lightning's auto-requeue,
a fake ``scontrol``) each continue to the same per-step losses and bit-identical weights as an uninterrupted
run; submitit's SIGUSR2 gets the same checkpoint-then-requeue."""

from __future__ import annotations

import csv
import os
import signal
from pathlib import Path

import lightning as L
import pytest
import torch
from helpers import TINY_DATA, compose_in, one_thread

from liif_sr.training.callbacks.requeue import JobRequeued, RequeueOnSignal, next_hpc_path

# 2 images x repeat 3, batch 2: 3 steps per epoch; a loss row per step; 2 epochs = 6 steps
RUN = [
    *TINY_DATA,
    "data.repeat=3",
    "model.head.hidden_list=[16,16]",
    "trainer.accelerator=cpu",
    "trainer.log_every_n_steps=1",
    "trainer.max_epochs=2",
    "+trainer.num_sanity_val_steps=0",
    "+trainer.limit_val_batches=1",
    "callbacks.quickstart_report=null",
    "callbacks.progress_bar=null",
    "callbacks.val_images=null",
    "export_weights=false",
]


class SignalAt(L.Callback):
    """Test helper: send ``signum`` to this process just before the optimizer step of ``step`` (the moment
    where a checkpoint written by the signal handler itself would not continue exactly)."""

    def __init__(self, step: int, signum: str = "SIGUSR1", once: str | None = None) -> None:
        self.step, self.signum, self.once = step, signal.Signals[signum], once

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if trainer.global_step == self.step:
            if self.once is not None:  # only in the first attempt of a requeued job
                if Path(self.once).exists():
                    return
                Path(self.once).touch()
            os.kill(os.getpid(), self.signum)


def train_in(run_dir: Path, *overrides: str):
    from liif_sr.train import train

    with one_thread():
        return train(compose_in(run_dir, *RUN, *overrides))


def losses(run_dir: Path) -> dict[int, float]:
    with open(run_dir / "csv" / "metrics.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("train/loss_step")]
    steps = [int(r["step"]) for r in rows]
    assert len(steps) == len(set(steps)), f"a step logged twice: {steps}"
    return {int(r["step"]): float(r["train/loss_step"]) for r in rows}


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


#: a numbered checkpoint at step 4: after the first of epoch 1's three batches (mid-epoch)
EVERY_4 = [
    "+callbacks.model_checkpoint.every_n_train_steps=4",
    "callbacks.model_checkpoint.every_n_epochs=null",
]


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    run = tmp_path_factory.mktemp("straight") / "run"
    _, objects = train_in(run, *EVERY_4)
    return run, losses(run), {k: v.clone() for k, v in objects["model"].state_dict().items()}


def test_mid_epoch_checkpoint_continues_exactly(straight, tmp_path):
    """A checkpoint written mid-epoch (``every_n_train_steps``; also Ctrl-C's, a SIGKILL's last survivor)
    continued with ``ckpt_path=``: the rest of the epoch sees the batches the uninterrupted run saw."""
    ckpt = straight[0] / "checkpoints" / "epoch_0001.ckpt"
    state = torch.load(ckpt, weights_only=True)
    assert state["global_step"] == 4
    assert state["loops"]["fit_loop"]["state_dict"]["combined_loader"][0]["batches"] == 1
    run = tmp_path / "continued"
    _, objects = train_in(run, f"ckpt_path={ckpt}")
    assert losses(run) == {k: v for k, v in straight[1].items() if k >= 4}
    assert_same_weights(objects["model"].state_dict(), straight[2])


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch):
    """SLURM's environment and a fake ``scontrol`` that records its arguments."""
    bin_dir, calls = tmp_path / "bin", tmp_path / "scontrol_calls.txt"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    (bin_dir / "scontrol").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    for k, v in {"SLURM_NTASKS": "1", "SLURM_JOB_NAME": "train", "SLURM_JOB_ID": "4242",
                 "SLURM_PROCID": "0", "SLURM_LOCALID": "0", "SLURM_NODEID": "0"}.items():  # fmt: skip
        monkeypatch.setenv(k, v)
    return calls


@pytest.mark.parametrize("step", [4, 2])  # mid-epoch 1; the last step of epoch 0 (validation then runs)
def test_sigusr1_requeue_mid_step_resumes_exactly(straight, tmp_path, fake_slurm, step):
    run = tmp_path / "run"
    signal_at = [
        "+callbacks.signal_at._target_=test_midepoch_resume.SignalAt",
        f"+callbacks.signal_at.step={step}",
    ]
    with pytest.raises(JobRequeued):
        train_in(run, *signal_at)
    assert fake_slurm.read_text().split() == ["requeue", "4242"]
    (hpc,) = run.glob("hpc_ckpt_*.ckpt")
    assert torch.load(hpc, weights_only=True)["global_step"] == step + 1  # the signalled step is completed
    assert max(losses(run)) == step  # the killed segment logged the checkpoint's step
    # the requeued job: the same command in the same folder; Lightning restores hpc_ckpt_1.ckpt
    _, objects = train_in(run)
    assert losses(run) == straight[1]
    assert_same_weights(objects["model"].state_dict(), straight[2])


def test_submitit_usr2_checkpoints_before_its_handler(tmp_path, monkeypatch):
    """submitit's SIGUSR2 handler (requeue + ``sys.exit(-1)``) runs after the hpc checkpoint, at a step end."""
    calls: list[int] = []

    def submitit_handler(signum, frame):  # what submitit's SignalHandler.checkpoint_and_try_requeue ends with
        calls.append(signum)
        assert list(tmp_path.glob("run/hpc_ckpt_*.ckpt")), "the checkpoint comes first"
        raise SystemExit(-1)

    previous = signal.signal(signal.SIGUSR2, submitit_handler)
    try:
        run = tmp_path / "run"
        with pytest.raises(JobRequeued) as stopped:
            train_in(run, "+callbacks.signal_at._target_=test_midepoch_resume.SignalAt",
                     "+callbacks.signal_at.step=1", "+callbacks.signal_at.signum=SIGUSR2")  # fmt: skip
        assert stopped.value.code == -1 and calls == [signal.SIGUSR2]
        assert signal.getsignal(signal.SIGUSR2) == submitit_handler  # given back at the end
    finally:
        signal.signal(signal.SIGUSR2, previous)
    (hpc,) = run.glob("hpc_ckpt_*.ckpt")
    assert torch.load(hpc, weights_only=True)["global_step"] == 2


def test_inert_without_a_handler_and_hpc_names(tmp_path):
    cb = RequeueOnSignal(["SIGUSR2"])
    assert signal.getsignal(signal.SIGUSR2) in (signal.SIG_DFL, None)

    class Trainer:
        pass

    cb.on_train_start(Trainer(), None)  # type: ignore[arg-type]
    assert cb._originals == {} and signal.getsignal(signal.SIGUSR2) == signal.SIG_DFL
    assert next_hpc_path(tmp_path) == tmp_path / "hpc_ckpt_1.ckpt"
    for name in ("hpc_ckpt_1.ckpt", "hpc_ckpt_7.ckpt", "hpc_ckpt_9.ckpt.sha256", "hpc_ckpt_x.ckpt"):
        (tmp_path / name).touch()
    assert next_hpc_path(tmp_path) == tmp_path / "hpc_ckpt_8.ckpt"


def test_epoch_sampler_shards_like_distributed_sampler_and_skips():
    """DDP: each rank's share is torch's DistributedSampler shard (same seed, same epoch); the positions of
    the ranks cover the padded epoch once; a resumed epoch skips exactly the batches done."""
    from torch.utils.data import DistributedSampler

    from liif_sr.data.resumable import EpochSampler, ResumableLoader

    data = list(range(7))
    positions = []
    for rank in range(3):
        sampler = EpochSampler(data, num_replicas=3, rank=rank, seed=11)
        reference = DistributedSampler(data, num_replicas=3, rank=rank, shuffle=True, seed=11)
        sampler.set_epoch(5)
        reference.set_epoch(5)
        keys = list(sampler)
        assert [k.index for k in keys] == list(reference) and all(k.epoch == 5 for k in keys)
        positions += [k.position for k in keys]
    assert sorted(positions) == list(range(9))  # 7 items padded to 3 x 3

    class Keys(list):  # a dataset returning the sample keys
        def __getitem__(self, key):
            return key

    data = Keys(data)
    loader = ResumableLoader(data, batch_size=2, sampler=EpochSampler(data, seed=3), collate_fn=list)
    loader.sampler.set_epoch(2)
    full = list(loader)
    state = {"epoch": 2, "batches": 1, "seed": 3}
    again = ResumableLoader(data, batch_size=2, sampler=EpochSampler(data, seed=0), collate_fn=list)
    again.load_state_dict(state)
    assert list(again) == full[1:] and again.state_dict() == {**state, "batches": 3}
    again.load_state_dict({**state, "batches": 3})  # saved at the epoch's end: the next epoch, whole
    assert again.sampler.epoch == 3 and len(list(again)) == 3


@pytest.mark.slow
def test_submitit_job_checkpoints_is_requeued_and_continues_exactly(straight, tmp_path):
    """``hydra/launcher=submitit_local`` (submitit's own job machinery, no cluster): SIGUSR2 to the running job
    -> hpc checkpoint at the step end, submitit's ``checkpoint()`` + requeue, the restarted job continues from
    the checkpoint; the losses equal the uninterrupted run's."""
    import subprocess
    import sys

    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    sweep, once = tmp_path / "sweep", tmp_path / "signalled"
    src = Path(__file__).resolve().parents[2] / "src"
    env = {
        **os.environ,
        "WANDB_MODE": "disabled",
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(src), str(Path(__file__).parent), str(Path(__file__).parents[1])]),
    }
    cmd = [sys.executable, "-m", "liif_sr.train", "-m", "hydra/launcher=submitit_local", *RUN, *EVERY_4,
           "hydra.launcher.timeout_min=30", f"hydra.sweep.dir={sweep}", f"paths.log_dir={tmp_path}/logs",
           "+callbacks.signal_at._target_=test_midepoch_resume.SignalAt", "+callbacks.signal_at.step=4",
           "+callbacks.signal_at.signum=SIGUSR2", f"+callbacks.signal_at.once={once}"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    logs = "".join(p.read_text() for p in sweep.glob(".submitit/*/*.out")) + proc.stdout + proc.stderr
    assert proc.returncode == 0, logs[-4000:]
    assert once.exists() and "Requeued job" in logs
    job = sweep / "0"
    (hpc,) = job.glob("hpc_ckpt_*.ckpt")
    assert torch.load(hpc, weights_only=True)["global_step"] == 5
    assert f"Restored all states from the checkpoint at {hpc}" in logs
    assert losses(job) == straight[1]


def test_csv_rows_of_a_killed_attempt_are_replaced(tmp_path):
    """``metrics.csv`` of a run continued from a checkpoint at step 3: the killed attempt's rows of steps
    3..5 go when the continued run logs step 3; earlier rows stay."""
    from liif_sr.training.loggers.csv_append import CSVLogger

    first = CSVLogger(save_dir=tmp_path, name="csv", version="")
    for step in range(6):
        first.log_metrics({"train/loss_step": float(step)}, step=step)
    first.save()
    again = CSVLogger(save_dir=tmp_path, name="csv", version="")
    again.log_metrics({"train/loss_step": 30.0}, step=3)
    again.log_metrics({"train/loss_step": 40.0}, step=4)
    again.save()
    with open(tmp_path / "csv" / "metrics.csv", newline="") as f:
        rows = [(int(r["step"]), float(r["train/loss_step"])) for r in csv.DictReader(f)]
    assert rows == [(0, 0.0), (1, 1.0), (2, 2.0), (3, 30.0), (4, 40.0)]
