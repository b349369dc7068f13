"""``resume=`` continues from the checkpoint that trained furthest (training/resume.py ``furthest_checkpoint``).

A job killed after its first numbered checkpoint but before ``last.ckpt`` existed used to start from scratch
(and re-log steps 0.. into its W&B run); a requeued job's ``hpc_ckpt`` further than ``last.ckpt`` wins; a
damaged ``last.ckpt`` is still refused with the newest intact checkpoint named.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from liif_sr.errors import UserError
from liif_sr.training import integrity
from liif_sr.training.resume import furthest_checkpoint, resolve_ckpt_path


def _ckpt(path: Path, step: int, sidecar: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"global_step": step, "epoch": step // 10}, path)
    if sidecar:
        integrity.write_sidecar(path, [integrity.digest(path)])
    return path


def _cfg(run: Path, **extra) -> object:
    return OmegaConf.create(
        {"resume": str(run), "ckpt_path": None, "paths": {"output_dir": str(run)}, **extra}
    )


def test_numbered_checkpoint_without_last(tmp_path):
    run = tmp_path / "run"
    _ckpt(run / "checkpoints" / "epoch_0000.ckpt", 25)
    assert furthest_checkpoint(run) == run / "checkpoints" / "epoch_0000.ckpt"
    assert resolve_ckpt_path(_cfg(run)) == str(run / "checkpoints" / "epoch_0000.ckpt")


def test_last_wins_a_tie_and_the_furthest_wins(tmp_path):
    run = tmp_path / "run"
    _ckpt(run / "checkpoints" / "epoch_0001.ckpt", 50)
    _ckpt(run / "checkpoints" / "best.ckpt", 50)
    _ckpt(run / "checkpoints" / "last.ckpt", 50)
    assert resolve_ckpt_path(_cfg(run)) == str(run / "checkpoints" / "last.ckpt")
    _ckpt(run / "checkpoints" / "epoch_0002.ckpt", 75)  # killed before last.ckpt was refreshed
    assert resolve_ckpt_path(_cfg(run)) == str(run / "checkpoints" / "epoch_0002.ckpt")
    _ckpt(run / "hpc_ckpt_1.ckpt", 80, sidecar=False)  # SLURM's requeue checkpoint (no sidecar)
    assert resolve_ckpt_path(_cfg(run)) == str(run / "hpc_ckpt_1.ckpt")


def test_a_damaged_numbered_checkpoint_is_skipped(tmp_path):
    run = tmp_path / "run"
    _ckpt(run / "checkpoints" / "last.ckpt", 25)
    bad = _ckpt(run / "checkpoints" / "epoch_0001.ckpt", 50)
    bad.write_bytes(bad.read_bytes()[:-8] + b"\0" * 8)
    assert resolve_ckpt_path(_cfg(run)) == str(run / "checkpoints" / "last.ckpt")


def test_a_damaged_last_is_still_refused(tmp_path):
    run = tmp_path / "run"
    _ckpt(run / "checkpoints" / "epoch_0000.ckpt", 25)
    last = _ckpt(run / "checkpoints" / "last.ckpt", 50)
    last.write_bytes(last.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(UserError, match="damaged.*epoch_0000"):
        resolve_ckpt_path(_cfg(run))


def test_nothing_to_continue(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    with pytest.raises(UserError, match="no checkpoints/last.ckpt"):
        resolve_ckpt_path(_cfg(run))


def test_a_fresh_folder_starts_and_a_requeued_one_continues(tmp_path):
    run = tmp_path / "run"
    cfg = OmegaConf.create({"resume": None, "ckpt_path": None, "paths": {"output_dir": str(run)}})
    _ckpt(run / "checkpoints" / "last.ckpt", 50)
    assert resolve_ckpt_path(cfg) is None  # no hpc checkpoint: not a requeued job
    _ckpt(run / "hpc_ckpt_1.ckpt", 30, sidecar=False)
    assert resolve_ckpt_path(cfg) == str(run / "checkpoints" / "last.ckpt")  # last.ckpt is further
    _ckpt(run / "hpc_ckpt_2.ckpt", 60, sidecar=False)
    assert resolve_ckpt_path(cfg) == str(run / "hpc_ckpt_2.ckpt")
