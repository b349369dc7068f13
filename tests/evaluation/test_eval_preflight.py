"""``liif-sr-eval``: a refused value writes nothing (issue 18, classes 2, 4, 5).

Every refused value is one line with exit 2 **before** Hydra creates ``logs/eval/runs/<time>/``; a multirun
job without weights is a marked row of the table, not a dropped one.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

TINY_MODEL = {
    "encoder": {"name": "edsr_baseline", "args": {"n_resblocks": 1, "n_feats": 4}},
    "head": {"hidden_list": [8], "local_ensemble": False},
}


@pytest.fixture
def bench(tmp_path, monkeypatch) -> Path:
    """A one-image Set5 (HR only) under ``tmp_path/bench``; logs under ``tmp_path/logs``."""
    hr = tmp_path / "bench" / "Set5" / "HR"
    hr.mkdir(parents=True)
    rgb = np.random.default_rng(0).integers(0, 256, (24, 20, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(hr / "a.png")
    monkeypatch.setenv("LIIF_SR_BENCHMARK_DIR", str(tmp_path / "bench"))
    monkeypatch.setenv("LIIF_SR_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory) -> Path:
    from liif_sr.checkpoints import save_weights
    from liif_sr.models.build import build_model

    torch.manual_seed(0)
    return save_weights(build_model(TINY_MODEL), tmp_path_factory.mktemp("ckpt") / "tiny.safetensors")


def _main(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    from liif_sr.evaluate import main

    base = ["benchmark=[set5]", "scales=[2]", "progress=false", "plot=false", "ssim=false"]
    monkeypatch.setattr(sys, "argv", ["liif-sr-eval", *base, *args])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err.strip()


REFUSED = [
    ("first_k=0", "first_k=0: expected a positive integer or null"),
    ("first_k=-2", "first_k=-2: expected a positive integer"),
    ("first_k=abc", "first_k=abc: expected an integer"),
    ("chunk=0", "chunk=0: expected a positive integer"),
    ("chunk=1.5", "chunk=1.5"),
    ("scales=[0]", "scales: scale must be a finite number > 1"),
    ("scales=[]", "scales=[]: list at least one scale"),
    ("scales=[abc]", "scales: scale must be a number"),
    ("border=reflect", "border='reflect': expected none or replicate"),
    ("device=bogus", "device must be auto, cpu, cuda[:N] or mps, got 'bogus'"),
    ("benchmark=[]", "no benchmark set to evaluate"),
    ("benchmark=[bogus]", "benchmark=[bogus]: no benchmark option 'bogus' (choose from b100, div2k"),
    ("benchmark=[set5,bogus]", "no benchmark option 'bogus'"),
    ("logger=nope", "logger=nope: no logger option 'nope'"),
    ("benchmark=[set14]", "Set14"),  # not on disk
    ("cell_clip=off", "cell_clip='off': expected auto, null (off) or a number >= 1"),
    ("cell_clip=0.001", "cell_clip=0.001: cell_clip must be a finite number >= 1"),
    ("cell_clip=1e-30", "cell_clip=1e-30"),
    ("cell_clip=0.5", "cell_clip=0.5"),
    ("cell_clip=0", "cell_clip=0"),
    ("cell_clip=true", "cell_clip=True"),
    ("head_mode=bogus", "head_mode='bogus': expected fast or plain"),
    ("downsampler=nearest", "downsampler='nearest': expected one of pil, matlab, torch_antialias"),
    ("generate_with=bogus", "generate_with='bogus'"),
    ("bicubic=maybe", "bicubic='maybe': expected true or false"),
    ("ssim=2", "ssim=2: expected true or false"),
    ("checkpoint=/nonexistent/model.safetensors", "/nonexistent/model.safetensors"),
    ("checkpoint=[/nonexistent/a.pth,/nonexistent/b.pth]", "/nonexistent/a.pth"),
    ("checkpoint=no-such-shipped-model", "no-such-shipped-model"),
    ("bicubic=false", "nothing to evaluate"),
    ("bogus_key=1", "cannot apply the overrides: Could not override 'bogus_key'.; To append"),
    ("first_k=[1", "cannot apply the overrides: "),
]
if not torch.cuda.is_available():
    REFUSED.append(("device=cuda", "device=cuda: no CUDA device is available"))


@pytest.mark.parametrize(("option", "message"), REFUSED)
def test_refused_values_write_nothing(bench, monkeypatch, capsys, option, message):
    code, err = _main(monkeypatch, capsys, option)
    assert code == 2, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("liif-sr-eval: error: "), err
    assert message in lines[0], (message, lines[0])
    assert not (bench / "logs").exists() and not (bench / "outputs").exists()


def test_a_bad_checkpoint_file_writes_nothing(bench, monkeypatch, capsys, tiny_ckpt):
    junk = bench / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    for option in (f"checkpoint={junk}", f"checkpoint=[{tiny_ckpt},{junk}]", f"checkpoint={bench}"):
        code, err = _main(monkeypatch, capsys, option)
        assert code == 2 and len(err.splitlines()) == 1, err
        assert not (bench / "logs").exists()


def test_accepted_values_run(bench, monkeypatch, capsys, tiny_ckpt):
    """The checks refuse only what cannot work: these run to the end (and write their run folder)."""
    for option in ("cell_clip=null", "cell_clip=1", "cell_clip=4", "head_mode=plain", "first_k=1"):
        code, err = _main(monkeypatch, capsys, f"checkpoint={tiny_ckpt}", option)
        assert code == 0, (option, err)
    assert len(list((bench / "logs" / "eval" / "runs").iterdir())) == 5


def test_a_multirun_job_without_weights_is_a_marked_row(bench, monkeypatch, capsys, tiny_ckpt):
    import shutil

    sweep = bench / "multiruns" / "x"
    for job in ("0", "2"):
        (sweep / job).mkdir(parents=True)
        shutil.copy(tiny_ckpt, sweep / job / "model.safetensors")
    (sweep / "1").mkdir()
    (sweep / "1" / "train.log").write_text("killed\n")
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    code, _ = _main(monkeypatch, capsys, f"checkpoint={sweep}", "first_k=1")
    assert code == 0
    (run,) = (bench / "logs" / "eval" / "runs").iterdir()
    md = (run / "results.md").read_text()
    assert "| job 1: no weights | – |" in md
    assert "job 1: no weights = not evaluated: the job folder holds no model.safetensors" in md
