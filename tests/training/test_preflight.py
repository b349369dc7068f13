"""Start-up preflight of ``liif-sr-train`` (issue #14, classes 1 and 3): a refused or failed start changes no
run folder and creates none; values that cannot work are one line each, before anything is built."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

from liif_sr.training.preflight import check_config, preflight_argv, requested_net_config


def _compose(*overrides: str):
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_module("liif_sr.conf", version_base="1.3"):
        cfg = compose("train", overrides=list(overrides))
    GlobalHydra.instance().clear()
    return cfg


def _fake_run(run: Path) -> Path:
    """A run folder of the quickstart model (edsr_baseline_small): last.ckpt with its model config."""
    config = requested_net_config(_compose())
    (run / "checkpoints").mkdir(parents=True)
    (run / ".hydra").mkdir()
    for name in ("config.yaml", "hydra.yaml", "overrides.yaml"):
        (run / ".hydra" / name).write_text(f"# {name} of the edsr run\n")
    (run / "train.log").write_text("old log\n")
    torch.save({"liif_sr": {"model": config}, "state_dict": {}}, run / "checkpoints" / "last.ckpt")
    return run


def _snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if p.is_file()
    }


def _main(monkeypatch, capsys, tmp_path: Path, *args: str) -> tuple[int, str]:
    from liif_sr.train import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    monkeypatch.setattr(sys, "argv", ["liif-sr-train", *args, f"paths.log_dir={tmp_path}/logs"])
    with pytest.raises(SystemExit) as exc:
        main()
    err = capsys.readouterr().err.strip()
    return exc.value.code, err


def test_refused_resume_of_another_model_leaves_the_run_untouched(tmp_path, monkeypatch, capsys):
    run = _fake_run(tmp_path / "run")
    before = _snapshot(run)
    code, err = _main(monkeypatch, capsys, tmp_path, f"resume={run}", "model/encoder=rdn_small")
    assert code == 2
    assert err.startswith("liif-sr-train: error: ") and len(err.splitlines()) == 1, err
    assert "encoder" in err and "rdn" in err and "start a new run" in err
    assert _snapshot(run) == before  # .hydra/*.yaml and train.log: same bytes, same mtime
    assert not (tmp_path / "logs").exists()


@pytest.mark.parametrize(
    "override",
    ["model.head.hidden_list=[64,64]", "model/head=lte", "model.encoder.n_resblocks=5"],
)
def test_other_model_differences_are_refused_too(tmp_path, monkeypatch, capsys, override):
    run = _fake_run(tmp_path / "run")
    before = _snapshot(run)
    code, err = _main(monkeypatch, capsys, tmp_path, f"resume={run}", override)
    assert code == 2 and err.startswith("liif-sr-train: error: ") and len(err.splitlines()) == 1, err
    assert _snapshot(run) == before


def test_resume_of_a_missing_folder_creates_nothing(tmp_path, monkeypatch, capsys):
    code, err = _main(monkeypatch, capsys, tmp_path, f"resume={tmp_path / 'nope'}")
    assert code == 2
    assert err == f"liif-sr-train: error: resume={tmp_path / 'nope'}: no such run directory"
    assert sorted(os.listdir(tmp_path)) == []


def test_resume_of_a_folder_without_checkpoint_writes_nothing(tmp_path, monkeypatch, capsys):
    (tmp_path / "old").mkdir()
    code, err = _main(monkeypatch, capsys, tmp_path, f"resume={tmp_path / 'old'}")
    assert code == 2 and "no checkpoints/last.ckpt in that run directory" in err
    assert sorted(os.listdir(tmp_path)) == ["old"] and not any((tmp_path / "old").iterdir())


def test_missing_ckpt_path_file(tmp_path, monkeypatch, capsys):
    code, err = _main(monkeypatch, capsys, tmp_path, f"ckpt_path={tmp_path / 'x.ckpt'}")
    assert code == 2 and err == f"liif-sr-train: error: ckpt_path={tmp_path / 'x.ckpt'}: file not found"
    assert not (tmp_path / "logs").exists()


BAD_VALUES = [
    ("data.batch_size=0", "data.batch_size=0: expected a positive integer"),
    ("data.batch_size=-3", "data.batch_size=-3: expected a positive integer"),
    ("data.batch_size=2.5", "data.batch_size=2.5: expected an integer"),
    ("data.batch_size=abc", "data.batch_size=abc: expected an integer"),
    ("data.scale_max=0.5", "data.scale_max=0.5: expected a finite number >= 1"),
    ("data.scale_max=2 data.scale_min=3", "data.scale_max=2 is below data.scale_min=3"),
    ("data.scale_min=nan", "data.scale_min=nan: expected a finite number >= 1"),
    ("data.scale_max=inf", "data.scale_max=inf: expected a finite number >= 1"),
    ("data.train_sources=[]", "data.train_sources is empty"),
    ("data.inp_size=0", "data.inp_size=0: expected a positive integer"),
    ("data.sample_q=0", "data.sample_q=0: expected a positive integer"),
    ("data.sample_q=many", "data.sample_q=many: expected an integer"),
    ("data.repeat=0", "data.repeat=0: expected a positive integer"),
    ("data.num_workers=-1", "data.num_workers=-1: expected an integer >= 0"),
    ("data.val_scales=[0]", "data.val_scales: 0 is not a finite number >= 1"),
    ("data.batch_size=3 trainer.devices=2", "data.batch_size=3 (global) is not divisible by 2 devices"),
    ("model.encoder.n_feats=abc", "model.encoder.n_feats=abc: expected an integer"),
    ("model.encoder.n_resblocks=1.5", "model.encoder.n_resblocks=1.5: expected an integer"),
    ("model.encoder.res_scale=big", "model.encoder.res_scale=big: expected a number"),
    ("model.head.hidden_list=[64,x]", "model.head.hidden_list=[64,x]: expected an integer"),
    ("model.head.local_ensemble=maybe", "model.head.local_ensemble=maybe: expected true or false"),
    (
        "+model.encoder.n_layers=3",
        "model: cannot build the requested model: EDSRBaseline.__init__() got an unexpected keyword argument 'n_layers'",
    ),
    ("model/encoder=rdn_small model.encoder.G0=x", "model.encoder.G0=x: expected an integer"),
    ("model.encoder.n_feats=0", "model: cannot build the requested model: EDSRBaseline: bad sizes"),
    (
        "model/encoder=swinir_small data.inp_size=36",
        "data.inp_size=36: the swinir encoder needs training crops that are multiples of 8",
    ),
    ("model.encoder._target_=torch.nn.Identity", "encoder class torch.nn.modules.linear.Identity is not"),
]


@pytest.mark.parametrize(("overrides", "message"), BAD_VALUES)
def test_bad_values_are_one_line_before_anything_is_written(
    tmp_path, monkeypatch, capsys, overrides, message
):
    code, err = _main(monkeypatch, capsys, tmp_path, *overrides.split())
    assert code == 2, err
    assert err.startswith(f"liif-sr-train: error: {message}") and len(err.splitlines()) == 1, err
    assert sorted(os.listdir(tmp_path)) == []  # no logs/ folder, no run folder


def test_multirun_checks_every_sweep_combination(tmp_path, monkeypatch, capsys):
    code, err = _main(monkeypatch, capsys, tmp_path, "-m", "data.batch_size=4,0")
    assert code == 2 and "data.batch_size=0: expected a positive integer" in err
    assert sorted(os.listdir(tmp_path)) == []


def test_the_defaults_and_experiments_pass():
    for experiment in (
        "quickstart",
        "edsr_baseline_liif",
        "rdn_liif",
        "edsr_baseline_liif_t91_bsds",
        "edsr_baseline_lmciaosr",
    ):
        cfg = _compose(f"experiment={experiment}")
        check_config(cfg)
        requested_net_config(cfg)
    for encoder in ("swinir_small", "rdn_small"):
        for head in ("liif", "lte", "metasr", "lmliif", "lmlte", "lmciaosr"):
            requested_net_config(_compose(f"model/encoder={encoder}", f"model/head={head}"))


def test_flags_hydra_handles_are_left_to_it(monkeypatch):
    seen = []
    for argv in (["--help"], ["--cfg", "job"], ["-cn", "other"]):
        preflight_argv("train", argv, check=seen.append)
    assert seen == []  # nothing composed: Hydra prints its own help (and writes nothing)
    preflight_argv("train", ["data.batch_size=4"], check=seen.append)
    assert len(seen) == 1 and seen[0].data.batch_size == 4


def test_train_api_checks_values_too(compose_train):
    from liif_sr.errors import UserError
    from liif_sr.train import train

    with pytest.raises(UserError, match=r"data\.batch_size=0: expected a positive integer"):
        train(compose_train("data.batch_size=0"))


def test_resume_of_the_same_model_passes(tmp_path):
    run = _fake_run(tmp_path / "run")
    preflight_argv("train", [f"resume={run}"])  # the quickstart model: matches, Hydra may start
    preflight_argv("train", [f"resume={run}", "trainer.max_epochs=20", "data.batch_size=4"])
