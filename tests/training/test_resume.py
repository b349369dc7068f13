"""Exact resume: a run stopped after 2 epochs and continued to 4 equals a straight 4-epoch run (losses, LR,
weights); clear errors for missing checkpoints; weights-only checkpoints; atomic writes; the NaN guard."""

from __future__ import annotations

import csv
import json
import random
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import compose_in
from omegaconf import OmegaConf
from test_train import TINY

from liif_sr.errors import UserError
from liif_sr.training.callbacks.finite_loss import NonFiniteLossError
from liif_sr.training.callbacks.model_checkpoint import ModelCheckpoint
from liif_sr.training.callbacks.rng_state import RNG_KEY, collect_rng_states, restore_rng_states
from liif_sr.training.checkpoint_io import AtomicCheckpointIO, trainer_plugins

# 4 steps per epoch, a loss row per step, validation every 2nd epoch, LR decays at epochs 1 and 3
EXACT = [
    *TINY,
    "data.repeat=4",
    "trainer.log_every_n_steps=1",
    "trainer.check_val_every_n_epoch=2",
    "callbacks.quickstart_report=null",
    "callbacks.model_checkpoint.every_n_epochs=2",
    "model.scheduler.milestones=[1,3]",
    "model.scheduler.gamma=0.5",
    "model.optimizer.lr=5e-4",
    "export_weights=false",
]
FAST = ["+trainer.num_sanity_val_steps=0"]  # where the sanity check adds nothing to the test


@pytest.fixture(scope="module", autouse=True)
def small_validation(tmp_path_factory):
    """Validate on a 96x96 crop of ``coffee`` (the full image dominates these runs); one torch thread."""
    from PIL import Image
    from skimage import data

    path = tmp_path_factory.mktemp("val") / "coffee_crop.png"
    Image.fromarray(data.coffee()[100:196, 200:296]).save(path)
    EXACT.append(f"data.val_sources=[{path}]")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    EXACT.remove(f"data.val_sources=[{path}]")


def train_in(run_dir: Path, *overrides: str):
    from liif_sr.train import train

    return train(compose_in(run_dir, *overrides))


def read_metrics(run_dir: Path, column: str) -> dict[int, float]:
    with open(run_dir / "csv" / "metrics.csv", newline="") as f:
        return {int(r["step"]): float(r[column]) for r in csv.DictReader(f) if r.get(column)}


@pytest.fixture(scope="module")
def straight_and_resumed(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    _, straight = train_in(root / "straight", *EXACT, "trainer.max_epochs=4")
    train_in(root / "split", *EXACT, "trainer.max_epochs=2")
    first_half = read_metrics(root / "split", "train/loss_step")
    # what `resume=<run dir>` does: hydra.run.dir follows `resume` (checked below), last.ckpt is continued
    _, resumed = train_in(root / "split", *EXACT, "trainer.max_epochs=4", f"resume={root / 'split'}")
    return root, straight, resumed, first_half


def test_resume_equals_straight_run(straight_and_resumed):
    root, straight, resumed, first_half = straight_and_resumed
    a, b = root / "straight", root / "split"
    loss_a, loss_b = read_metrics(a, "train/loss_step"), read_metrics(b, "train/loss_step")
    assert sorted(loss_a) == list(range(16)) and sorted(first_half) == list(range(8))
    assert sorted(loss_b) == list(range(16))  # metrics.csv of the resumed run keeps the first half
    for step in range(16):
        assert loss_b[step] == pytest.approx(loss_a[step], abs=1e-6), f"step {step}"
    wa, wb = straight["model"].state_dict(), resumed["model"].state_dict()
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
    assert resumed["trainer"].global_step == 16 and resumed["trainer"].current_epoch == 4


def test_a_resume_with_nothing_left_rewrites_nothing(straight_and_resumed):
    """API path (``train(cfg)``): a continued run that already reached its limits is left as it is."""
    root = straight_and_resumed[0]
    split = root / "split"
    files = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in split.rglob("*") if p.is_file()}
    metrics, objects = train_in(split, *EXACT, "trainer.max_epochs=4", f"resume={split}")
    assert objects == {} and metrics.get("val/psnr") == pytest.approx(
        json.loads((split / "summary.json").read_text())["val/psnr"]
    )
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in split.rglob("*") if p.is_file()} == files
    with pytest.raises(UserError, match="trainer.max_epochs=3 is below the 4 epochs the run has trained"):
        train_in(split, *EXACT, "trainer.max_epochs=3", f"resume={split}")


