"""Every encoder x head pair composes from the real configs, trains, checkpoints, reloads, resumes and
evaluates; every experiment composes with its recipe; bad components fail at model build in one line."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import compose_in
from hydra.errors import InstantiationException
from hydra.utils import instantiate

from liif_sr import load_model
from liif_sr.errors import UserError
from liif_sr.hydra_app import user_cause
from liif_sr.metrics import psnr
from liif_sr.models.registry import IncompatibleComponentsError, UnknownComponentError

ENCODERS = {  # the small variants, made tiny
    "edsr_baseline_small": ["model.encoder.n_resblocks=1", "model.encoder.n_feats=8"],
    "rdn_small": ["model.encoder.G0=8", "model.encoder.D=1", "model.encoder.C=1", "model.encoder.G=4"],
    "swinir_small": [
        "model.encoder.embed_dim=8",
        "model.encoder.depths=[2]",
        "model.encoder.num_heads=[2]",
        "model.encoder.out_dim=8",
    ],
}
HEADS = {
    "liif": ["model.head.hidden_list=[16,16]"],
    "lte": ["model.head.hidden_dim=16", "model.head.hidden_list=[16]"],
    "metasr": ["model.head.hidden_list=[16]"],
    "lmliif": ["model.head.hidden_list=[16]", "model.head.hidden_dim=8", "model.head.hidden_depth=2"],
    "lmlte": [
        "model.head.latent_dim=16",
        "model.head.hidden_list=[16]",
        "model.head.hidden_dim=8",
        "model.head.hidden_depth=2",
    ],
    "lmciaosr": [
        "model.head.attn_hidden=[16]",
        "model.head.hidden_list=[16]",
        "model.head.hidden_dim=8",
        "model.head.hidden_depth=2",
    ],
}
GRID = [(e, h) for e in ENCODERS for h in HEADS]  # ~1-3 s each on 2 busy cores
TINY = [
    "data.repeat=1",
    "data.batch_size=2",
    "data.inp_size=16",  # a multiple of SwinIR's window (8)
    "data.sample_q=64",
    "data.num_workers=0",
    "data.train_sources=[skimage:astronaut,skimage:rocket]",
    "trainer.accelerator=cpu",
    "+trainer.num_sanity_val_steps=0",
    "callbacks.progress_bar=null",
    "callbacks.quickstart_report=null",
    "callbacks.model_checkpoint.every_n_epochs=1",
    "trainer.check_val_every_n_epoch=1",
]


@pytest.fixture(scope="module")
def val_image(tmp_path_factory):
    from PIL import Image
    from skimage import data

    path = tmp_path_factory.mktemp("val") / "coffee_crop.png"
    Image.fromarray(data.coffee()[100:148, 200:248]).save(path)  # 48 x 48: validation stays cheap
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield path
    torch.set_num_threads(threads)


def _compose(run_dir: Path, *overrides: str):
    return compose_in(run_dir, *overrides, mkdir=False)


def _train(run_dir: Path, *overrides: str):
    from liif_sr.train import train

    cfg = _compose(run_dir, *overrides)
    run_dir.mkdir(parents=True, exist_ok=True)
    return train(cfg)


@pytest.mark.parametrize("encoder,head", GRID)
def test_pair_trains_checkpoints_resumes_and_evaluates(tmp_path, val_image, encoder, head):
    overrides = [
        f"model/encoder={encoder}",
        f"model/head={head}",
        *ENCODERS[encoder],
        *HEADS[head],
        *TINY,
        f"data.val_sources=[{val_image}]",
    ]
    metrics, objs = _train(tmp_path / "a", *overrides, "trainer.max_epochs=1")
    assert objs["trainer"].global_step == 1 and torch.isfinite(torch.tensor(metrics["val/psnr"]))
    ckpt = tmp_path / "a" / "checkpoints" / "last.ckpt"
    model = load_model(ckpt, expect={"head": {"name": head}})
    assert model.encoder.name == encoder.removesuffix("_small") and model.head.name == head
    lr = torch.rand(1, 3, 12, 10, generator=torch.Generator().manual_seed(0))
    want = objs["model"].net.eval().upscale(lr, (29, 23))
    assert torch.equal(model.upscale(lr, (29, 23)), want)
    # resume the Lightning checkpoint in another run folder
    metrics, objs = _train(tmp_path / "b", *overrides, "trainer.max_epochs=2", f"ckpt_path={ckpt}")
    assert objs["trainer"].global_step == 2 and objs["trainer"].current_epoch == 2
    final = load_model(tmp_path / "b" / "model.safetensors", head_mode="plain")
    assert final.config == objs["model"].net.config and not final.head.fast
    # evaluate: the paper's border and the head's cell clip (LTE: x4) against the HR crop
    from PIL import Image

    hr = torch.tensor(np.asarray(Image.open(val_image))).permute(2, 0, 1)[None] / 255
    lr = torch.nn.functional.interpolate(hr, size=(12, 12), mode="bicubic", antialias=True).clamp(0, 1)
    sr = final.upscale(lr, (48, 48), border="none")
    score = psnr(sr, hr, shave=4)
    assert sr.shape == hr.shape and 5 < float(score) < 60


@pytest.mark.parametrize("encoder", ENCODERS)
@pytest.mark.parametrize("head", HEADS)
def test_quickstart_with_every_small_encoder_and_head(tmp_path, encoder, head):
    """The quickstart's head override (hidden_list 3 x 128) is sensible for every head."""
    cfg = _compose(tmp_path / "r", f"model/encoder={encoder}", f"model/head={head}")
    assert cfg.data.inp_size % 8 == 0  # SwinIR's window
    net = instantiate(cfg.model, _convert_="all").net
    assert net.head.name == head and net.head.in_channels == net.encoder.out_dim
    assert net.head.config["hidden_list"] == [128, 128, 128]
    lr = torch.rand(2, 3, 16, 16)
    coord = torch.rand(2, 20, 2) * 2 - 1
    with torch.no_grad():
        assert net(lr, coord, torch.full((2, 20, 2), 0.05)).shape == (2, 20, 3)


