"""`liif-sr upscale`: folders and files, sizes, scales, and the bad-input corpus (issue: reliability)."""

from __future__ import annotations

import os
from pathlib import Path

import corpus
import numpy as np
import pytest
import torch
from PIL import Image

from liif_sr.checkpoints import save_weights
from liif_sr.cli import main
from liif_sr.models import EDSRBaseline, ImplicitSR, LIIFHead


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = ImplicitSR(EDSRBaseline(n_resblocks=1, n_feats=8), LIIFHead(8, hidden_list=[16, 16]))
    return save_weights(model, tmp_path_factory.mktemp("w") / "tiny.safetensors")


def _photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    import skimage.data

    img = skimage.data.astronaut()
    y, x = 40 + 7 * seed, 60 + 11 * seed
    return np.ascontiguousarray(img[y : y + h, x : x + w])


def _run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_folder_100_to_800(tmp_path, tiny_ckpt, capsys):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        Image.fromarray(_photo(100, 100, i)).save(src / f"img{i}.png")
    code, _, err = _run(
        capsys,
        "upscale",
        str(src),
        "--size",
        "800x800",
        "-o",
        str(tmp_path / "out"),
        "-c",
        str(tiny_ckpt),
        "-q",
    )
    assert code == 0, err
    outs = sorted((tmp_path / "out").glob("*.png"))
    assert [p.name for p in outs] == ["img0.png", "img1.png", "img2.png"]
    for p in outs:
        assert Image.open(p).size == (800, 800) and Image.open(p).mode == "RGB"
    assert "upscaled 3 image(s)" in err and "images/s" in err


def test_single_file_scale_and_anisotropic(tmp_path, tiny_ckpt, capsys):
    src = tmp_path / "a.png"
    Image.fromarray(_photo(30, 40)).save(src)
    code, _, err = _run(
        capsys,
        "upscale",
        str(src),
        "--scale",
        "3.3",
        "-o",
        str(tmp_path / "b.png"),
        "-c",
        str(tiny_ckpt),
        "-q",
    )
    assert code == 0, err
    assert Image.open(tmp_path / "b.png").size == (132, 99)  # (W, H) = round(40*3.3), round(30*3.3)
    code, _, err = _run(
        capsys,
        "upscale",
        str(src),
        "--size",
        "50x160",
        "-o",
        str(tmp_path / "c.png"),
        "-c",
        str(tiny_ckpt),
        "-q",
    )
    assert code == 0 and Image.open(tmp_path / "c.png").size == (160, 50)
    code, _, err = _run(
        capsys,
        "upscale",
        str(src),
        "--scale",
        "2x3",
        "-o",
        str(tmp_path / "d.png"),
        "-c",
        str(tiny_ckpt),
        "-q",
        "--cell-clip",
        "4",
    )
    assert code == 0 and Image.open(tmp_path / "d.png").size == (120, 60)


