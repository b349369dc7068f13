"""``liif-sr upscale``: an output never destroys an input (issue 18, classes 1 and 5).

An input is never an output (same path, ``..``, symlinks, hard links, the same folder), an output folder is
never scanned as input, ``--skip-existing`` keeps only outputs of the size this run makes, dangling symlinks
and multi-frame files are mentioned.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from liif_sr.checkpoints import save_weights
from liif_sr.cli import main
from liif_sr.models import EDSRBaseline, ImplicitSR, LIIFHead


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = ImplicitSR(EDSRBaseline(n_resblocks=1, n_feats=8), LIIFHead(8, hidden_list=[16, 16]))
    return save_weights(model, tmp_path_factory.mktemp("w") / "tiny.safetensors")


def _img(path: Path, h: int = 6, w: int = 5) -> Path:
    rgb = np.random.default_rng(h * w).integers(0, 256, (h, w, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path)
    return path


def _run(capsys, ckpt: Path, *args: str) -> tuple[int, str]:
    code = main(["upscale", *args, "-c", str(ckpt), "-q"])
    return code, capsys.readouterr().err


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def _refused(err: str, *parts: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for part in parts:
        assert part in lines[0], (part, lines[0])


@pytest.mark.parametrize("flag", [[], ["--overwrite"], ["--skip-existing"]])
def test_the_input_file_is_never_its_output(tmp_path, ckpt, capsys, flag):
    col = tmp_path / "col"
    src = _img(col / "x.png")
    (tmp_path / "link.png").symlink_to(src)
    os.link(src, col / "hard.png")
    before = _snapshot(tmp_path)
    for out in (src, col / ".." / "col" / "x.png", tmp_path / "link.png", col / "hard.png"):
        code, err = _run(capsys, ckpt, str(src), "--scale", "2", "-o", str(out), *flag)
        assert code == 2, (out, err)
        _refused(err, "is the input", "an input is never overwritten")
        assert _snapshot(tmp_path) == before
    code, err = _run(capsys, ckpt, str(tmp_path / "link.png"), "--scale", "2", "-o", str(src), *flag)
    assert code == 2 and "is the input" in err  # a symlinked input onto its target


@pytest.mark.parametrize("flag", [["--overwrite"], ["--skip-existing"], []])
def test_the_input_folder_is_never_the_output_folder(tmp_path, ckpt, capsys, flag):
    d = tmp_path / "col" / "d"
    _img(d / "a.png")
    _img(d / "b.png", 7, 4)
    before = _snapshot(tmp_path)
    for out in (d, tmp_path / "col" / ".." / "col" / "d"):
        code, err = _run(capsys, ckpt, str(d), "--scale", "2", "-o", str(out), *flag)
        assert code == 2, err
        _refused(err, "is the input folder", "write to another folder")
        assert _snapshot(tmp_path) == before


def test_another_input_as_output_is_refused(tmp_path, ckpt, capsys):
    """``a.jpg`` and ``a.png`` in one folder: ``a.jpg``'s output in that folder would be ``a.png``."""
    d = tmp_path / "d"
    _img(d / "a.png")
    other = _img(tmp_path / "other.png")
    code, err = _run(capsys, ckpt, str(other), str(d / "a.png"), "--scale", "2", "-o", str(tmp_path))
    assert code == 2
    _refused(err, "is the input", "other.png")


def test_an_output_folder_inside_the_input_is_not_scanned(tmp_path, ckpt, capsys):
    col = tmp_path / "col2"
    _img(col / "a.png")
    _img(col / "sub" / "b.png", 5, 5)
    for run in range(3):  # each run: the same two outputs, never col2/up/up/...
        code, err = _run(
            capsys, ckpt, str(col), "--scale", "2", "-o", str(col / "up"), "--recursive", "--overwrite"
        )
        assert code == 0, err
        assert "upscaled 2 image(s)" in err
        assert "not scanning the output folder" in err if run else True
    assert sorted(p.relative_to(col / "up").as_posix() for p in (col / "up").rglob("*.png")) == [
        "a.png",
        "sub/b.png",
    ]
    code, err = _run(capsys, ckpt, str(col), "--scale", "2", "-o", str(col / "up"), "--skip-existing")
    assert code == 0 and "1 skipped" in err and "subfolder" in err  # col2/sub only: up is not counted
    assert "holding 1 image(s)" in err


def test_skip_existing_refuses_outputs_of_another_size(tmp_path, ckpt, capsys):
    src = tmp_path / "in"
    _img(src / "a.png", 6, 5)
    _img(src / "b.png", 7, 4)
    out = tmp_path / "out"
    assert _run(capsys, ckpt, str(src), "--scale", "2", "-o", str(out))[0] == 0
    before = _snapshot(out)
    for other in (["--scale", "3"], ["--scale", "2x3"], ["--size", "12x11"]):
        code, err = _run(capsys, ckpt, str(src), *other, "-o", str(out), "--skip-existing")
        assert code == 2, err
        _refused(err, "--skip-existing:", "out/a.png is 12x10 but this run makes", "pass --overwrite")
        assert _snapshot(out) == before
    code, err = _run(capsys, ckpt, str(src), "--scale", "2", "-o", str(out), "--skip-existing")
    assert code == 0 and "2 skipped" in err and _snapshot(out) == before
    (out / "b.png").unlink()  # an interrupted run: the missing one is made, the right-sized one kept
    code, err = _run(capsys, ckpt, str(src), "--scale", "2", "-o", str(out), "--skip-existing")
    assert code == 0 and "upscaled 1 image(s)" in err and "1 skipped" in err
    (out / "a.png").write_bytes(b"not an image")
    code, err = _run(capsys, ckpt, str(src), "--scale", "2", "-o", str(out), "--skip-existing")
    assert code == 2
    _refused(err, "out/a.png is not a readable image")


def test_dangling_symlinks_are_counted(tmp_path, ckpt, capsys):
    d = tmp_path / "d"
    _img(d / "a.png")
    (d / "gone.png").symlink_to(tmp_path / "missing.png")
    (d / "gone2.jpg").symlink_to(tmp_path / "missing2.jpg")
    for extra in ([], ["--recursive"]):
        code, err = _run(capsys, ckpt, str(d), "--scale", "2", "-o", str(tmp_path / f"o{len(extra)}"), *extra)
        assert code == 0, err
        assert "skipped 2 dangling symlink(s) (target missing): gone.png, gone2.jpg" in err
        assert "upscaled 1 image(s)" in err


def test_multi_frame_inputs_are_noted(tmp_path, ckpt, capsys):
    frames = [Image.new("RGB", (5, 4), c) for c in ((250, 0, 0), (0, 250, 0))]
    frames[0].save(tmp_path / "anim.tif", save_all=True, append_images=frames[1:])
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    for name in ("anim.tif", "anim.gif"):
        code, err = _run(
            capsys, ckpt, str(tmp_path / name), "--scale", "2", "-o", str(tmp_path / f"{name}.png")
        )
        assert code == 0, err
        assert f"{name} has 2 frames; only the first is upscaled" in err
        assert Image.open(tmp_path / f"{name}.png").size == (10, 8)  # one frame, x2
