"""Issue 19 point 4: the old public names still import for one release, each with a DeprecationWarning
naming its new path, and resolve to the renamed objects; the configs instantiate the new names."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

import liif_sr
from liif_sr.data.datamodule import RandomScaleDataModule
from liif_sr.models.implicit_sr import ImplicitSR, clip_cell
from liif_sr.training.module import SRTrainingModule

OLD = [
    ("liif_sr", "LIIF", ImplicitSR, "liif_sr.models.implicit_sr.ImplicitSR"),
    ("liif_sr.models", "LIIF", ImplicitSR, "liif_sr.models.implicit_sr.ImplicitSR"),
    ("liif_sr.models.liif", "LIIF", ImplicitSR, "liif_sr.models.implicit_sr.ImplicitSR"),
    ("liif_sr.models.liif", "clip_cell", clip_cell, "liif_sr.models.implicit_sr.clip_cell"),
    ("liif_sr.training.module", "LIIFModule", SRTrainingModule, "liif_sr.training.module.SRTrainingModule"),
    ("liif_sr.data.datamodule", "LIIFDataModule", RandomScaleDataModule, "RandomScaleDataModule"),
]


@pytest.mark.parametrize(("module", "name", "new", "hint"), OLD)
def test_old_name_warns_and_is_the_new_object(module, name, new, hint):
    mod = importlib.import_module(module)
    with pytest.warns(DeprecationWarning, match=rf"{module}\.{name} is deprecated.*{hint}") as record:
        obj = getattr(mod, name)
    assert obj is new
    assert record[0].filename == __file__  # the warning points at the user's line


def test_old_from_import_statement_warns():
    with pytest.warns(DeprecationWarning, match="use liif_sr.models.implicit_sr.ImplicitSR"):
        from liif_sr import LIIF  # noqa: F401
    with pytest.warns(DeprecationWarning, match="SRTrainingModule"):
        from liif_sr.training.module import LIIFModule  # noqa: F401


@pytest.mark.parametrize(
    "module", ["liif_sr", "liif_sr.models", "liif_sr.models.liif", "liif_sr.training.module"]
)
def test_unknown_names_still_raise(module):
    with pytest.raises(AttributeError):
        _ = importlib.import_module(module).NoSuchName


def test_new_names_import_without_warning(recwarn):
    from liif_sr import ImplicitSR as top
    from liif_sr.models import ImplicitSR as models_level

    assert top is models_level is ImplicitSR
    assert not [w for w in recwarn if issubclass(w.category, DeprecationWarning)]


def test_configs_target_the_new_names():
    conf = Path(liif_sr.__file__).parent / "conf"
    targets = "\n".join(p.read_text() for p in conf.rglob("*.yaml"))
    assert "liif_sr.training.module.SRTrainingModule" in targets
    assert "liif_sr.data.datamodule.RandomScaleDataModule" in targets
    for old in ("LIIFModule", "LIIFDataModule", "models.liif."):
        assert old not in targets


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("model.fast.compile=true", "model.speed.compile=true"),
        ("+model.fast.compile_mode=max-autotune", "+model.speed.compile_mode=max-autotune"),
        ("~model.fast", "~model.speed"),
        ("model.fast={channels_last:true}", "model.speed={channels_last:true}"),
        ("model.fast.channels_last=true,false", "model.speed.channels_last=true,false"),
        ("trainer=gpu_fast", "trainer=gpu_speed"),
        ("++trainer=gpu_fast", "++trainer=gpu_speed"),
    ],
)
def test_old_training_speed_keys_are_rewritten_with_a_warning(old, new, caplog):
    from liif_sr.training.renamed_keys import upgrade_overrides

    with caplog.at_level("WARNING"):
        assert upgrade_overrides(["-m", old, "data.sampler=device"]) == ["-m", new, "data.sampler=device"]
    assert (
        len(caplog.records) == 1
        and "deprecated" in caplog.text
        and new.lstrip("+~").split("=")[0] in caplog.text
    )


@pytest.mark.parametrize(
    "arg", ["model.head.fast=false", "model.faster=1", "trainer=gpu_fast2", "trainer=gpu", "data.fast.x=1"]
)
def test_other_keys_are_left_alone(arg, caplog):
    from liif_sr.training.renamed_keys import upgrade_overrides

    assert upgrade_overrides([arg]) == [arg] and not caplog.records


def test_gpu_fast_alias_composes_as_gpu_speed(compose_train):
    old, new = compose_train("trainer=gpu_fast"), compose_train("trainer=gpu_speed")
    assert old.trainer == new.trainer and new.trainer.precision == "bf16-mixed" and "fast" not in old.model