def test_lr_schedule_restored_without_double_decay(straight_and_resumed):
    root = straight_and_resumed[0]
    lr_a, lr_b = read_metrics(root / "straight", "lr-Adam"), read_metrics(root / "split", "lr-Adam")
    base = 5e-4  # EXACT: lr 5e-4, milestones [1, 3], gamma 0.5, logged at each epoch start
    assert lr_a == pytest.approx({0: base, 4: base / 2, 8: base / 2, 12: base / 4})
    assert lr_b == pytest.approx(lr_a)
    opt = straight_and_resumed[2]["trainer"].optimizers[0]
    assert opt.param_groups[0]["lr"] == pytest.approx(base / 4)


def test_checkpoints_are_weights_only_real_files_with_rng(straight_and_resumed):
    ckpts = straight_and_resumed[0] / "split" / "checkpoints"
    names = ["best.ckpt", "epoch_0001.ckpt", "epoch_0003.ckpt", "last.ckpt"]
    assert sorted(p.name for p in ckpts.iterdir()) == sorted([*names, *(f"{n}.sha256" for n in names)])
    last = ckpts / "last.ckpt"
    assert last.is_file() and not last.is_symlink()
    ckpt = torch.load(last, weights_only=True)
    assert ckpt["global_step"] == 16 and ckpt["epoch"] == 3
    states = ckpt[RNG_KEY]["per_rank"]
    assert len(states) == 1 and states[0]["torch"].dtype == torch.uint8
    assert ckpt["lr_schedulers"][0]["last_epoch"] == 4 and ckpt["lr_schedulers"][0]["milestones"]
    assert not list(ckpts.glob(".*.tmp"))


def test_last_ckpt_every_epoch(tmp_path):
    """``last.ckpt`` is refreshed after every epoch although numbered checkpoints come every 100 epochs."""
    from liif_sr.train import train

    cfg = compose_in(
        tmp_path / "run",
        *EXACT,
        *FAST,
        "trainer.max_epochs=1",
        "callbacks.model_checkpoint.every_n_epochs=100",
    )
    train(cfg)
    ckpts = tmp_path / "run" / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == ["last.ckpt", "last.ckpt.sha256"]
    assert torch.load(ckpts / "last.ckpt", weights_only=True)["global_step"] == 4


def test_same_seed_same_losses(tmp_path):
    runs = [train_in(tmp_path / f"run{i}", *EXACT, *FAST, "trainer.max_epochs=1")[1] for i in range(2)]
    la, lb = (read_metrics(tmp_path / f"run{i}", "train/loss_step") for i in range(2))
    assert len(la) == 4 and la == lb
    wa, wb = (r["model"].state_dict() for r in runs)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_resume_and_ckpt_path_errors(tmp_path):
    from liif_sr.train import train

    with pytest.raises(UserError, match=r"ckpt_path=last: no checkpoints/last\.ckpt in this run directory"):
        train(compose_in(tmp_path / "fresh", *TINY, "ckpt_path=last"))
    (tmp_path / "old").mkdir()
    with pytest.raises(UserError, match=r"resume=.*old: no checkpoints/last\.ckpt in that run directory"):
        train(compose_in(tmp_path / "old", *TINY, f"resume={tmp_path / 'old'}"))
    with pytest.raises(UserError, match="file not found"):
        train(compose_in(tmp_path / "x", *TINY, f"ckpt_path={tmp_path / 'nope.ckpt'}"))


def test_resume_sets_run_dir():
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_module("liif_sr.conf", version_base="1.3"):
        cfg = compose("train", overrides=["resume=/somewhere/run7"], return_hydra_config=True)
        fresh = compose("train", return_hydra_config=True)
    GlobalHydra.instance().clear()
    assert cfg.hydra.run.dir == "/somewhere/run7"
    assert "/train/runs/" in fresh.hydra.run.dir


