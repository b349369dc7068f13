"""Structured-config schemas (issue #19 point 2): a value of the wrong type fails while Hydra composes the
config (one line, exit 2, nothing written); the schemas match the classes they build; the data module takes
one typed options object."""

from __future__ import annotations

import dataclasses
import inspect
import os
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from hydra.errors import ConfigCompositionException
from hydra.utils import get_object, instantiate
from omegaconf import OmegaConf

from liif_sr.conf.schema import SCHEMAS
from liif_sr.data.datamodule import RandomScaleDataModule
from liif_sr.data.options import DataConfig, DataOptionError, DataOptions, check_batch_split

SRC = Path(__file__).resolve().parents[2] / "src" / "liif_sr"

# (overrides, the start of the one-line message)
WRONG_TYPES = [
    ("data.batch_size=abc", "data.batch_size=abc: expected an integer"),
    ("data.inp_size=1.5", "data.inp_size=1.5: expected an integer"),
    ("model.optimizer.lr=fast", "model.optimizer.lr=fast: expected a number"),
    ("data.scale_max=huge", "data.scale_max=huge: expected a number"),
    ("data.augment=maybe", "data.augment=maybe: expected true or false"),
    ("data.val_first_k=some", "data.val_first_k=some: expected an integer"),
    ("data.val_scales=[2,x]", "data.val_scales=[2,x]: expected a number"),
    ("data.train_sources=5", "data.train_sources=5: expected a list"),
    ("model.scheduler.gamma=half", "model.scheduler.gamma=half: expected a number"),
    ("model.scheduler.milestones=[10,later]", "model.scheduler.milestones=[10,later]: expected an integer"),
    ("model.val_chunk=big", "model.val_chunk=big: expected an integer"),
    ("model.speed.compile=maybe", "model.speed.compile=maybe: expected true or false"),
    ("model.encoder.n_resblocks=many", "model.encoder.n_resblocks=many: expected an integer"),
    ("model/encoder=rdn_small model.encoder.D=x", "model.encoder.D=x: expected an integer"),
    (
        "model/encoder=swinir_small model.encoder.depths=[2,x]",
        "model.encoder.depths=[2,x]: expected an integer",
    ),
    ("model/head=lte model.head.hidden_dim=1.5", "model.head.hidden_dim=1.5: expected an integer"),
    ("model/head=metasr model.head.fast=perhaps", "model.head.fast=perhaps: expected true or false"),
    # the LM heads' shared fields (one base schema, LMHeadConfig) and their own
    ("model/head=lmliif model.head.hidden_depth=1.5", "model.head.hidden_depth=1.5: expected an integer"),
    ("model/head=lmlte model.head.latent_dim=wide", "model.head.latent_dim=wide: expected an integer"),
    ("model/head=lmciaosr model.head.attn_hidden=[2,x]", "model.head.attn_hidden=[2,x]: expected an integer"),
    ("-m data.batch_size=4,abc", "data.batch_size=abc: expected an integer"),
    # the trainer-independent options of train.yaml
    ("seed=abc", "seed=abc: expected an integer"),
    ("export_weights=maybe", "export_weights=maybe: expected true or false"),
    ("dry_run=sure", "dry_run=sure: expected true or false"),
    ("tags=5", "tags=5: expected a list"),
]


def _compose(*overrides: str):
    with initialize_config_module("liif_sr.conf", version_base="1.3"):
        return compose("train", overrides=list(overrides))


@pytest.mark.parametrize(("overrides", "message"), WRONG_TYPES)
def test_wrong_types_fail_at_composition_in_one_line_and_write_nothing(
    tmp_path, monkeypatch, capsys, overrides, message
):
    from liif_sr.train import main

    args = overrides.split()
    if args[0] != "-m":  # Hydra's own composition refuses it (the schemas), not a check of ours
        with pytest.raises(ConfigCompositionException):
            _compose(*args)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    monkeypatch.setattr(sys, "argv", ["liif-sr-train", *args, f"paths.log_dir={tmp_path}/logs"])
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(SystemExit) as exc:
        main()
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2, err
    assert len(err.splitlines()) == 1, err
    assert err.removeprefix("liif-sr-train: error: ").startswith(message), err
    assert sorted(os.listdir(tmp_path)) == before  # no logs/, no run or multirun folder


EVAL_WRONG_TYPES = [
    ("first_k=abc", "first_k=abc: expected an integer"),
    ("first_k=1.5", "first_k=1.5: expected an integer"),
    ("chunk=many", "chunk=many: expected an integer"),
    ("chunk=1.5", "chunk=1.5: expected an integer"),
]


