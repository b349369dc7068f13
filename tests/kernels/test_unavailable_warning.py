"""A C kernel the decode would use but cannot have (no compiler, a broken one, a failed build, an unusable
cache) is one WARNING per kernel and process naming the reason and the fix; ``liif-sr upscale`` prints it as
its own ``warning:`` line, the Python API logs it (shown on stderr without any logging set-up). Kernels turned
off on purpose (``LIIF_SR_KERNELS=0``, ``kernels.disabled()``) stay silent, and so does a model whose decode
uses no kernel. Fresh kernel cache per test and ``load``'s cache reset: ``tests/kernels/conftest.py``."""

from __future__ import annotations

import logging
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from liif_sr import kernels
from liif_sr.kernels import build

NO_COMPILER = "install a C compiler (cc/gcc) or set CC to one"
ENC = {"name": "edsr_baseline", "args": {"n_resblocks": 1, "n_feats": 8}}
LTE = {"name": "lte", "hidden_dim": 16, "hidden_list": [16]}  # decodes through the `lte` kernel


def _warnings(caplog) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.name == build.log.name and r.levelno >= logging.WARNING
    ]


@pytest.mark.parametrize(
    ("cc", "why", "fix"),
    [
        ("/nonexistent/cc", "no C compiler ('/nonexistent/cc' not found)", NO_COMPILER),
        ("false", "the C compiler 'false' does not run (exit status 1)", "set CC to a working C compiler"),
    ],
)
def test_no_or_broken_compiler_is_one_warning_with_the_fix(monkeypatch, caplog, cc, why, fix):
    monkeypatch.setenv("CC", cc)
    with caplog.at_level(logging.INFO, logger=build.log.name):
        assert kernels.load("lte") is None and kernels.load("lte") is None and not kernels.available("lte")
    (line,) = _warnings(caplog)  # once per kernel and process
    assert line.startswith("liif_sr C kernel 'lte' unavailable: ") and "\n" not in line, line
    assert why in line and fix in line and "slower PyTorch path" in line and "LIIF_SR_KERNELS=0" in line
    with caplog.at_level(logging.INFO, logger=build.log.name):
        assert kernels.load("lmf") is None
    assert len(_warnings(caplog)) == 2 and "'lmf'" in _warnings(caplog)[1]  # each kernel once


def test_a_failed_build_names_the_compilers_error(monkeypatch, caplog):
    monkeypatch.setenv("CC", f"{sys.executable} -c 'import sys; sys.exit(sys.argv[-1] != \"--version\")'")
    with caplog.at_level(logging.WARNING, logger=build.log.name):
        assert kernels.load("lte") is None
    (line,) = _warnings(caplog)
    assert "the build failed (" in line and "set CC to a working C compiler" in line, line


def test_an_unusable_cache_folder_names_the_variable(tmp_path, monkeypatch, caplog):
    if subprocess.run(["sh", "-c", "command -v ${CC:-cc}"], capture_output=True).returncode:
        pytest.skip("no C compiler: the cache folder is never reached")
    (tmp_path / "a_file").write_text("")
    monkeypatch.setenv("LIIF_SR_KERNEL_CACHE", str(tmp_path / "a_file" / "kernels"))
    with caplog.at_level(logging.WARNING, logger=build.log.name):
        assert kernels.load("lte") is None
    (line,) = _warnings(caplog)
    assert (
        "the kernel cache is not usable" in line and "set LIIF_SR_KERNEL_CACHE to a writable folder" in line
    )


def test_kernels_off_on_purpose_warn_nothing(monkeypatch, caplog):
    monkeypatch.setenv("CC", "/nonexistent/cc")  # would warn if it were tried
    with caplog.at_level(logging.INFO, logger=build.log.name):
        with kernels.disabled():
            assert kernels.load("lte") is None
        monkeypatch.setenv("LIIF_SR_KERNELS", "0")
        assert kernels.load("metasr") is None
    assert _warnings(caplog) == [] and len(caplog.records) == 2  # the two INFO "off" lines


def _model_file(tmp_path, head: dict) -> str:
    from liif_sr.checkpoints import save_weights
    from liif_sr.models.build import build_model

    torch.manual_seed(0)
    return str(
        save_weights(build_model({"encoder": ENC, "head": head}), tmp_path / f"{head['name']}.safetensors")
    )


def _upscale(tmp_path, capsys, head: dict) -> list[str]:
    """``liif-sr upscale`` of two small images in-process: its stderr lines that are warnings."""
    from liif_sr.cli import main

    folder = tmp_path / "in"
    folder.mkdir(exist_ok=True)
    rgb = np.random.default_rng(0).integers(0, 256, (12, 10, 3), dtype=np.uint8)
    for name in ("a.png", "b.png"):
        Image.fromarray(rgb).save(folder / name)
    argv = ["upscale", str(folder), "--scale", "3", "--precision", "fp32", "--quiet", "--overwrite"]
    code = main([*argv, "--checkpoint", _model_file(tmp_path, head), "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 0 and len(list((tmp_path / "out").iterdir())) == 2, err
    return [line for line in err.splitlines() if "warning" in line]


def test_upscale_cli_prints_one_warning_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CC", "/nonexistent")
    (line,) = _upscale(tmp_path, capsys, LTE)  # two images, one line
    assert line.startswith("liif-sr upscale: warning: C kernel 'lte' unavailable: no C compiler"), line
    assert NO_COMPILER in line
    build.reset()  # a new process
    monkeypatch.setenv("LIIF_SR_KERNELS", "0")
    assert _upscale(tmp_path, capsys, LTE) == []  # off on purpose: silent


def test_upscale_cli_is_silent_when_the_decode_uses_no_kernel(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CC", "/nonexistent")
    assert _upscale(tmp_path, capsys, {"name": "liif", "hidden_list": [8]}) == []


def test_the_api_logs_one_warning(tmp_path, monkeypatch, caplog):
    from liif_sr import load_model

    monkeypatch.setenv("CC", "/nonexistent")
    model = load_model(_model_file(tmp_path, LTE))
    lr = torch.rand(1, 3, 12, 10)
    with caplog.at_level(logging.WARNING, logger=build.log.name):
        model.upscale(lr, (30, 25), precision="fp32")
        model.upscale(lr, (36, 30), precision="fp32")
    (line,) = _warnings(caplog)
    assert "'lte' unavailable: no C compiler" in line and NO_COMPILER in line


def test_the_api_shows_it_without_logging_set_up(tmp_path):
    """A fresh interpreter without logging configuration: the warning reaches stderr once (Python's
    last-resort handler); with ``LIIF_SR_KERNELS=0`` nothing does."""
    import os

    weights = _model_file(tmp_path, LTE)
    code = (
        f"import torch, liif_sr; m = liif_sr.load_model(r'{weights}'); x = torch.rand(1, 3, 12, 10)\n"
        "for _ in range(2): m.upscale(x, (30, 25), precision='fp32')\n"
    )
    env = {**os.environ, "CC": "/nonexistent", "LIIF_SR_KERNEL_CACHE": str(tmp_path / "kc")}
    env.pop("LIIF_SR_KERNELS", None)
    err = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True).stderr
    assert [ln for ln in err.splitlines() if "unavailable" in ln] == [
        ln for ln in err.splitlines() if ln.startswith("liif_sr C kernel 'lte' unavailable: no C compiler")
    ] and err.count("unavailable") == 1, err
    env["LIIF_SR_KERNELS"] = "0"
    err = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True).stderr
    assert "kernel" not in err, err
