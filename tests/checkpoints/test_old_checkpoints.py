"""Files users already have: a checkpoint written by liif-sr 0.1.0 (before the regrouping of the package)
still loads for inference (weights-only) and continues training with ``resume=`` and ``ckpt_path=``."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from liif_sr import load_model

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "ckpt_v0_1_0" / "last.ckpt"
# the overrides make.py trained it with (so the model config matches)
TINY_V0 = [
    "data.repeat=1",
    "data.batch_size=2",
    "data.inp_size=16",
    "data.sample_q=64",
    "data.train_sources=[skimage:astronaut,skimage:rocket]",
    "model.encoder.n_resblocks=1",
    "model.encoder.n_feats=8",
    "model.head.hidden_list=[16,16]",
    "trainer.accelerator=cpu",
    "callbacks.progress_bar=null",
    "callbacks.quickstart_report=null",
    "export_weights=false",
    "+trainer.num_sanity_val_steps=0",
    "seed=0",
]


def test_v0_checkpoint_is_plain_data_and_loads():
    ckpt = torch.load(FIXTURE, map_location="cpu", weights_only=True)  # no pickled classes of any layout
    assert ckpt["liif_sr"]["version"] == "0.1.0"
    assert [k for k in ckpt["callbacks"] if k.startswith("ModelCheckpoint{")]
    model = load_model(FIXTURE)
    assert model.config["encoder"] == {
        "name": "edsr_baseline",
        "args": {"n_resblocks": 1, "n_feats": 8, "res_scale": 1.0},
    }
    sr = model.upscale(torch.rand(1, 3, 8, 8), (16, 16))
    assert sr.shape == (1, 3, 16, 16) and torch.isfinite(sr).all()
    weights = {k.removeprefix("net."): v for k, v in ckpt["state_dict"].items()}
    for k, v in model.state_dict().items():
        assert torch.equal(v, weights[k]), k


def test_v0_checkpoint_resumes_in_place(run_train, tmp_path):
    old_run = tmp_path / "old_run"
    (old_run / "checkpoints").mkdir(parents=True)
    shutil.copy(FIXTURE, old_run / "checkpoints" / "last.ckpt")
    cfg, (_, objects) = run_train(*TINY_V0, "trainer.max_epochs=2", f"resume={old_run}")
    trainer = objects["trainer"]
    assert trainer.current_epoch == 2 and trainer.global_step == 2  # 1 step restored + 1 new
    last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == 2


def test_v0_checkpoint_continues_with_ckpt_path(run_train):
    _, (_, objects) = run_train(*TINY_V0, "trainer.max_epochs=2", f"ckpt_path={FIXTURE}")
    assert objects["trainer"].global_step == 2
