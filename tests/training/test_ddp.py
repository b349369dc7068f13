"""Multi-process training: 2-rank DDP on CPU (gloo), global batch size, per-rank sampling, launch checks.

``strategy=ddp`` re-executes ``sys.argv`` for rank 1, so inside pytest it would start a second pytest
session: the DDP run is a subprocess of ``python -m liif_sr.train`` with a timeout instead.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import open_dict, read_write

from liif_sr.data.datamodule import RandomScaleDataModule
from liif_sr.errors import UserError
from liif_sr.training.launch import check_launch

# one training step per rank (4 samples, global batch 4 = 2 per rank); validation at 3 scales = 3 items,
# an odd count, so the two ranks validate unequal shares
DDP_TINY = [
    "data.repeat=2",
    "data.batch_size=4",
    "data.inp_size=16",
    "data.sample_q=64",
    "data.train_sources=[skimage:astronaut,skimage:rocket]",
    "data.val_sources=[skimage:chelsea]",
    "data.val_scales=[2,3,4]",
    "model.val_scales=[2,3,4]",
    "model.encoder.n_resblocks=1",
    "model.encoder.n_feats=8",
    "model.head.hidden_list=[16,16]",
    "trainer.accelerator=cpu",
    "trainer.max_epochs=1",
    "trainer.check_val_every_n_epoch=1",
    "+trainer.num_sanity_val_steps=0",
    "callbacks.progress_bar=null",
]


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_ddp_two_ranks_match_single_process(tmp_path, compose_train):
    run_dir = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "liif_sr.train",
        "trainer=ddp",
        "trainer.devices=2",
        *DDP_TINY,
        f"paths.log_dir={tmp_path}/logs",
        f"hydra.run.dir={run_dir}",
    ]
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "MEMBER: 2/2" in out  # rank 1 joined the process group

    # one run directory, written by rank 0 only: no second run / sweep dir, one CSV version, one report
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    files = {p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*") if p.is_file()}
    assert {p for p in files if not p.startswith("checkpoints/")} == {
        ".hydra/config.yaml",
        ".hydra/hydra.yaml",
        ".hydra/overrides.yaml",
        "csv/hparams.yaml",
        "csv/metrics.csv",
        "model.safetensors",
        "quickstart_result.json",
        "sample_x4.png",
        "summary.json",  # step_time callback, rank 0 only
        "train.log",
    }
    assert "checkpoints/last.ckpt" in files
    val_rows = [r for r in _csv_rows(run_dir / "csv" / "metrics.csv") if r["val/psnr"]]
    assert len(val_rows) == 1

    # the same weights validated in one process give the same PSNR (every item counted exactly once)
    cfg = compose_train(*[o for o in DDP_TINY if not o.startswith("+trainer")])
    dm, model = instantiate(cfg.data, _convert_="all"), instantiate(cfg.model, _convert_="all")
    trainer = L.Trainer(
        accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False
    )
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    model.load_state_dict(ckpt["state_dict"])
    (single,) = trainer.validate(model, datamodule=dm)
    for key in ("val/psnr_x2", "val/psnr_x3", "val/psnr_x4", "val/psnr"):
        assert float(val_rows[0][key]) == pytest.approx(single[key], abs=1e-3), key


def _fake_trainer(world: int, rank: int) -> SimpleNamespace:
    return SimpleNamespace(world_size=world, global_rank=rank)


def test_global_batch_size_and_per_rank_sampling():
    def first_sample(world: int, rank: int) -> tuple[RandomScaleDataModule, torch.Tensor]:
        dm = RandomScaleDataModule(
            train_sources=["skimage:astronaut"],
            val_sources=["skimage:chelsea"],
            inp_size=16,
            sample_q=64,
            batch_size=16,
            val_scales=[2, 3, 4],
        )
        dm.trainer = _fake_trainer(world, rank)
        L.seed_everything(7, verbose=False)
        dm.setup("fit")
        return dm, dm.train_set[0]["coord"]

    dm0, c0 = first_sample(4, 0)
    dm1, c1 = first_sample(4, 1)
    assert dm0.batch_size_per_device == dm1.batch_size_per_device == 4  # global 16 over 4 devices
    assert not torch.equal(c0, c1)  # ranks draw their own queries / crops / scales
    assert torch.equal(first_sample(4, 1)[1], c1)  # ... reproducibly
    assert os.environ["PL_GLOBAL_SEED"] == "7"  # the DistributedSampler seed stays the same on all ranks
    with pytest.raises(ValueError, match="not divisible"):
        first_sample(3, 0)

    # validation: 1 image x 3 scales over 2 ranks, every item exactly once (no padding repeats)
    shares = []
    for rank in (0, 1):
        dm, _ = first_sample(2, rank)
        shares.append(list(dm.val_dataloader().sampler))
    assert shares == [[0, 2], [1]]


def test_paper_batch_semantics_in_configs(compose_train):
    cfg = compose_train("experiment=rdn_liif", "trainer=ddp", "trainer.devices=4")
    assert cfg.data.batch_size == 16  # the paper's global batch; 4 per GPU
    assert cfg.trainer.strategy == "ddp" and cfg.trainer.devices == 4
    cfg = compose_train("trainer=ddp_spawn")
    assert cfg.trainer.strategy == "ddp_spawn" and cfg.trainer.devices == 2


def _set_launch(cfg, mode: RunMode, launcher: str = "basic") -> None:
    with read_write(cfg.hydra), open_dict(cfg.hydra):
        cfg.hydra.mode = mode
        cfg.hydra.runtime.choices["hydra/launcher"] = launcher
    HydraConfig().set_config(cfg)


@pytest.mark.parametrize(
    ("overrides", "mode", "launcher", "refused"),
    [
        (["trainer=ddp", "trainer.devices=2"], RunMode.MULTIRUN, "basic", True),
        (["trainer=ddp", "trainer.devices=2"], RunMode.MULTIRUN, "submitit_local", True),
        (["trainer=ddp", "trainer.devices=1", "trainer.num_nodes=2"], RunMode.MULTIRUN, "basic", True),
        (["trainer=ddp", "trainer.devices=2"], RunMode.RUN, "basic", False),
        (["trainer=ddp", "trainer.devices=4"], RunMode.MULTIRUN, "slurm", False),
        (["trainer=ddp_spawn"], RunMode.MULTIRUN, "basic", False),
        (["trainer=ddp", "trainer.devices=1"], RunMode.MULTIRUN, "basic", False),
    ],
)
def test_check_launch(compose_train, overrides, mode, launcher, refused):
    cfg = compose_train(*overrides)
    _set_launch(cfg, mode, launcher)
    if refused:
        with pytest.raises(UserError, match="ddp_spawn for local sweeps"):
            check_launch(cfg)
    else:
        check_launch(cfg)
