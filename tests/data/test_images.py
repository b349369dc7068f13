"""Tests for liif_sr.data.images: reading bad/edge-case inputs, checking, atomic writing, tensors."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import corpus  # tests/ is on sys.path (pytest rootdir-relative import)
import numpy as np
import pytest
import torch
from PIL import Image

from liif_sr.data import image_write, images
from liif_sr.data.images import (
    IMAGE_EXTENSIONS,
    check_images,
    check_output_path,
    load_as_tensor,
    read_image,
    read_image_with_alpha,
    report_bad_files,
    scan_images,
    tensor_to_uint8,
    write_image_atomic,
)
from liif_sr.errors import ImageReadError, OutputExistsError, OutputPathError, UserError

BAD = sorted(name for name, exp in corpus.EXPECTED.items() if exp != "ok")
OK = sorted(name for name, exp in corpus.EXPECTED.items() if exp == "ok")


def _to8(x: np.ndarray) -> np.ndarray:
    return np.round(x.astype(np.float64) / 257).astype(np.uint8)


def test_corpus_is_consistent() -> None:
    assert set(corpus.CORPUS) == set(corpus.EXPECTED)
    assert BAD and OK


@pytest.mark.parametrize("name", BAD)
def test_bad_input_raises_one_line_error_naming_the_file(name: str, tmp_path: Path) -> None:
    path = corpus.CORPUS[name](tmp_path)
    for reader in (read_image, read_image_with_alpha, load_as_tensor):
        with pytest.raises(ImageReadError) as info:
            reader(path)
        message = str(info.value)
        assert corpus.EXPECTED[name] in message
        assert path.name in message and str(path) == str(info.value.path)
        assert "\n" not in message
        assert isinstance(info.value, UserError)


@pytest.mark.parametrize("name", OK)
def test_ok_input_reads_as_uint8_rgb(name: str, tmp_path: Path) -> None:
    loaded = read_image_with_alpha(corpus.CORPUS[name](tmp_path))
    rgb = read_image(loaded.path)
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
    assert rgb.flags.c_contiguous and rgb.flags.writeable
    np.testing.assert_array_equal(rgb, loaded.rgb)
    if loaded.alpha is not None:
        assert loaded.alpha.dtype == np.uint8 and loaded.alpha.shape == rgb.shape[:2]


def test_one_by_one(tmp_path: Path) -> None:
    rgb = read_image(corpus.one_by_one(tmp_path))
    assert rgb.shape == (1, 1, 3) and rgb[0, 0].tolist() == [10, 20, 30]


def test_grayscale_is_replicated(tmp_path: Path) -> None:
    loaded = read_image_with_alpha(corpus.grayscale(tmp_path))
    assert loaded.was_grayscale and loaded.alpha is None and loaded.mode == "L"
    for c in range(3):
        np.testing.assert_array_equal(loaded.rgb[..., c], corpus.GRAY)


def test_rgba_keeps_unmultiplied_colour_and_alpha(tmp_path: Path) -> None:
    loaded = read_image_with_alpha(corpus.rgba(tmp_path))
    np.testing.assert_array_equal(loaded.rgb, corpus.RGBA[..., :3])  # incl. the alpha == 0 row
    np.testing.assert_array_equal(loaded.alpha, corpus.RGBA[..., 3])
    assert not loaded.was_grayscale


def test_png16_gray_scaled_not_clipped(tmp_path: Path) -> None:
    loaded = read_image_with_alpha(corpus.png16_gray(tmp_path))
    assert loaded.bit_depth == 16 and loaded.was_grayscale
    assert loaded.rgb.max() == 255 and loaded.rgb.min() == 0
    np.testing.assert_array_equal(loaded.rgb[..., 1], _to8(corpus.GRAY16))


def test_png16_rgb_uses_full_precision(tmp_path: Path) -> None:
    loaded = read_image_with_alpha(corpus.png16_rgb(tmp_path))
    assert loaded.bit_depth == 16 and loaded.alpha is None
    np.testing.assert_array_equal(loaded.rgb, _to8(corpus.RGB16))
    assert loaded.rgb[0, 0].tolist() == [255, 0, 1]  # 255 / 257 rounds to 1; its high byte would give 0


def test_png16_rgba_and_gray_alpha(tmp_path: Path) -> None:
    rgba = read_image_with_alpha(corpus.png16_rgba(tmp_path))
    np.testing.assert_array_equal(rgba.rgb, _to8(corpus.RGBA16[..., :3]))
    np.testing.assert_array_equal(rgba.alpha, _to8(corpus.RGBA16[..., 3]))
    la = read_image_with_alpha(corpus.png16_gray_alpha(tmp_path))
    assert la.was_grayscale and la.mode == "LA" and la.bit_depth == 16
    np.testing.assert_array_equal(la.rgb[..., 2], _to8(corpus.LA16[..., 0]))
    np.testing.assert_array_equal(la.alpha, _to8(corpus.LA16[..., 1]))


def test_palette_with_and_without_transparency(tmp_path: Path) -> None:
    plain = read_image_with_alpha(corpus.palette(tmp_path))
    assert plain.alpha is None
    np.testing.assert_array_equal(plain.rgb, corpus.PALETTE[corpus.INDICES])
    transparent = read_image_with_alpha(corpus.palette_transparent(tmp_path))
    np.testing.assert_array_equal(transparent.rgb, corpus.PALETTE[corpus.INDICES])
    np.testing.assert_array_equal(transparent.alpha, np.where(corpus.INDICES == 0, 0, 255))


def test_cmyk_jpeg_becomes_rgb(tmp_path: Path) -> None:
    rgb = read_image(corpus.cmyk_jpeg(tmp_path)).astype(int)
    assert np.abs(rgb[8, 4] - [255, 255, 255]).max() < 12
    assert np.abs(rgb[8, 28] - [0, 255, 255]).max() < 12


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    rgb = read_image(corpus.exif_rotated(tmp_path))
    assert rgb.shape == (40, 20, 3)  # stored 20 high x 40 wide
    assert rgb[2, -3, 0] > 200 and rgb[2, -3, 1] < 60  # stored top-left block is now top-right
    assert rgb[-3, 2].max() < 60


def test_our_pixel_limit_applies_before_decoding(tmp_path: Path) -> None:
    path = corpus.grayscale(tmp_path)
    with pytest.raises(ImageReadError, match=r"image too large: 24x16 pixels exceeds limit 100$"):
        read_image(path, max_pixels=100)


def test_pillow_bomb_limit_is_reported_with_dimensions(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 150)  # Pillow refuses > 300, warns > 150
    path = corpus.grayscale(tmp_path)  # 384 pixels
    with pytest.raises(ImageReadError, match=r"image too large: 24x16 pixels exceeds limit 300$"):
        read_image(path)
    small = corpus.exif_rotated(tmp_path)  # 800 pixels: still refused, then a warning-only size
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the DecompressionBombWarning must not surface
        assert read_image(small).shape == (40, 20, 3)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match="file not found"):
        read_image(tmp_path / "nope.png")
    with pytest.raises(ImageReadError, match="is a directory"):
        read_image(tmp_path)


def test_scan_images(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        scan_images(tmp_path / "missing")
    with pytest.raises(UserError, match="no images found"):
        scan_images(tmp_path)
    for name in ("b.PNG", "a.jpg", ".hidden.png", "._a.jpg", "notes.txt", "sub/c.webp", ".git/d.png"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in scan_images(tmp_path)] == ["a.jpg", "b.PNG"]
    assert [p.name for p in scan_images(str(tmp_path), recursive=True)] == ["a.jpg", "b.PNG", "c.webp"]
    assert ".tiff" in IMAGE_EXTENSIONS


def test_check_images_reports_bad_files_by_name(tmp_path: Path) -> None:
    paths = corpus.build_all(tmp_path)
    good, bad = check_images(paths.values(), workers=4)
    assert sorted(p.name for p in good) == sorted(paths[n].name for n in OK)
    reasons = {p.name: r for p, r in bad}
    assert sorted(reasons) == sorted(paths[n].name for n in BAD)
    assert all(corpus.EXPECTED[n] in reasons[paths[n].name] for n in BAD)
    report = report_bad_files(bad)
    assert report.startswith(f"{len(BAD)} unreadable")
    assert all(paths[n].name in report for n in BAD)
    assert "... and" in report_bad_files(bad, limit=2)


def test_check_images_min_size_honours_orientation(tmp_path: Path) -> None:
    rotated, one = corpus.exif_rotated(tmp_path), corpus.one_by_one(tmp_path)
    good, bad = check_images([rotated, one], min_size=(20, 40), workers=1)
    assert good == [rotated]
    assert bad == [(one, "too small: 1x1 pixels, need at least 20x40")]


# --- writing ---------------------------------------------------------------------------------------


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize("suffix", [".png", ".webp", ".bmp", ".tif", ".tiff", ".jpg", ".JPEG"])
def test_write_round_trip(suffix: str, tmp_path: Path) -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (9, 13, 3), dtype=np.uint8)
    path = tmp_path / f"out{suffix}"
    write_image_atomic(path, rgb)
    back = read_image(path)
    if suffix.lower() in (".jpg", ".jpeg"):
        assert back.shape == rgb.shape and np.abs(back.astype(int) - rgb).mean() < 12
    else:
        np.testing.assert_array_equal(back, rgb)
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("suffix", [".png", ".webp", ".tif"])
def test_write_alpha_and_gray(suffix: str, tmp_path: Path) -> None:
    write_image_atomic(tmp_path / f"a{suffix}", corpus.RGBA)
    loaded = read_image_with_alpha(tmp_path / f"a{suffix}")
    np.testing.assert_array_equal(loaded.rgb, corpus.RGBA[..., :3])
    np.testing.assert_array_equal(loaded.alpha, corpus.RGBA[..., 3])
    write_image_atomic(tmp_path / f"g{suffix}", corpus.GRAY)
    np.testing.assert_array_equal(read_image(tmp_path / f"g{suffix}")[..., 0], corpus.GRAY)
    la = np.stack([corpus.GRAY, 255 - corpus.GRAY], axis=-1)
    write_image_atomic(tmp_path / f"la{suffix}", la)
    loaded = read_image_with_alpha(tmp_path / f"la{suffix}")
    np.testing.assert_array_equal(loaded.rgb[..., 0], corpus.GRAY)
    np.testing.assert_array_equal(loaded.alpha, 255 - corpus.GRAY)


@pytest.mark.parametrize("suffix", [".jpg", ".bmp"])
def test_write_without_alpha_support_flattens_over_white(suffix: str, tmp_path: Path) -> None:
    rgba = np.zeros((8, 8, 4), dtype=np.uint8)  # fully transparent black -> white
    rgba[:4, :, 3] = 255  # opaque black top half stays black
    write_image_atomic(tmp_path / f"x{suffix}", rgba)
    loaded = read_image_with_alpha(tmp_path / f"x{suffix}")
    assert loaded.alpha is None
    assert loaded.rgb[6:].min() > 245 and loaded.rgb[:2].max() < 10
    write_image_atomic(tmp_path / f"la{suffix}", rgba[..., 2:])
    assert read_image(tmp_path / f"la{suffix}")[6:].min() > 245


def test_write_refuses_existing_file_unless_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "out.png"
    path.write_bytes(b"precious")
    rgb = np.zeros((4, 4, 3), dtype=np.uint8)
    with pytest.raises(OutputExistsError, match=r"out\.png exists; pass --overwrite to replace it"):
        check_output_path(path)
    with pytest.raises(OutputExistsError):
        write_image_atomic(path, rgb)
    assert path.read_bytes() == b"precious"
    write_image_atomic(path, rgb, overwrite=True)
    np.testing.assert_array_equal(read_image(path), rgb)
    assert _leftovers(tmp_path) == []


def test_write_race_with_file_created_meanwhile(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "out.png"
    monkeypatch.setattr(image_write, "check_output_path", lambda p, o=False: path.write_bytes(b"theirs"))
    with pytest.raises(OutputExistsError):
        write_image_atomic(path, np.zeros((2, 2, 3), dtype=np.uint8))
    assert path.read_bytes() == b"theirs" and _leftovers(tmp_path) == []


def test_write_missing_directory_and_bad_suffix(tmp_path: Path) -> None:
    rgb = np.zeros((2, 2, 3), dtype=np.uint8)
    with pytest.raises(OutputPathError, match="output directory does not exist: .*missing"):
        write_image_atomic(tmp_path / "missing" / "out.png", rgb)
    with pytest.raises(OutputPathError, match=r"unsupported output format '\.gif'"):
        check_output_path(tmp_path / "out.gif")
    with pytest.raises(OutputPathError, match="is a directory"):
        check_output_path(tmp_path, overwrite=True)
    with pytest.raises(ValueError):
        write_image_atomic(tmp_path / "f.png", rgb.astype(np.float32))


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores directory permissions")
def test_write_read_only_directory_real(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(OutputPathError, match=r"cannot write to .*ro: permission denied"):
            write_image_atomic(folder / "out.png", np.zeros((2, 2, 3), dtype=np.uint8))
    finally:
        folder.chmod(0o755)


def test_write_read_only_directory_simulated(tmp_path: Path, monkeypatch) -> None:
    rgb = np.zeros((2, 2, 3), dtype=np.uint8)
    monkeypatch.setattr(images.os, "access", lambda *a, **k: False)
    with pytest.raises(OutputPathError, match=r"cannot write to .*: permission denied"):
        check_output_path(tmp_path / "out.png")
    monkeypatch.undo()
    real_open = os.open

    def deny(path, *args, **kwargs):
        if Path(path).parent == tmp_path:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(images.os, "open", deny)
    with pytest.raises(OutputPathError, match=r"cannot write to .*: permission denied"):
        write_image_atomic(tmp_path / "out.png", rgb)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("overwrite", [False, True])
def test_write_failure_leaves_no_partial_file(tmp_path: Path, monkeypatch, overwrite: bool) -> None:
    path = tmp_path / "out.png"
    if overwrite:
        path.write_bytes(b"old")

    def broken_save(self, fp, *args, **kwargs):
        fp.write(b"partial")
        raise RuntimeError("encoder exploded")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(RuntimeError, match="encoder exploded"):
        write_image_atomic(path, np.zeros((4, 4, 3), dtype=np.uint8), overwrite=overwrite)
    assert _leftovers(tmp_path) == []
    assert path.exists() == overwrite and (not overwrite or path.read_bytes() == b"old")


def test_write_disk_error_is_a_user_error(tmp_path: Path, monkeypatch) -> None:
    def full(self, fp, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", full)
    with pytest.raises(OutputPathError, match="No space left on device"):
        write_image_atomic(tmp_path / "out.png", np.zeros((4, 4, 3), dtype=np.uint8))
    assert list(tmp_path.iterdir()) == []


# --- tensors ---------------------------------------------------------------------------------------


def test_tensor_round_trip(tmp_path: Path) -> None:
    path = corpus.rgba(tmp_path)
    t = load_as_tensor(path)
    assert t.dtype == torch.float32 and t.shape == (3, 12, 10)
    assert t.min() >= 0.0 and t.max() <= 1.0
    np.testing.assert_array_equal(tensor_to_uint8(t), corpus.RGBA[..., :3])


def test_tensor_to_uint8_rounding_and_clamping() -> None:
    t = torch.tensor([[[0.5, -1.0, 2.0, float("nan"), 0.4 / 255, 0.6 / 255]]]).expand(3, 1, 6)
    out = tensor_to_uint8(t)
    assert out.shape == (1, 6, 3) and out.dtype == np.uint8
    assert out[0, :, 0].tolist() == [128, 0, 255, 0, 0, 1]  # 127.5 rounds half up
    assert tensor_to_uint8(torch.zeros(1, 2, 3)).shape == (2, 3)
    with pytest.raises(ValueError):
        tensor_to_uint8(torch.zeros(1, 3, 2, 2))


def test_overwrite_refuses_a_read_only_file_and_keeps_it(tmp_path: Path) -> None:
    """Issue 18 class 1: --overwrite onto a read-only file used to replace it with a 0644 one."""
    path = tmp_path / "ro.png"
    write_image_atomic(path, np.zeros((2, 2, 3), dtype=np.uint8))
    for mode in (0o444, 0o400):
        path.chmod(mode)
        before = path.read_bytes()
        with pytest.raises(OutputPathError, match="is read-only; make it writable"):
            write_image_atomic(path, np.full((2, 2, 3), 9, dtype=np.uint8), overwrite=True)
        assert path.read_bytes() == before and (path.stat().st_mode & 0o777) == mode
        assert _leftovers(tmp_path) == []
    path.chmod(0o644)
    write_image_atomic(path, np.full((2, 2, 3), 9, dtype=np.uint8), overwrite=True)  # writable: replaced
    assert (path.stat().st_mode & 0o777) == 0o644


def test_first_frame_of_a_multi_frame_file_is_counted(tmp_path: Path) -> None:
    """Issue 18 class 5: a GIF/TIFF with several frames gives its first one, and says how many it has."""
    frames = [Image.new("RGB", (4, 3), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    for name in ("anim.gif", "pages.tif"):
        frames[0].save(tmp_path / name, save_all=True, append_images=frames[1:])
        img = read_image_with_alpha(tmp_path / name)
        assert img.frames == 3 and tuple(img.rgb[0, 0]) == (255, 0, 0)
    frames[0].save(tmp_path / "one.gif")
    assert read_image_with_alpha(tmp_path / "one.gif").frames == 1
