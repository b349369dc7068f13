"""Experiment tracking: W&B offline runs (metrics, config, sample images, also to TensorBoard), resumed runs
keep their W&B id, sweep grouping. No network: W&B runs in offline mode.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_train import TINY
from wandb_records import read_job, read_run

from liif_sr.training.loggers.wandb_run import ID_FILE, prepare_wandb, read_run_id

pytest.importorskip("wandb")

RUN = [*TINY, "trainer.check_val_every_n_epoch=1", "callbacks.quickstart_report=null"]


@pytest.fixture
def wandb_offline(monkeypatch, tmp_path):
    """W&B in offline mode (the suite's default is disabled), its config/cache dirs in tmp_path."""
    import wandb

    monkeypatch.setenv("WANDB_MODE", "offline")
    for var in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(var, str(tmp_path / "wandb_home"))
    monkeypatch.delenv("WANDB_OFFLINE", raising=False)
    monkeypatch.delenv("WANDB_RUN_ID", raising=False)
    wandb.teardown()  # W&B keeps the first mode of a process in its singleton: an earlier disabled run's
    yield
    if wandb.run is not None:
        wandb.finish()
    wandb.teardown()


def _offline_runs(run_dir: Path) -> list[Path]:
    return sorted((run_dir / "wandb").glob("offline-run-*"))


def _train(run_train, *overrides: str):
    import wandb

    # TensorBoard too: the sample-image callback serves both loggers
    # W&B's flush wait after each checkpoint (for a SIGKILL; none here) at 0.1 s instead of 1 s
    logger = ["logger=[wandb,tensorboard]", "logger.wandb.flush_interval_s=0.1"]
    cfg, (metrics, objs) = run_train(*RUN, *logger, *overrides)
    wandb.finish()  # what liif-sr-train does after every job
    wandb.teardown()  # stop the W&B service: it completes the offline run files (as a process exit does)
    return Path(cfg.paths.output_dir), metrics


def _config_and_summary(run_file: Path) -> tuple[dict, dict]:
    """The config and the final summary of an offline ``run-<id>.wandb`` file."""
    rec = read_run(run_file)
    return rec.config, rec.summary


def _tensorboard_images(run_dir: Path) -> dict[str, list]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tensorboard")).Reload()
    return {tag: events.Images(tag) for tag in events.Tags()["images"]}


def test_wandb_offline_run_and_resume(run_train, wandb_offline):
    pytest.importorskip("tensorboard")
    out, metrics = _train(run_train, "trainer.max_epochs=1", "callbacks.step_time.warmup_steps=0")
    run_id = read_run_id(out)
    assert run_id and len(run_id) == 8
    (first,) = _offline_runs(out)
    assert first.name.endswith(f"-{run_id}")
    history = (first / f"run-{run_id}.wandb").read_bytes()
    for key in ("train/loss", "val/psnr_x4", "val/psnr", "lr-Adam", "model/params", "val/samples"):
        assert key.encode() in history, key
    assert b"edsr_baseline_small-liif" in history  # run name = <encoder>-<head> of the Hydra choices
    config, wandb_summary = _config_and_summary(first / f"run-{run_id}.wandb")
    assert (config["model/encoder"], config["model/head"]) == ("edsr_baseline_small", "liif")
    assert wandb_summary["train/ms_per_step"] > 0 and wandb_summary["train/steps_timed"] == 1
    # best and last val/psnr in the summary; pictures on val/psnr's step; the caption names the head
    records = read_job(out)
    assert records.summary["val/psnr_best"] == records.summary["val/psnr_last"] == records.summary["val/psnr"]
    assert records.steps_of("val/psnr") == records.steps_of("val/samples/count") == [0]
    assert records.summary["val/samples/captions"][0].endswith("LR | bicubic | LIIF | HR")
    assert len(records.steps_of("train/ms_per_step")) <= 1  # once per logging step, never twice
    summary = json.loads((out / "summary.json").read_text())  # the same, for readers without W&B
    assert summary["name"] == "edsr_baseline_small-liif"
    assert (summary["encoder"], summary["head"]) == ("edsr_baseline_small", "liif")
    assert summary["params"] == config["model/params"] > 0
    assert summary["ms_per_step"] == pytest.approx(wandb_summary["train/ms_per_step"], abs=1e-3)
    assert summary["steps_timed"] == 1 and "only 1 steps timed" in summary["timing_note"]
    assert summary["status"] == "completed" and summary["val/psnr_best"] == summary["val/psnr_last"]
    assert summary["val/psnr"] == pytest.approx(metrics["val/psnr"], abs=1e-3)
    images = list((first / "files" / "media" / "images").rglob("samples_*.png"))
    assert images, "no LR | bicubic | LIIF | HR picture was logged"
    ((tag, tb_images),) = _tensorboard_images(out).items()
    assert tag.startswith("val/samples/0_coffee")
    img = tb_images[0]
    assert img.width == 4 * 192 + 3 * 4 and img.height == 192  # 4 tiles (LR | bicubic | LIIF | HR)

    # continue the run directory: same W&B run id (offline: a second folder with the same id)
    out2, metrics2 = _train(run_train, "trainer.max_epochs=2", f"resume={out}")
    assert out2 == out and read_run_id(out) == run_id
    runs = _offline_runs(out)
    assert len(runs) == 2 and all(r.name.endswith(f"-{run_id}") for r in runs)
    assert b"val/psnr" in (runs[1] / f"run-{run_id}.wandb").read_bytes()


def test_wandb_id_reuse_and_sweep_group(compose_train, tmp_path, monkeypatch):
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import open_dict, read_write

    cfg = compose_train("logger=wandb")
    assert cfg.logger.wandb.id is None and cfg.logger.wandb.name is None
    assert cfg.logger.wandb.offline is False and cfg.logger.wandb.save_dir == cfg.paths.output_dir
    run_id = prepare_wandb(cfg)
    assert cfg.logger.wandb.id == run_id and cfg.logger.wandb.group is None  # single run: no group
    assert cfg.logger.wandb.name == "edsr_baseline_small-liif"  # <encoder>-<head> configs
    assert (Path(cfg.paths.output_dir) / ID_FILE).read_text().strip() == run_id
    assert prepare_wandb(compose_train("logger=wandb")) == run_id  # same run dir (resume=<run dir>)

    # a checkpoint of that run, continued in another directory: a new W&B run (the old one has those steps)
    old_run = Path(cfg.paths.output_dir)
    cfg = compose_train("logger=wandb")
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / "elsewhere")
    other = prepare_wandb(cfg, ckpt_path=str(old_run / "checkpoints" / "epoch_0001.ckpt"))
    assert other and other != run_id and read_run_id(old_run) == run_id
    cfg = compose_train("logger=wandb", "logger.wandb.id=given123")
    assert prepare_wandb(cfg) == "given123"

    # fresh directories get distinct ids whatever the seed
    ids = set()
    for i in range(3):
        cfg = compose_train("logger=wandb")
        with open_dict(cfg):
            cfg.paths.output_dir = str(tmp_path / f"fresh{i}")
        ids.add(prepare_wandb(cfg))
    assert len(ids) == 3

    # jobs of one multirun share a group named after the sweep folder
    cfg = compose_train("logger=wandb")
    with read_write(cfg.hydra), open_dict(cfg.hydra):
        cfg.hydra.mode = RunMode.MULTIRUN
        cfg.hydra.sweep.dir = str(tmp_path / "multiruns" / "2026-01-01_00-00-00")
    HydraConfig().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / "multiruns" / "2026-01-01_00-00-00" / "0")
    prepare_wandb(cfg)
    assert cfg.logger.wandb.group == "2026-01-01_00-00-00"

    monkeypatch.setenv("WANDB_OFFLINE", "true")
    assert compose_train("logger=wandb").logger.wandb.offline is True
    assert prepare_wandb(compose_train("logger=csv")) is None  # no W&B logger: nothing to do


@pytest.mark.parametrize("mode", ["disabled", "offline"])
def test_the_checkpoint_commit_waits_only_when_wandb_writes(tmp_path, monkeypatch, mode):
    """Each checkpoint commits the open row and waits one flush_interval_s for W&B's service to write it;
    with WANDB_MODE=disabled nothing is written: no wait (it cost 1 s per checkpoint)."""
    import wandb

    from liif_sr.training.loggers import wandb_run

    monkeypatch.setenv("WANDB_MODE", mode)
    waits: list[float] = []
    monkeypatch.setattr(wandb_run.time, "sleep", waits.append)
    lg = wandb_run.WandbLogger(project="t", save_dir=str(tmp_path), flush_interval_s=0.7, mode=mode)
    try:
        for step in range(3):
            lg.log_metrics({"train/loss": 1.0}, step=step)
            lg.after_save_checkpoint(None)
        lg.after_save_checkpoint(None)  # nothing logged since: nothing to commit
    finally:
        monkeypatch.undo()
        lg.experiment.finish()
        wandb.teardown()  # W&B keeps the first mode of a process in its singleton
    assert waits == ([] if mode == "disabled" else [0.7] * 3)
