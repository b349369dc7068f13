"""The package layout of issue #11: config targets point into the package of their group, one definition
of the shared helpers (device, uint8 rounding, PSNR protocol), data configs drive the validation protocol,
and both Hydra entries report user errors alike (``HYDRA_FULL_ERROR=1`` honoured)."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

import liif_sr

CONF = Path(liif_sr.__file__).parent / "conf"
#: config group (folder under conf/) → package its liif-sr `_target_`s live in
GROUP_PACKAGE = {
    "callbacks": "liif_sr.training.callbacks.",
    "logger": "liif_sr.training.loggers.",
    "data": "liif_sr.data.",
    "model/encoder": "liif_sr.models.encoders.",
    "model/head": "liif_sr.models.heads.",
    "model": "liif_sr.training.module.",  # the LightningModule config (its sub-groups hold the network)
    "experiment": "liif_sr.training.callbacks.",
    "hydra": "liif_sr.sweep_status.",  # Hydra callbacks: the Hydra plumbing shared by both entries
}


def _targets(node: object):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "_target_":
                yield v
            else:
                yield from _targets(v)
    elif isinstance(node, list):
        for v in node:
            yield from _targets(v)


def test_config_targets_import_and_follow_their_group():
    seen = 0
    for path in sorted(CONF.rglob("*.yaml")):
        group = str(path.parent.relative_to(CONF))
        for target in _targets(yaml.safe_load(path.read_text()) or {}):
            if not target.startswith("liif_sr."):
                continue
            module, name = target.rsplit(".", 1)
            assert hasattr(importlib.import_module(module), name), target
            assert target.startswith(GROUP_PACKAGE[group]), f"{path}: {target}"
            seen += 1
    assert seen >= 11


def test_one_device_resolution():
    from liif_sr.errors import UserError
    from liif_sr.inference import upscale
    from liif_sr.inference.devices import resolve_device

    assert upscale.resolve_device is resolve_device  # liif-sr upscale and liif-sr-eval share it
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(UserError, match=r"--device must be auto, cpu, cuda\[:N\] or mps, got 'tpu'"):
        resolve_device("tpu")
    with pytest.raises(UserError, match=r"device must be .*got 'x'"):
        resolve_device("x", option="device=")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match=r"^device=cuda:1: no CUDA device is available"):
            resolve_device("cuda:1", option="device=")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        assert resolve_device("mps").type == "mps"
    else:
        with pytest.raises(UserError, match="MPS is not available"):
            resolve_device("mps")


def test_one_uint8_rounding_half_up():
    from liif_sr.data.images import tensor_to_uint8
    from liif_sr.inference.upscale import to_uint8
    from liif_sr.training.callbacks.pictures import side_by_side

    x = torch.linspace(0, 1, 4097)
    x = torch.cat([x, torch.tensor([0.5 / 255, 2.5 / 255, 254.5 / 255, -0.1, 1.2, float("nan")])])
    img = x.reshape(1, 1, -1).expand(3, 1, -1)
    ref = torch.nan_to_num(x, 0.0).clamp(0, 1).mul(255).add(0.5).floor().to(torch.uint8).numpy()
    assert (tensor_to_uint8(img)[0, :, 0] == ref).all()
    assert (to_uint8(img)[0, :, 0] == ref).all()  # liif-sr upscale writes what the data reader reads
    assert to_uint8(img[:1]).shape == (1, x.numel(), 1)
    v = torch.nan_to_num(x, 0.0).clamp(0, 1) * 255
    ties = v == v.floor() + 0.5  # exact float32 ties: half up, never half to even
    assert ties.any()
    assert (torch.from_numpy(ref)[ties].long() == v[ties].ceil().long()).all()
    pic = side_by_side([torch.full((3, 4, 4), 2.5 / 255)], size=4)
    assert pic.dtype.name == "uint8"
    assert (pic == tensor_to_uint8(torch.full((3, 4, 4), 2.5 / 255))).all()


def test_one_psnr_protocol():
    from liif_sr.metrics import protocol_shave

    assert protocol_shave("div2k", 2.5) == (9, False)
    assert protocol_shave("benchmark", 4) == (4, True)
    with pytest.raises(ValueError):
        protocol_shave("set5", 2)


@pytest.mark.parametrize(
    ("overrides", "protocol"),
    [
        ((), "benchmark"),  # quickstart: held-out photos, Y
        (("experiment=edsr_baseline_liif",), "div2k"),
        (("experiment=rdn_liif",), "div2k"),
        (("experiment=edsr_baseline_liif_t91_bsds",), "benchmark"),
        (("data=t91_bsds",), "benchmark"),
        (("data=folder", "data.train_sources=[x]"), "div2k"),
    ],
)
def test_val_protocol_follows_the_data_config(compose_train, overrides, protocol):
    cfg = compose_train(*overrides)
    assert cfg.data.val_protocol == protocol and cfg.model.val_protocol == protocol
    assert list(cfg.model.val_scales) == list(cfg.data.val_scales)


def test_quickstart_sets_val_scales_once(compose_train):
    text = (CONF / "experiment" / "quickstart.yaml").read_text()
    assert text.count("val_scales") == 1
    assert list(compose_train().model.val_scales) == [4]


def _train_cli(tmp_path: Path, full_error: bool) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    if full_error:
        env["HYDRA_FULL_ERROR"] = "1"
    cmd = [sys.executable, "-m", "liif_sr.train", f"resume={tmp_path / 'norun'}", f"paths.log_dir={tmp_path}"]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


def test_train_user_error_is_one_line_unless_hydra_full_error(tmp_path):
    res = _train_cli(tmp_path, full_error=False)
    assert res.returncode == 2, res.stderr
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("liif-sr-train: error: resume=") and "no such run directory" in last
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "norun").exists()  # refused before Hydra creates the run folder
    res = _train_cli(tmp_path, full_error=True)
    assert res.returncode != 0 and "Traceback" in res.stderr and "UserError" in res.stderr


@pytest.mark.parametrize(("module", "job"), [("liif_sr.train", "train"), ("liif_sr.evaluate", "evaluate")])
def test_hydra_job_name_is_the_entry(module, job):
    """The shared plumbing does not rename the Hydra job (SLURM job names, ``.hydra`` files use it)."""
    res = subprocess.run(
        [sys.executable, "-m", module, "--cfg", "hydra"], capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stderr
    assert yaml.safe_load(res.stdout)["hydra"]["job"]["name"] == job