@pytest.mark.parametrize(("override", "message"), EVAL_WRONG_TYPES)
def test_eval_wrong_types_fail_at_composition_in_one_line_and_write_nothing(
    tmp_path, monkeypatch, capsys, override, message
):
    from liif_sr.evaluate import main

    with (
        pytest.raises(ConfigCompositionException),
        initialize_config_module("liif_sr.conf", version_base="1.3"),
    ):
        compose("eval", overrides=[override])
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["liif-sr-eval", override, f"paths.log_dir={tmp_path}/logs"])
    with pytest.raises(SystemExit) as exc:
        main()
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and len(err.splitlines()) == 1, err
    assert err.removeprefix("liif-sr-eval: error: ").startswith(message), err
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("experiment", sorted(p.stem for p in (SRC / "conf" / "experiment").glob("*.yaml")))
def test_every_shipped_experiment_composes_against_the_schemas(experiment):
    cfg = _compose(f"experiment={experiment}")
    assert OmegaConf.get_type(cfg).__name__ == "TrainConfig"
    assert OmegaConf.get_type(cfg.data) is DataConfig
    assert OmegaConf.get_type(cfg.model).__name__ == "ModelConfig"
    for part in ("encoder", "head"):
        target = get_object(cfg.model[part]._target_)
        schema = OmegaConf.get_type(cfg.model[part])
        assert dataclasses.is_dataclass(schema) and schema._target_ == cfg.model[part]._target_, target
    options = DataOptions.from_mapping(cfg.data)
    assert options.batch_size == cfg.data.batch_size and options.val_scales == list(cfg.data.val_scales)


@pytest.mark.parametrize(
    ("group", "name", "schema"), [s for s in SCHEMAS if (s[0] or "").startswith("model/")]
)
def test_encoder_and_head_schemas_match_their_classes(group, name, schema):
    """Every schema field is an argument of the class, with the class's default (no drift)."""
    params = inspect.signature(get_object(schema._target_)).parameters
    for f in dataclasses.fields(schema):
        if f.name.startswith("_"):
            continue
        assert f.name in params, f"{group}/{name}: {f.name} is not an argument of {schema._target_}"
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        wanted = params[f.name].default
        assert (list(wanted) if isinstance(wanted, tuple) else wanted) == default, (name, f.name)


@pytest.mark.parametrize("head", ["lmliif", "lmlte", "lmciaosr"])
def test_the_lm_head_schemas_share_one_base_and_default_to_their_yaml(head):
    """The LM heads' common options are declared once (LMHeadConfig); each schema's defaults, inherited or
    its own, are exactly the group YAML's values (a base default never leaks over a head's own)."""
    from liif_sr.conf.schema import HeadConfig, LMHeadConfig

    schema = OmegaConf.get_type(_compose(f"model/head={head}").model.head)
    assert issubclass(schema, LMHeadConfig) and issubclass(schema, HeadConfig)
    yaml = OmegaConf.to_container(OmegaConf.load(SRC / "conf" / "model" / "head" / f"{head}.yaml"))
    yaml.pop("defaults")
    assert OmegaConf.to_container(OmegaConf.structured(schema)) == yaml


def test_the_data_module_takes_one_options_object():
    options = DataOptions(train_sources=["skimage:astronaut"], inp_size=16, sample_q=64, batch_size=4)
    by_object = RandomScaleDataModule(options)
    by_keywords = RandomScaleDataModule(
        train_sources=["skimage:astronaut"], inp_size=16, sample_q=64, batch_size=4
    )
    assert by_object.options == by_keywords.options == options
    assert dict(by_object.hparams) == dict(by_keywords.hparams) == dataclasses.asdict(options)
    assert RandomScaleDataModule(options, batch_size=8).options.batch_size == 8
    with pytest.raises(TypeError):
        RandomScaleDataModule(batch_sise=8)  # a misspelt option is not silently ignored


def test_instantiate_of_the_composed_data_config_builds_the_same_options():
    cfg = _compose("data.batch_size=4", "data.inp_size=24")
    dm = instantiate(cfg.data, _convert_="all")
    assert isinstance(dm, RandomScaleDataModule)
    assert dm.options == DataOptions.from_mapping(cfg.data)
    assert dm.options.inp_size == 24 and dm.options.batch_size == 4


@pytest.mark.parametrize("key", ["downsampler", "val_downsampler"])
def test_an_unknown_downsampler_is_refused_at_start(tmp_path, monkeypatch, capsys, key):
    """It used to start training and crash at the first batch (or the first validation), run folder written."""
    from liif_sr.train import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["liif-sr-train", f"data.{key}=bogus", f"paths.log_dir={tmp_path}/logs"])
    with pytest.raises(SystemExit) as exc:
        main()
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and len(err.splitlines()) == 1, err
    assert f"data.{key} must be one of pil, matlab, torch_antialias, got 'bogus'" in err
    assert os.listdir(tmp_path) == []
    with pytest.raises(DataOptionError, match=f"data.{key}"):
        DataOptions(**{key: "bicubic"})


@pytest.mark.parametrize(("batch", "world"), [(3, 2), (16, 3), (1, 2)])
def test_batch_split_is_refused_by_the_one_check(batch, world):
    with pytest.raises(
        DataOptionError, match=f"data.batch_size={batch} .global. is not divisible by {world}"
    ):
        check_batch_split(batch, world)
    assert check_batch_split(batch * world, world) == batch


def test_no_private_hydra_api_outside_its_one_module():
    users = sorted(
        str(p.relative_to(SRC))
        for p in SRC.rglob("*.py")
        if "hydra._internal" in p.read_text(encoding="utf-8")
    )
    assert users == ["training/hydra_cli.py"]
