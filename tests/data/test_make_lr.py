"""Tests of ``liif-sr make-lr`` (liif_sr.data.make_lr)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from liif_sr.cli import main
from liif_sr.data.make_lr import make_lr, mod_crop
from liif_sr.data.resize import imresize_matlab_uint8
from liif_sr.errors import UserError


def _photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth RGB image with some texture (deterministic)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([128 + 100 * np.sin(xx / 7 + c) * np.cos(yy / 5 - c) for c in range(3)], axis=-1)
    return np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)


@pytest.fixture
def hr_dir(tmp_path: Path) -> Path:
    d = tmp_path / "HR"
    d.mkdir()
    Image.fromarray(_photo(37, 50, 1)).save(d / "a.png")
    Image.fromarray(_photo(24, 24, 2)).save(d / "b.webp", lossless=True)
    Image.fromarray(_photo(30, 26, 3)[..., 0]).save(d / "c_gray.bmp")  # grayscale -> RGB
    Image.fromarray(np.dstack([_photo(20, 33, 4), np.full((20, 33), 200, np.uint8)])).save(d / "d.tif")
    (d / "notes.txt").write_text("not an image")
    return d


def _read(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.array(im)


def test_cli_writes_edsr_layout(hr_dir, tmp_path, capsys):
    out = tmp_path / "LR_bicubic"
    assert main(["make-lr", str(hr_dir), "--scales", "2", "3", "4", "--out", str(out)]) == 0
    assert "wrote 12 LR images" in capsys.readouterr().out
    expected_sizes = {"a": (37, 50), "b": (24, 24), "c_gray": (30, 26), "d": (20, 33)}
    for s in (2, 3, 4):
        names = sorted(p.name for p in (out / f"X{s}").iterdir())
        assert names == sorted(f"{stem}x{s}.png" for stem in expected_sizes)  # no temporary files left
        for stem, (h, w) in expected_sizes.items():
            lr = _read(out / f"X{s}" / f"{stem}x{s}.png")
            assert lr.shape == (h // s, w // s, 3) and lr.dtype == np.uint8


def test_output_is_mod_cropped_matlab_bicubic(hr_dir, tmp_path):
    out = tmp_path / "lr"
    make_lr(hr_dir, [3], out, progress=False)
    hr = torch.from_numpy(_read(hr_dir / "a.png")).permute(2, 0, 1)
    expected = imresize_matlab_uint8(mod_crop(hr, 3), scale=1 / 3).permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(_read(out / "X3" / "ax3.png"), expected)
    gray = _read(out / "X3" / "c_grayx3.png")
    assert (gray[..., 0] == gray[..., 1]).all() and (gray[..., 1] == gray[..., 2]).all()


def test_existing_files_are_skipped_unless_overwrite(hr_dir, tmp_path, capsys):
    out = tmp_path / "lr"
    assert make_lr(hr_dir, [2], out, progress=False) == (4, 0)
    target = out / "X2" / "ax2.png"
    Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(target)  # stale file
    assert main(["make-lr", str(hr_dir), "--scales", "2", "--out", str(out)]) == 0
    assert "skipped 4 existing" in capsys.readouterr().out
    assert _read(target).shape == (2, 2, 3)
    assert main(["make-lr", str(hr_dir), "--scales", "2", "--out", str(out), "--overwrite"]) == 0
    assert _read(target).shape == (18, 25, 3)


def test_failed_write_leaves_no_partial_file(hr_dir, tmp_path, monkeypatch):
    out = tmp_path / "lr"

    def broken_save(self, fp, *args, **kwargs):
        fp.write(b"\x89PNG partial")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError):
        make_lr(hr_dir, [2], out, progress=False)
    assert not (out / "X2").exists() or list((out / "X2").iterdir()) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{missing}", "--out", "{out}"], "HR folder not found"),
        (["{empty}", "--out", "{out}"], "no images"),
        (["{hr}", "--scales", "1", "--out", "{out}"], "scales must be integers >= 2"),
        (["{hr}", "--out", "{hr}"], "must not be the HR folder"),
        # issue 18 class 4: --out onto a file (or below one) was a traceback
        (["{hr}", "--out", "{file}"], "exists and is not a folder"),
        (["{hr}", "--out", "{file}/sub"], "is a file, not a folder"),
        (["{hr}", "--scales", "2", "--out", "{xfile}"], "X2 exists and is not a folder"),
        # issue 18 class 2: a scale larger than an image is refused before X100/ is created
        (["{hr}", "--scales", "100", "--out", "{out}"], "smaller than scale 100 (nothing written)"),
        (["{hr}", "--scales", "2", "30", "--out", "{out}"], "smaller than scale 30 (nothing written)"),
    ],
)
def test_user_errors_are_one_line(hr_dir, tmp_path, capsys, args, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "xo").mkdir()
    (tmp_path / "xo" / "X2").write_text("x")
    fill = {"missing": tmp_path / "nope", "empty": tmp_path / "empty", "out": tmp_path / "o", "hr": hr_dir}
    fill.update(file=tmp_path / "a_file", xfile=tmp_path / "xo")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    argv = ["make-lr", *(a.format(**fill) for a in args)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "Traceback" not in err and len(err.splitlines()) == 1
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing written


def test_image_smaller_than_scale(tmp_path):
    d = tmp_path / "HR"
    d.mkdir()
    Image.fromarray(_photo(3, 10)).save(d / "tiny.png")
    with pytest.raises(UserError, match="smaller than scale 4"):
        make_lr(d, [4], tmp_path / "lr", progress=False)


def test_help_lists_options(capsys):
    with pytest.raises(SystemExit):
        main(["make-lr", "--help"])
    text = capsys.readouterr().out
    assert "--scales" in text and "--overwrite" in text and "HR_DIR" in text


def test_set5_reproduces_lr_bicubic_files(shared_data, tmp_path):
    """On Set5 HR, make-lr writes files pixel-identical to the MATLAB-made LR_bicubic/X2..X4."""
    root = shared_data / "benchmark" / "Set5"
    out = tmp_path / "LR_bicubic"
    assert main(["make-lr", str(root / "HR"), "--scales", "2", "3", "4", "--out", str(out)]) == 0
    for s in (2, 3, 4):
        for ref in sorted((root / "LR_bicubic" / f"X{s}").glob("*.png")):
            with Image.open(ref) as im:
                expected = np.array(im.convert("RGB"))
            np.testing.assert_array_equal(_read(out / f"X{s}" / ref.name), expected, err_msg=str(ref))
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]
    assert os.listdir(root / "HR")  # input untouched


def test_dangling_symlinks_are_counted(hr_dir, tmp_path, caplog):
    """Issue 18 class 5: a dangling symlink in an image folder was neither counted nor mentioned."""
    (hr_dir / "gone.png").symlink_to(tmp_path / "missing.png")
    written, _ = make_lr(hr_dir, [2], tmp_path / "lr", progress=False)
    assert written == 4
    assert "skipped 1 dangling symlink(s) (target missing): gone.png" in caplog.text
