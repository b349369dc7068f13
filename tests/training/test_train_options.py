"""Issue 17.6: what researchers added by hand ships as options, off by default (the papers' protocol):
early stopping, best checkpoint (on: the official code's epoch-best), EMA weights, gradient clipping, profiler."""

from __future__ import annotations

from pathlib import Path

import torch
from test_train import TINY

from liif_sr import load_model

RUN = [*TINY, "trainer.check_val_every_n_epoch=1", "callbacks.quickstart_report=null"]


def test_defaults_are_the_papers(compose_train):
    cfg = compose_train()
    assert cfg.trainer.gradient_clip_val is None and cfg.trainer.profiler is None
    assert "early_stopping" not in cfg.callbacks and "ema" not in cfg.callbacks
    assert cfg.callbacks.best_checkpoint.monitor == "val/psnr" and cfg.callbacks.best_checkpoint.mode == "max"
    cfg = compose_train("callbacks=[default,early_stopping,ema]")
    assert cfg.callbacks.early_stopping.monitor == "val/psnr" and cfg.callbacks.ema.decay == 0.999


def test_early_stopping_best_checkpoint_clipping_profiler(run_train):
    cfg, (metrics, objs) = run_train(
        *RUN,
        "trainer.max_epochs=6",
        "callbacks=[default,early_stopping]",
        "callbacks.early_stopping.patience=1",
        "callbacks.early_stopping.min_delta=100",  # never improves by 100 dB: stops after 2 validations
        "trainer.gradient_clip_val=0.01",
        "trainer.profiler=simple",
    )
    trainer = objs["trainer"]
    assert trainer.current_epoch == 2 and trainer.global_step == 2  # stopped early, not after 6 epochs
    assert trainer.gradient_clip_val == 0.01 and type(trainer.profiler).__name__ == "SimpleProfiler"
    out = Path(cfg.paths.output_dir)
    best = out / "checkpoints" / "best.ckpt"
    ckpt = torch.load(best, map_location="cpu", weights_only=True)
    assert ckpt["global_step"] in (1, 2)  # the best validation's weights
    assert load_model(best) is not None


def test_ema_weights_are_exported(run_train):
    cfg, (metrics, objs) = run_train(
        *RUN, "trainer.max_epochs=3", "callbacks=[default,ema]", "callbacks.ema.decay=0.5"
    )
    out = Path(cfg.paths.output_dir)
    exported = load_model(out / "model.safetensors").state_dict()
    ema = next(cb for cb in objs["trainer"].callbacks if type(cb).__name__ == "EMAWeightAveraging")
    averaged = {k.removeprefix("net."): v for k, v in ema._average_model.module.state_dict().items()}
    for key, value in exported.items():
        torch.testing.assert_close(value, averaged[key].float())
    last = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["global_step"] == 3  # checkpoints load with weights_only (resume stays safe)
