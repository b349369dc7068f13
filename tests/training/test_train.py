"""Training entry: the real configs compose and instantiate; fast_dev_run and a short real run work."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import TINY_DATA
from hydra.utils import instantiate

from liif_sr import load_model

TINY = [
    *TINY_DATA,
    "model.encoder.n_resblocks=1",
    "model.encoder.n_feats=8",
    "model.head.hidden_list=[16,16]",
    "trainer.accelerator=cpu",
    "callbacks.progress_bar=null",
]


@pytest.mark.parametrize(
    "experiment", ["quickstart", "edsr_baseline_liif", "rdn_liif", "edsr_baseline_liif_t91_bsds"]
)
def test_experiments_compose_and_instantiate(compose_train, experiment):
    cfg = compose_train(f"experiment={experiment}", "trainer.accelerator=cpu")  # CI has no GPU
    model = instantiate(cfg.model)
    n = sum(p.numel() for p in model.net.parameters())
    if experiment == "edsr_baseline_liif":
        assert n == 1_567_299  # paper: 1.6M (1,567,323 incl. 24 unused MeanShift params)
        assert cfg.data.batch_size == 16 and cfg.data.inp_size == 48 and cfg.data.sample_q == 2304
        assert cfg.data.repeat == 20 and cfg.trainer.max_epochs == 1000
        assert (
            list(cfg.model.scheduler.milestones) == [200, 400, 600, 800] and cfg.model.scheduler.gamma == 0.5
        )
        assert cfg.model.optimizer.lr == 1e-4 and cfg.data.scale_min == 1 and cfg.data.scale_max == 4
        assert cfg.data.downsampler == "pil"
    if experiment == "rdn_liif":
        assert n == 21_973_952 + 346_883  # RDN(B) + LIIF MLP (docs/method.md, "Architecture")
    dm = instantiate(cfg.data)
    assert dm.hparams.batch_size == cfg.data.batch_size
    trainer = instantiate(cfg.trainer, logger=False, enable_checkpointing=False)
    assert trainer.max_epochs == cfg.trainer.max_epochs


def test_encoder_swap_by_config_group(compose_train):
    cfg = compose_train("experiment=edsr_baseline_liif", "model/encoder=rdn", "model.encoder.config=A")
    net = instantiate(cfg.model).net
    assert type(net.encoder).__name__ == "RDN" and net.encoder.config["D"] == 20
    cfg = compose_train("model/encoder=rdn_small")  # quickstart default experiment
    net = instantiate(cfg.model).net
    assert type(net.encoder).__name__ == "RDN" and net.encoder.out_dim == 32


def test_head_switches_by_config(compose_train):
    cfg = compose_train("model.head.feat_unfold=false", "model.head.cell_decode=false")
    head = instantiate(cfg.model).net.head
    assert head.mlp.in_dim == 32 + 2  # quickstart encoder: 32 features, no unfold, no cell


def test_fast_dev_run(run_train):
    cfg, (metrics, objs) = run_train("debug=fdr", *TINY)
    assert "train/loss" in metrics and objs["trainer"].global_step == 1


def test_short_training_writes_checkpoint_and_weights(run_train, tmp_path):
    cfg, (metrics, objs) = run_train(
        *TINY,
        "trainer.max_epochs=2",
        "trainer.check_val_every_n_epoch=1",
        "callbacks.quickstart_report=null",
        "callbacks.model_checkpoint.every_n_epochs=1",
    )
    out = Path(cfg.paths.output_dir)
    assert (out / "checkpoints" / "last.ckpt").is_file()
    assert "val/psnr_x4" in metrics and metrics["val/psnr"] == pytest.approx(metrics["val/psnr_x4"])
    # checkpoint holds plain data only
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["liif_sr"]["model"]["encoder"]["name"] == "edsr_baseline"
    for path in (out / "checkpoints" / "last.ckpt", out / "model.safetensors"):
        model = load_model(path)
        lr = torch.rand(1, 3, 8, 8)
        sr = model.upscale(lr, (20, 12))
        assert sr.shape == (1, 3, 20, 12) and sr.min() >= 0 and sr.max() <= 1
    a, b = load_model(out / "checkpoints" / "last.ckpt"), load_model(out / "model.safetensors")
    lr = torch.rand(1, 3, 8, 8)
    assert torch.equal(a.upscale(lr, (16, 16)), b.upscale(lr, (16, 16)))


def test_quickstart_report(run_train):
    cfg, (metrics, objs) = run_train(*TINY, "trainer.max_epochs=1", "trainer.check_val_every_n_epoch=1")
    out = Path(cfg.paths.output_dir)
    import json

    result = json.loads((out / "quickstart_result.json").read_text())
    assert result["scale"] == 4 and result["images"][0]["image"] == "coffee"
    assert 15 < result["bicubic_psnr"] < 40
    assert (out / "sample_x4.png").is_file()


def test_quickstart_report_names_the_head(run_train, capsys):
    """Issue 18: the report called an LTE model "LIIF"."""
    cfg, _ = run_train(*TINY, "model/head=lte", "model.head.hidden_dim=8", "trainer.max_epochs=1")
    (line,) = [ln for ln in capsys.readouterr().out.splitlines() if "held-out x4 Y-PSNR" in ln]
    assert "Y-PSNR: LTE (edsr_baseline-lte) " in line and "LIIF" not in line
    import json

    assert json.loads((Path(cfg.paths.output_dir) / "quickstart_result.json").read_text())["model"] == (
        "edsr_baseline-lte"
    )


def test_wrong_encoder_checkpoint_is_named(run_train, tmp_path):
    from liif_sr.errors import CheckpointError

    cfg, _ = run_train(*TINY, "trainer.max_epochs=1", "callbacks.quickstart_report=null")
    ckpt = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    with pytest.raises(CheckpointError, match=r"encoder.name='edsr_baseline', expected 'rdn'"):
        tiny_rdn = [o for o in TINY if not o.startswith("model.encoder.")]
        run_train(*tiny_rdn, "model/encoder=rdn_small", f"ckpt_path={ckpt}", "trainer.max_epochs=2")


def test_init_weights_starts_from_a_checkpoint(run_train, compose_train, tmp_path):
    """``init_weights=<file>``: the run starts from those weights (fresh optimizer); a wrong model is named."""
    from liif_sr.checkpoints import save_weights
    from liif_sr.errors import UserError
    from liif_sr.train import init_weights

    torch.manual_seed(7)
    source = instantiate(compose_train(*TINY).model).net
    path = save_weights(source, tmp_path / "start.safetensors")
    torch.manual_seed(8)
    net = instantiate(compose_train(*TINY, "model.speed.channels_last=true").model).net
    init_weights(net, str(path))
    for (k, a), b in zip(source.state_dict().items(), net.state_dict().values()):
        assert torch.equal(a, b), k
    assert net.encoder.head[0].weight.is_contiguous(memory_format=torch.channels_last)  # layout kept
    wider = instantiate(compose_train(*TINY, "model.encoder.n_feats=16").model).net
    with pytest.raises(UserError, match=r"init_weights=.*n_feats=8, expected 16"):
        init_weights(wider, str(path))
    # wired into training: one step from the file's weights
    cfg, (metrics, objs) = run_train("debug=fdr", *TINY, f"init_weights={path}")
    assert objs["trainer"].global_step == 1 and "train/loss" in metrics