RECIPES = {
    # experiment: (encoder, head, batch, lr, milestones)
    "edsr_baseline_liif": ("edsr_baseline", "liif", 16, 1e-4, [200, 400, 600, 800]),
    "rdn_liif": ("rdn", "liif", 16, 1e-4, [200, 400, 600, 800]),
    "edsr_baseline_lte": ("edsr_baseline", "lte", 16, 1e-4, [200, 400, 600, 800]),
    "rdn_lte": ("rdn", "lte", 16, 1e-4, [200, 400, 600, 800]),
    "swinir_lte": ("swinir", "lte", 32, 2e-4, [500, 800, 900, 950]),
    "swinir_liif": ("swinir", "liif", 16, 1e-4, [200, 400, 600, 800]),
    "edsr_baseline_metasr": ("edsr_baseline", "metasr", 16, 1e-4, [200, 400, 600, 800]),
    "rdn_metasr": ("rdn", "metasr", 16, 1e-4, [200, 400, 600, 800]),
    # LMF (configs/train-lmf): EDSR-baseline 1200 epochs with a fifth halving; SwinIR-LM-LIIF render depth 8
    "edsr_baseline_lmliif": ("edsr_baseline", "lmliif", 16, 1e-4, [200, 400, 600, 800, 1000]),
    "rdn_lmliif": ("rdn", "lmliif", 16, 1e-4, [200, 400, 600, 800]),
    "swinir_lmliif": ("swinir", "lmliif", 32, 2e-4, [500, 800, 900, 950]),
    "edsr_baseline_lmlte": ("edsr_baseline", "lmlte", 16, 1e-4, [200, 400, 600, 800, 1000]),
    "rdn_lmlte": ("rdn", "lmlte", 16, 1e-4, [200, 400, 600, 800]),
    "swinir_lmlte": ("swinir", "lmlte", 32, 2e-4, [500, 800, 900, 950]),
    # LM-CiaoSR: 64x64 crops with 4096 queries on EDSR-baseline and RDN (1200 epochs); SwinIR 48x48
    "edsr_baseline_lmciaosr": ("edsr_baseline", "lmciaosr", 16, 1e-4, [200, 400, 600, 800, 1000]),
    "rdn_lmciaosr": ("rdn", "lmciaosr", 16, 1e-4, [200, 400, 600, 800, 1000]),
    "swinir_lmciaosr": ("swinir", "lmciaosr", 32, 2e-4, [500, 800, 900, 950]),
}
EPOCHS = {
    "edsr_baseline_lmliif": 1200,
    "edsr_baseline_lmlte": 1200,
    "edsr_baseline_lmciaosr": 1200,
    "rdn_lmciaosr": 1200,
}
CROPS = {
    "edsr_baseline_lmciaosr": (64, 4096),
    "rdn_lmciaosr": (64, 4096),
}  # (inp_size, sample_q); else 48, 2304
#: parameters of the paper-size networks (LTE head 493,827 and MetaSR head 445,120 on 64 channels, docs/method.md "Architecture")
PARAMS = {
    "edsr_baseline_lte": 1_220_416 + 493_827,
    "edsr_baseline_metasr": 1_220_416 + 445_120,
    "edsr_baseline_lmliif": 1_220_416 + 165_651,  # LM-LIIF head: 578->208->208 latent MLP, lmmlp 20->16x6->3
    "edsr_baseline_lmlte": 1_220_416 + 270_467,  # LM-LTE head: convs 64->128 x2, 128->288->288, lmmlp 16x8
    "edsr_baseline_lmciaosr": 1_220_416
    + 734_998,  # LM-CiaoSR head: attention, prenet/imnet_k/imnet_v [256], 320->288->288
}
HEAD_CONFIGS = {
    "lte": {"hidden_dim": 256, "hidden_list": [256, 256, 256], "out_dim": 3},
    "metasr": {"hidden_list": [256], "out_dim": 3},
    "lmliif": {"hidden_dim": 16, "hidden_depth": 6, "hidden_list": [208], "out_dim": 3},
    "lmlte": {"latent_dim": 128, "hidden_dim": 16, "hidden_depth": 8, "hidden_list": [288], "out_dim": 3},
    "lmciaosr": {
        "hidden_dim": 16,
        "hidden_depth": 8,
        "attn_hidden": [256],
        "hidden_list": [288],
        "out_dim": 3,
        "lr_skip": "always",
    },
}