def test_cli_matches_api(tmp_path, tiny_ckpt, capsys):
    from liif_sr import load_model

    arr = _photo(20, 24)
    Image.fromarray(arr).save(tmp_path / "x.png")
    assert (
        _run(
            capsys,
            "upscale",
            str(tmp_path / "x.png"),
            "--size",
            "50x61",
            "-o",
            str(tmp_path / "y.png"),
            "-c",
            str(tiny_ckpt),
            "-q",
        )[0]
        == 0
    )
    model = load_model(tiny_ckpt)
    lr = torch.from_numpy(arr).permute(2, 0, 1).float()[None] / 255
    want = (model.upscale(lr, (50, 61))[0] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    assert np.array_equal(np.asarray(Image.open(tmp_path / "y.png")), want)


@pytest.mark.parametrize("case", sorted(corpus.CORPUS))
def test_bad_input_corpus(tmp_path, tiny_ckpt, capsys, case):
    """Each corpus file next to a good image: bad ones fail with one line naming the file, no output
    file, no traceback; the good image is still processed; ok cases produce output."""
    src = tmp_path / "in"
    src.mkdir()
    bad = corpus.CORPUS[case](src)
    Image.fromarray(_photo(16, 16)).save(src / "zz_good.png")
    out = tmp_path / "out"
    inputs = [str(bad), str(src / "zz_good.png")] if bad.suffix == ".bin" else [str(src)]  # folders skip .bin
    code, _, err = _run(
        capsys, "upscale", *inputs, "--scale", "2", "-o", str(out), "-c", str(tiny_ckpt), "-q"
    )
    expected = corpus.EXPECTED[case]
    assert (out / "zz_good.png").is_file()
    produced = out / f"{bad.stem}.png"
    if expected == "ok":
        assert code == 0, err
        assert produced.is_file()
    else:
        assert code == 1
        assert "Traceback" not in err
        lines = [ln for ln in err.splitlines() if "failed:" in ln]
        assert len(lines) == 1 and bad.name in lines[0] and expected in lines[0]
        assert not produced.exists()
        assert "1 failed" in err
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left


def test_exif_alpha_gray_outputs(tmp_path, tiny_ckpt, capsys):
    src = tmp_path / "in"
    src.mkdir()
    rot, alpha, gray = corpus.exif_rotated(src), corpus.rgba(src), corpus.grayscale(src)
    assert (
        _run(
            capsys, "upscale", str(src), "--scale", "2", "-o", str(tmp_path / "o"), "-c", str(tiny_ckpt), "-q"
        )[0]
        == 0
    )
    w, h = Image.open(rot).size
    assert Image.open(tmp_path / "o" / f"{rot.stem}.png").size == (2 * h, 2 * w)  # orientation honoured
    assert Image.open(tmp_path / "o" / f"{alpha.stem}.png").mode == "RGBA"  # alpha preserved
    assert Image.open(tmp_path / "o" / f"{gray.stem}.png").mode == "L"  # grayscale stays grayscale


@pytest.mark.parametrize(
    "args,message",
    [
        (["--scale", "0"], "positive finite"),
        (["--scale", "-2"], "positive finite"),
        (["--scale", "nan"], "positive finite"),
        (["--scale", "inf"], "positive finite"),
        (["--scale", "abc"], "expected a number"),
        (["--size", "0x10"], "positive integers"),
        (["--size", "12xq"], "expected HxW"),
    ],
)
def test_bad_options(tmp_path, tiny_ckpt, capsys, args, message):
    src = tmp_path / "a.png"
    Image.fromarray(_photo(8, 8)).save(src)
    code, _, err = _run(
        capsys, "upscale", str(src), *args, "-o", str(tmp_path / "b.png"), "-c", str(tiny_ckpt)
    )
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "b.png").exists()


def test_output_limits_and_paths(tmp_path, tiny_ckpt, capsys):
    src = tmp_path / "a.png"
    Image.fromarray(_photo(8, 8)).save(src)
    ck = ["-c", str(tiny_ckpt), "-q"]
    code, _, err = _run(
        capsys,
        "upscale",
        str(src),
        "--scale",
        "100",
        "-o",
        str(tmp_path / "b.png"),
        "--max-output-pixels",
        "1000",
        *ck,
    )
    assert code == 1 and "exceeds --max-output-pixels" in err and not (tmp_path / "b.png").exists()
    code, _, err = _run(
        capsys, "upscale", str(src), "--scale", "2", "-o", str(tmp_path / "nope" / "b.png"), *ck
    )
    assert code == 2 and "output directory does not exist" in err
    target = tmp_path / "exists.png"
    target.write_bytes(b"precious")
    code, _, err = _run(capsys, "upscale", str(src), "--scale", "2", "-o", str(target), *ck)
    assert code == 2 and "--overwrite" in err and target.read_bytes() == b"precious"
    code, _, err = _run(capsys, "upscale", str(src), "--scale", "2", "-o", str(target), "--overwrite", *ck)
    assert code == 0 and Image.open(target).size == (16, 16)
    code, _, err = _run(
        capsys, "upscale", str(tmp_path / "missing.png"), "--scale", "2", "-o", str(tmp_path / "m.png"), *ck
    )
    assert code == 2 and "input not found" in err


def test_read_only_output_dir(tmp_path, tiny_ckpt, capsys, monkeypatch):
    src = tmp_path / "a.png"
    Image.fromarray(_photo(8, 8)).save(src)
    ro = tmp_path / "ro"
    ro.mkdir()
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, m, *a, **k: False if Path(p) == ro else real_access(p, m, *a, **k)
    )
    code, _, err = _run(
        capsys, "upscale", str(src), "--scale", "2", "-o", str(ro / "b.png"), "-c", str(tiny_ckpt)
    )
    assert code == 2 and "permission denied" in err and not list(ro.iterdir())


def test_bad_checkpoints(tmp_path, capsys):
    src = tmp_path / "a.png"
    Image.fromarray(_photo(8, 8)).save(src)
    trunc = tmp_path / "trunc.pth"
    torch.save({"format": "liif-sr", "model": {}, "state_dict": {"w": torch.zeros(1000)}}, trunc)
    trunc.write_bytes(trunc.read_bytes()[:300])
    code, _, err = _run(
        capsys, "upscale", str(src), "--scale", "2", "-o", str(tmp_path / "b.png"), "-c", str(trunc)
    )
    assert code == 2 and "trunc.pth" in err and "Traceback" not in err
    assert not (tmp_path / "b.png").exists()
