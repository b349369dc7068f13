"""Issue #14: every `liif-sr upscale` option value is used as the user meant it or refused in one line."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageCms

from liif_sr.checkpoints import save_weights
from liif_sr.cli import main
from liif_sr.models import EDSRBaseline, ImplicitSR, LIIFHead


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = ImplicitSR(EDSRBaseline(n_resblocks=1, n_feats=8), LIIFHead(8, hidden_list=[16, 16]))
    return save_weights(model, tmp_path_factory.mktemp("w") / "tiny.safetensors")


def _img(path: Path, h: int = 12, w: int = 10, **save) -> Path:
    rgb = np.random.default_rng(h * w).integers(0, 256, (h, w, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path, **save)
    return path


def _run(capsys, *args: str) -> tuple[int, str]:
    code = main(["upscale", *args])
    return code, capsys.readouterr().err


def _one_line_error(err: str, *parts: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for part in parts:
        assert part in lines[0], (part, lines[0])


@pytest.mark.parametrize(
    "args,message",
    [
        (["--size", "80x"], "--size '80x': expected HxW"),
        (["--size", "x80"], "expected HxW"),
        (["--size", "2x3x4"], "expected HxW"),
        (["--size=-5x10"], "expected HxW"),
        (["--size", "0x0"], "positive integers"),
        (["--size", "1.5x2"], "expected HxW"),
        (["--size", "1000000x1000000"], "exceeds --max-output-pixels"),
        (
            ["--size", "200x200", "--max-output-pixels", "1000"],
            "40000 pixels exceeds --max-output-pixels 1000",
        ),
        (["--scale", "1e308"], "at most 1000 per axis"),
        (["--scale", "5000"], "at most 1000 per axis"),
        (["--scale", "2x2000"], "at most 1000 per axis"),
        (["--scale", "2", "--cell-clip", "0"], "--cell-clip 0: cell_clip must be a finite number >= 1"),
        (["--scale", "2", "--cell-clip", "-4"], "--cell-clip -4: cell_clip must be a finite number >= 1"),
        # issue 18 class 5: below 1 the cell floor is larger than an LR pixel (all-black/shifted output)
        (
            ["--scale", "2", "--cell-clip", "1e-3"],
            "--cell-clip 0.001: cell_clip must be a finite number >= 1",
        ),
        (["--scale", "2", "--cell-clip", "1e-30"], "--cell-clip 1e-30: cell_clip must be"),
        (["--scale", "2", "--cell-clip", "0.5"], "--cell-clip 0.5: cell_clip must be"),
        (["--scale", "2", "--cell-clip", "0.999"], "--cell-clip 0.999: cell_clip must be"),
        (["--scale", "2", "--cell-clip", "nan"], "--cell-clip nan"),
        (["--scale", "2", "--cell-clip", "inf"], "--cell-clip inf"),
        (["--scale", "2", "--chunk", "0"], "--chunk 0: must be a positive integer"),
        (["--scale", "2", "--chunk", "-5"], "--chunk -5: must be a positive integer"),
        (["--scale", "2", "--batch", "0"], "--batch 0: must be a positive integer"),
        (["--scale", "2", "--tile", "-1"], "--tile -1: must be >= 0"),
        (["--scale", "2", "--max-memory", "0"], "--max-memory"),
        (["--scale", "2", "--max-memory=-1G"], "--max-memory"),
        (["--scale", "2", "--max-output-pixels", "0"], "--max-output-pixels 0: must be at least 1"),
        (["--scale", "2", "--max-output-pixels", "nan"], "--max-output-pixels nan"),
    ],
)
def test_bad_option_values(tmp_path, ckpt, capsys, args, message):
    src = _img(tmp_path / "a.png")
    code, err = _run(capsys, str(src), *args, "-o", str(tmp_path / "b.png"), "-c", str(ckpt), "-q")
    assert code == 2
    _one_line_error(err, message)
    assert not (tmp_path / "b.png").exists()


def test_size_one_number_is_a_square(tmp_path, ckpt, capsys):
    src = _img(tmp_path / "a.png")
    code, err = _run(capsys, str(src), "--size", "20", "-o", str(tmp_path / "b.png"), "-c", str(ckpt), "-q")
    assert code == 0, err
    assert Image.open(tmp_path / "b.png").size == (20, 20)


@pytest.mark.parametrize("scale", ["1e-9", "0.01", "1x0.001"])
def test_scale_giving_no_pixels_is_a_per_file_failure(tmp_path, ckpt, capsys, scale):
    src = _img(tmp_path / "a.png", 45, 33)
    code, err = _run(capsys, str(src), "--scale", scale, "-o", str(tmp_path / "b.png"), "-c", str(ckpt), "-q")
    assert code == 1 and "each side must be at least 1 pixel" in err and "a.png: --scale" in err
    assert "a 45x33 image would become" in err and not (tmp_path / "b.png").exists()


def test_tiny_tile_is_raised_and_fast(tmp_path, ckpt, capsys):
    src = _img(tmp_path / "a.png", 45, 33)
    code, err = _run(
        capsys, str(src), "--scale", "2", "-o", str(tmp_path / "plain.png"), "-c", str(ckpt), "-q"
    )
    assert code == 0, err
    for tile in ("1", "3"):
        start = time.perf_counter()
        out = tmp_path / f"t{tile}.png"
        code, err = _run(
            capsys, str(src), "--scale", "2", "-o", str(out), "-c", str(ckpt), "-q", "--tile", tile
        )
        assert code == 0, err
        assert time.perf_counter() - start < 20
        assert f"note: --tile {tile} is below this model's minimum of 16" in err and "using 16" in err
        diff = np.abs(np.asarray(Image.open(out), int) - np.asarray(Image.open(tmp_path / "plain.png"), int))
        assert diff.max() <= 1


def test_memory_budget_too_small(tmp_path, ckpt, capsys):
    src = _img(tmp_path / "a.png", 45, 33)
    args = ["--scale", "2", "-o", str(tmp_path / "b.png"), "-c", str(ckpt), "-q", "--chunk", "512"]
    code, err = _run(capsys, str(src), *args, "--max-memory", "600000")
    # an image too large for the budget fails (exit 1, in the summary); the other files would go on
    assert code == 1 and "failed: " in err and "too small for a 45x33 input" in err
    assert "Traceback" not in err and not (tmp_path / "b.png").exists()


@pytest.mark.parametrize("name", ["out.gif", "out.GIF", "out.heic", "out.txt", "out.v2", "x.jpe"])
def test_output_with_unsupported_suffix_is_refused(tmp_path, ckpt, capsys, name):
    src = _img(tmp_path / "a.png")
    out = tmp_path / name
    code, err = _run(capsys, str(src), "--scale", "2", "-o", str(out), "-c", str(ckpt), "-q")
    assert code == 2
    _one_line_error(err, f"--output {out}: unsupported output format", ".png, .jpg", "without a suffix")
    assert not out.exists()


def test_existing_folder_with_a_suffix_is_a_folder(tmp_path, ckpt, capsys):
    src = _img(tmp_path / "a.png")
    out = tmp_path / "results.v2"
    out.mkdir()
    code, err = _run(capsys, str(src), "--scale", "2", "-o", str(out), "-c", str(ckpt), "-q")
    assert code == 0, err
    assert (out / "a.png").is_file()


def test_format_must_match_file_output(tmp_path, ckpt, capsys):
    src = _img(tmp_path / "a.png")
    code, err = _run(
        capsys, str(src), "--scale", "2", "-o", str(tmp_path / "b.png"), "--format", "jpg", "-c", str(ckpt)
    )
    assert code == 2
    _one_line_error(err, "--format jpg does not match --output")
    code, err = _run(
        capsys,
        str(src),
        "--scale",
        "2",
        "-o",
        str(tmp_path / "b.jpeg"),
        "--format",
        "jpg",
        "-c",
        str(ckpt),
        "-q",
    )
    assert code == 0, err


def test_failed_checks_leave_no_new_folder(tmp_path, ckpt, capsys):
    src = tmp_path / "in"
    _img(src / "a.png")
    _img(src / "b.png")
    (tmp_path / "out").mkdir()
    _img(tmp_path / "out" / "b.png")  # exists: refused before any work
    code, err = _run(capsys, str(src), "--scale", "2", "-o", str(tmp_path / "out"), "-c", str(ckpt), "-q")
    assert code == 2 and "--overwrite" in err and not (tmp_path / "out" / "a.png").exists()
    code, err = _run(
        capsys,
        str(src),
        str(tmp_path / "missing.png"),
        "--scale",
        "2",
        "-o",
        str(tmp_path / "new"),
        "-c",
        str(ckpt),
    )
    assert code == 2 and not (tmp_path / "new").exists()


def test_subfolders_noted_or_recursed(tmp_path, ckpt, capsys):
    src = tmp_path / "in"
    _img(src / "top.png")
    _img(src / "cats" / "c1.png")
    _img(src / "cats" / "deep" / "c2.jpg")
    _img(src / "dogs" / "top.png")  # same name as the top-level one: kept apart by the tree
    (src / "notes.txt").write_text("x")
    _img(src / ".hidden" / "h.png")
    ck = ["--scale", "2", "-c", str(ckpt), "-q"]
    code, err = _run(capsys, str(src), "-o", str(tmp_path / "flat"), *ck)
    assert code == 0, err
    assert "note: " in err and "skipped 2 subfolder(s) holding 3 image(s) (pass --recursive" in err
    assert "skipped 1 file(s) that are not images by name (.txt)" in err
    assert sorted(p.name for p in (tmp_path / "flat").iterdir()) == ["top.png"]
    code, err = _run(capsys, str(src), "-o", str(tmp_path / "tree"), "--recursive", *ck)
    assert code == 0, err
    assert "upscaled 4 image(s)" in err
    got = sorted(
        p.relative_to(tmp_path / "tree").as_posix() for p in (tmp_path / "tree").rglob("*") if p.is_file()
    )
    assert got == ["cats/c1.png", "cats/deep/c2.png", "dogs/top.png", "top.png"]
    assert Image.open(tmp_path / "tree" / "cats" / "deep" / "c2.png").size == (20, 24)


def test_only_subfolders_hint(tmp_path, ckpt, capsys):
    src = tmp_path / "in"
    _img(src / "a" / "x.png")
    _img(src / "b" / "y.png")
    code, err = _run(capsys, str(src), "--scale", "2", "-o", str(tmp_path / "o"), "-c", str(ckpt))
    assert code == 2
    _one_line_error(err, "no images found in", "its 2 subfolder(s) hold 2 image(s): pass --recursive")
    assert not (tmp_path / "o").exists()


def test_skip_existing_continues_an_interrupted_run(tmp_path, ckpt, capsys):
    src = tmp_path / "in"
    for i in range(3):
        _img(src / f"i{i}.png", 8 + i, 9)
    out = tmp_path / "out"
    out.mkdir()
    done = _img(out / "i0.png", 16, 18).read_bytes()  # the x2 size of in/i0.png (8x9)
    ck = ["--scale", "2", "-o", str(out), "-c", str(ckpt), "-q"]
    code, err = _run(capsys, str(src), *ck, "--skip-existing")
    assert code == 0, err
    assert "upscaled 2 image(s)" in err and "; 1 skipped (output exists)" in err
    assert (out / "i0.png").read_bytes() == done
    code, err = _run(capsys, str(src), *ck, "--skip-existing")
    assert code == 0 and "upscaled 0 image(s)" in err and "3 skipped" in err
    with pytest.raises(SystemExit) as exc:  # both at once make no sense
        main(["upscale", str(src), *ck, "--skip-existing", "--overwrite"])
    assert exc.value.code == 2


def test_run_folder_as_checkpoint(tmp_path, ckpt, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.safetensors").write_bytes(ckpt.read_bytes())
    src = _img(tmp_path / "a.png")
    code, err = _run(capsys, str(src), "--scale", "2", "-o", str(tmp_path / "b.png"), "-c", str(run), "-q")
    assert code == 0, err
    assert "using the run's weights" in err and "model.safetensors" in err


@pytest.mark.parametrize("kind", ["text", "png"])
def test_non_checkpoint_as_checkpoint(tmp_path, capsys, kind):
    src = _img(tmp_path / "a.png")
    bad = tmp_path / ("notes.txt" if kind == "text" else "photo.png")
    if kind == "text":
        bad.write_text("some notes\n")
    else:
        _img(bad)
    code, err = _run(capsys, str(src), "--scale", "2", "-o", str(tmp_path / "b.png"), "-c", str(bad))
    assert code == 2
    _one_line_error(err, f"{bad}: not a checkpoint ({'a text file' if kind == 'text' else 'a PNG image'})")
    empty = tmp_path / "emptyrun"
    empty.mkdir()
    code, err = _run(capsys, str(src), "--scale", "2", "-o", str(tmp_path / "b.png"), "-c", str(empty))
    assert code == 2
    _one_line_error(err, "not a run folder")


def test_icc_and_dpi_kept_and_no_double_rotation(tmp_path, ckpt, capsys):
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x0112] = 6
    _img(tmp_path / "in" / "p.jpg", 10, 14, icc_profile=icc, dpi=(72, 72), exif=exif)
    _img(tmp_path / "in" / "q.png", 8, 8, icc_profile=icc, dpi=(300, 300))
    for fmt in ("png", "jpg", "webp", "tif"):
        out = tmp_path / fmt
        code, err = _run(
            capsys,
            str(tmp_path / "in"),
            "--scale",
            "2",
            "-o",
            str(out),
            "--format",
            fmt,
            "-c",
            str(ckpt),
            "-q",
        )
        assert code == 0, err
        p, q = Image.open(out / f"p.{fmt}"), Image.open(out / f"q.{fmt}")
        assert p.info.get("icc_profile") == icc and q.info.get("icc_profile") == icc
        assert p.size == (
            20,
            28,
        )  # rotated once (14 wide, 10 high, orientation 6 -> 10 wide, 14 high) then x2
        assert p.getexif().get(0x0112) is None
        if fmt != "webp":
            assert q.info["dpi"] == pytest.approx((600, 600), abs=0.5)