@pytest.mark.parametrize("experiment", sorted(RECIPES))
def test_experiments_compose_with_their_recipe(tmp_path, experiment):
    encoder, head, batch, lr, milestones = RECIPES[experiment]
    cfg = _compose(tmp_path / "r", f"experiment={experiment}", "trainer.accelerator=cpu")
    assert (
        cfg.model.encoder._target_.rsplit(".", 1)[-1]
        == {
            "edsr_baseline": "EDSRBaseline",
            "rdn": "RDN",
            "swinir": "SwinIR",
        }[encoder]
    )
    assert cfg.model.head._target_.endswith(
        {
            "liif": "LIIFHead",
            "lte": "LTEHead",
            "metasr": "MetaSRHead",
            "lmliif": "LMLIIFHead",
            "lmlte": "LMLTEHead",
            "lmciaosr": "LMCiaoSRHead",
        }[head]
    )
    crop, queries = CROPS.get(experiment, (48, 2304))
    assert cfg.data.dataset_name == "div2k" and cfg.data.inp_size == crop and cfg.data.sample_q == queries
    assert cfg.data.scale_min == 1 and cfg.data.scale_max == 4 and cfg.data.repeat == 20
    assert cfg.data.batch_size == batch and cfg.model.optimizer.lr == lr
    assert list(cfg.model.scheduler.milestones) == milestones and cfg.model.scheduler.gamma == 0.5
    assert cfg.trainer.max_epochs == EPOCHS.get(experiment, 1000) and experiment in cfg.tags
    if experiment == "swinir_lmliif":
        assert cfg.model.head.hidden_depth == 8
    if experiment in PARAMS:  # the cheap ones are built
        net = instantiate(cfg.model, _convert_="all").net
        assert sum(p.numel() for p in net.parameters()) == PARAMS[experiment]
        assert net.head.name == head and net.head.config == HEAD_CONFIGS[head]