@pytest.mark.parametrize(("every", "save_on_exception"), [(None, False), (100, True)])
def test_nan_guard_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch, every, save_on_exception):
    """Checked every step (CPU default) or lazily (GPU style: at epoch end / before any checkpoint write)."""
    from liif_sr.training.module import SRTrainingModule

    step_fn = SRTrainingModule.training_step

    def poisoned(self, batch, batch_idx):  # step 6 (epoch 1) returns NaN: its backward makes the weights NaN
        loss = step_fn(self, batch, batch_idx)
        return loss * float("nan") if self.global_step == 6 else loss

    monkeypatch.setattr(SRTrainingModule, "training_step", poisoned)
    run = tmp_path / "run"
    every_arg = "null" if every is None else str(every)
    with pytest.raises(NonFiniteLossError) as info:
        train_in(
            run,
            *EXACT,
            *FAST,
            "trainer.max_epochs=3",
            f"callbacks.finite_loss.check_every_n_steps={every_arg}",
            f"+callbacks.model_checkpoint.save_on_exception={save_on_exception}",
        )
    last = run / "checkpoints" / "last.ckpt"
    assert str(info.value) == f"non-finite loss at step 6 (epoch 1); last good checkpoint: {last}"
    assert info.value.exit_code == 3
    ckpt = torch.load(last, weights_only=True)
    assert ckpt["global_step"] == 4  # written after epoch 0; epoch 1's checkpoint was never written
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point())
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["last.ckpt", "last.ckpt.sha256"]
    assert not (run / "model.safetensors").exists()


def test_rng_states_roundtrip_weights_only(tmp_path):
    torch.manual_seed(3)
    np.random.seed(3)
    random.seed(3)
    states = collect_rng_states()
    expected = (torch.rand(5), np.random.rand(5), [random.random() for _ in range(5)])
    torch.save({"s": states}, tmp_path / "s.pt")
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    restore_rng_states(torch.load(tmp_path / "s.pt", weights_only=True)["s"])
    assert torch.equal(torch.rand(5), expected[0])
    assert np.array_equal(np.random.rand(5), expected[1])
    assert [random.random() for _ in range(5)] == expected[2]


def test_atomic_checkpoint_io(tmp_path):
    io = AtomicCheckpointIO()
    path = tmp_path / "ck" / "last.ckpt"
    io.save_checkpoint({"a": torch.ones(3)}, path)
    (path.parent / ".last.ckpt.999.tmp").write_bytes(b"half")  # left by a process killed mid-write
    with pytest.raises(Exception):  # noqa: B017 - torch.save fails half-way: the old file must survive
        io.save_checkpoint({"a": torch.zeros(3), "bad": lambda: None}, path)
    assert torch.equal(torch.load(path, weights_only=True)["a"], torch.ones(3))
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt", "last.ckpt.sha256"]
    io.save_checkpoint({"a": torch.zeros(3)}, path)
    assert torch.equal(io.load_checkpoint(path, weights_only=True)["a"], torch.zeros(3))


def test_trainer_plugins_keeps_configured_plugins():
    from lightning.fabric.plugins.environments import LightningEnvironment
    from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

    assert [type(p) for p in trainer_plugins(OmegaConf.create({"max_epochs": 1}))] == [AtomicCheckpointIO]
    env = {"_target_": "lightning.fabric.plugins.environments.LightningEnvironment"}
    made = trainer_plugins(OmegaConf.create({"plugins": [env]}))
    assert [type(p) for p in made] == [LightningEnvironment, AtomicCheckpointIO]
    own = {"_target_": "lightning.fabric.plugins.io.torch_io.TorchCheckpointIO"}
    assert [type(p) for p in trainer_plugins(OmegaConf.create({"plugins": own}))] == [TorchCheckpointIO]


def test_model_checkpoint_state_key_is_lightnings():
    from lightning.pytorch.callbacks import ModelCheckpoint as LightningModelCheckpoint

    ours, theirs = ModelCheckpoint(every_n_epochs=100), LightningModelCheckpoint(every_n_epochs=100)
    assert ours.state_key == theirs.state_key and re.match(r"^ModelCheckpoint\{", ours.state_key)
