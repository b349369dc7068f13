"""A built wheel, installed outside the repository, ships and finds its Hydra configs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

CHECK = r"""
import os, sys, liif_sr
assert liif_sr.__file__.startswith(os.environ["TARGET"]), liif_sr.__file__
from hydra import compose, initialize_config_module
with initialize_config_module("liif_sr.conf", version_base="1.3"):
    for exp in ("quickstart", "edsr_baseline_liif", "rdn_liif"):
        cfg = compose("train", overrides=[f"experiment={exp}"])
        assert cfg.model.encoder._target_.startswith("liif_sr.models.encoders"), cfg.model.encoder
print("CONFIGS_OK", liif_sr.__file__)
"""


@pytest.fixture(scope="module")
def wheel_site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
        timeout=300,
    )
    wheels = list(out.glob("liif_sr-*.whl"))
    assert len(wheels) == 1
    site = out / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheels[0])],
        check=True,
        timeout=300,
    )
    return site


def _run_from_wheel(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """Run ``python ARGS`` in ``cwd`` (outside the repo) with the wheel's copy first on the path."""
    env = dict(os.environ, TARGET=str(site), PYTHONPATH=str(site))
    res = subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stderr[-2000:]
    return res


def test_wheel_contains_configs_and_finds_them(wheel_site, tmp_path):
    conf = wheel_site / "liif_sr" / "conf"
    assert (conf / "train.yaml").is_file() and (conf / "experiment" / "rdn_liif.yaml").is_file()
    assert (wheel_site / "liif_sr" / "py.typed").is_file()
    res = _run_from_wheel(wheel_site, tmp_path, "-c", CHECK)
    assert "CONFIGS_OK" in res.stdout


def test_wheel_train_entry_prints_config(wheel_site, tmp_path):
    res = _run_from_wheel(wheel_site, tmp_path, "-m", "liif_sr.train", "experiment=rdn_liif", "--cfg", "job")
    assert "liif_sr.models.encoders.rdn.RDN" in res.stdout


def test_wheel_upscale_with_shipped_weights(wheel_site, tmp_path):
    """`liif-sr upscale img.png --scale 3.3` from the wheel: the shipped weights are inside it (offline)."""
    import numpy as np
    from PIL import Image

    assert (wheel_site / "liif_sr" / "weights" / "edsr-baseline-liif.safetensors").is_file()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(
        tmp_path / "img.png"
    )
    code = "import sys; from liif_sr.cli import main; sys.exit(main())"
    _run_from_wheel(
        wheel_site, tmp_path, "-c", code, "upscale", "img.png", "--scale", "3.3", "-o", "out.png", "-q"
    )
    assert Image.open(tmp_path / "out.png").size == (99, 66)


def test_wheel_ships_and_builds_the_c_kernels(wheel_site, tmp_path, monkeypatch):
    """The kernels' C sources are package data: the wheel's copy finds and (with a compiler) builds them."""
    from helpers import have_compiler

    csrc = wheel_site / "liif_sr" / "kernels" / "csrc"
    from liif_sr.kernels import build

    shipped = {p.name for p in csrc.iterdir()}
    sources = {p.name for p in build.CSRC.iterdir() if p.suffix in (".c", ".h")}
    assert {"lmf.c", "common.h", "lmf_types.h"} <= sources <= shipped, sources - shipped
    code = (
        "import os; from liif_sr.kernels import build, lmf; "
        "assert str(build.CSRC).startswith(os.environ['TARGET']), build.CSRC; "
        "print('KERNEL', lmf.available())"
    )
    monkeypatch.setenv("LIIF_SR_KERNEL_CACHE", str(tmp_path / "kcache"))
    monkeypatch.delenv("LIIF_SR_KERNELS", raising=False)
    res = _run_from_wheel(wheel_site, tmp_path, "-c", code)
    assert f"KERNEL {have_compiler()}" in res.stdout