@pytest.mark.parametrize(
    "override,error,message",
    [
        (
            "model.encoder._target_=torch.nn.Identity",
            UnknownComponentError,
            "encoder class torch.nn.modules.linear.Identity is not registered (known encoders: ",
        ),
        (
            "model.head._target_=test_encoder_head_grid.UserHead",
            UnknownComponentError,
            "head class test_encoder_head_grid.UserHead is not registered (known heads: ",
        ),
        (
            "+model.head.in_channels=7",
            IncompatibleComponentsError,
            "head in_channels=7 does not match the encoder's out_dim=32",
        ),
        ("model.head.hidden_list=[]", IncompatibleComponentsError, "LIIFHead: hidden_list"),
    ],
)
def test_bad_components_fail_at_model_build(tmp_path, override, error, message):
    cfg = _compose(tmp_path / "r", override)
    with pytest.raises(InstantiationException) as exc:
        instantiate(cfg.model, _convert_="all")
    cause = user_cause(exc.value)  # what liif-sr-train prints in one line (exit 2)
    assert isinstance(cause, error) and isinstance(cause, UserError), repr(exc.value)
    assert message in str(cause) and "\n" not in str(cause)
    if isinstance(cause, UnknownComponentError):  # the built-ins among those listed, and how to fix it
        listed = str(cause).split("s: ")[1].split(")")[0].split(", ")
        builtin = (
            {"edsr_baseline", "rdn", "swinir"} if message.startswith("encoder") else {"liif", *HEAD_CONFIGS}
        )
        # (other tests of the session may have registered their own components too)
        assert builtin <= set(listed) and listed == sorted(listed), listed
        assert "decorate it with @liif_sr.models.register_" in str(cause)


class UserHead(torch.nn.Module):
    """A user's head subclass that is not registered."""

    name = "mine"

    def __init__(self, in_channels: int = 64, **kwargs) -> None:
        super().__init__()
        self.in_channels = in_channels


def test_cli_unregistered_encoder_is_one_line_exit_2(tmp_path, monkeypatch, capsys):
    """``liif-sr-train`` (its console entry, in-process: the exit status and stderr are the process's)."""
    from liif_sr.models.registry import ENCODERS
    from liif_sr.train import main

    run_dir = tmp_path / "run"
    argv = [
        "liif-sr-train",
        "model.encoder._target_=torch.nn.Identity",
        "trainer.accelerator=cpu",
        f"paths.log_dir={tmp_path}/logs",
        f"hydra.run.dir={run_dir}",
    ]
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exc:
        main()
    stderr = capsys.readouterr().err
    errors = [ln for ln in stderr.splitlines() if "error" in ln.lower()]
    assert exc.value.code == 2, stderr[-2000:]
    # the known ones: the built-ins, and what other tests of this process registered (test_own_components.py)
    known = ", ".join(sorted(ENCODERS))
    assert {"edsr_baseline", "rdn", "swinir"} <= set(ENCODERS)
    assert errors == [
        "liif-sr-train: error: encoder class torch.nn.modules.linear.Identity is not registered (known "
        f'encoders: {known}); decorate it with @liif_sr.models.register_encoder("<name>")'
    ], stderr[-2000:]
    assert "Traceback" not in stderr
    # nothing but Hydra's own run record (.hydra/, train.log: written before the task starts)
    assert not (run_dir / "checkpoints").exists() and not (run_dir / "csv").exists()
