"""Issue #14: ICC profile, DPI and PNG text of an input survive into the output; EXIF orientation is not
carried over (it has been applied already, a second rotation would be wrong)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageCms

from liif_sr.data.images import ImageMetadata, read_image_with_alpha, write_image_atomic

SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
GRAY_ICC = SRGB[:16] + b"GRAY" + SRGB[20:]  # header colour space patched: enough for the writer's check
RGB = np.random.default_rng(0).integers(0, 256, (6, 8, 3), dtype=np.uint8)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp", ".tif"])
def test_icc_profile_round_trip(tmp_path, suffix):
    src = tmp_path / f"in{suffix}"
    Image.fromarray(RGB).save(src, icc_profile=SRGB)
    img = read_image_with_alpha(src)
    assert img.metadata.icc_profile == SRGB
    for out_suffix in (".png", ".jpg", ".webp", ".tif"):
        out = tmp_path / f"out{suffix[1:]}{out_suffix}"
        write_image_atomic(out, img.rgb, metadata=img.metadata)
        assert Image.open(out).info.get("icc_profile") == SRGB, out_suffix


def test_icc_profile_of_another_colour_space_is_dropped(tmp_path):
    meta = ImageMetadata(icc_profile=GRAY_ICC)
    write_image_atomic(tmp_path / "rgb.png", RGB, metadata=meta)  # gray profile on colour pixels: dropped
    assert "icc_profile" not in Image.open(tmp_path / "rgb.png").info
    write_image_atomic(tmp_path / "g.png", RGB[..., 0], metadata=meta)
    assert Image.open(tmp_path / "g.png").info.get("icc_profile") == GRAY_ICC
    write_image_atomic(tmp_path / "g2.png", RGB[..., 0], metadata=ImageMetadata(icc_profile=SRGB))
    assert "icc_profile" not in Image.open(tmp_path / "g2.png").info


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".tif"])
def test_dpi_scaled_with_the_image(tmp_path, suffix):
    src = tmp_path / f"in{suffix}"
    Image.fromarray(RGB).save(src, dpi=(300, 150))
    meta = read_image_with_alpha(src).metadata
    assert meta.dpi == pytest.approx((300, 150), abs=0.1)
    scaled = meta.scaled((6, 8), (12, 24))  # x3 in width, x2 in height: same printed size
    assert scaled.dpi == pytest.approx((900, 300), abs=0.3)
    write_image_atomic(tmp_path / f"out{suffix}", RGB, metadata=scaled)
    assert Image.open(tmp_path / f"out{suffix}").info["dpi"] == pytest.approx((900, 300), abs=0.5)


def test_png_text_kept(tmp_path):
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Title", "holiday")
    info.add_itxt("Comment", "ünïcode ✓")
    Image.fromarray(RGB).save(tmp_path / "in.png", pnginfo=info)
    meta = read_image_with_alpha(tmp_path / "in.png").metadata
    assert meta.text == {"Title": "holiday", "Comment": "ünïcode ✓"}
    write_image_atomic(tmp_path / "out.png", RGB, metadata=meta)
    assert Image.open(tmp_path / "out.png").text == meta.text


@pytest.mark.parametrize("orientation,swap", [(6, True), (3, False), (8, True)])
def test_orientation_applied_once_and_dpi_follows(tmp_path, orientation, swap):
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(RGB).save(tmp_path / "in.jpg", exif=exif, dpi=(200, 100))
    img = read_image_with_alpha(tmp_path / "in.jpg")
    assert img.rgb.shape[:2] == ((8, 6) if swap else (6, 8))
    assert img.metadata.dpi == pytest.approx((100, 200) if swap else (200, 100), abs=0.1)
    for suffix in (".jpg", ".png", ".webp", ".tif"):
        out = tmp_path / f"out{suffix}"
        write_image_atomic(out, img.rgb, metadata=img.metadata)
        reread = Image.open(out)
        assert reread.getexif().get(0x0112) is None and reread.size == img.rgb.shape[1::-1]


def test_no_metadata_is_fine(tmp_path):
    Image.fromarray(RGB).save(tmp_path / "in.bmp")
    meta = read_image_with_alpha(tmp_path / "in.bmp").metadata
    assert meta.icc_profile is None and meta.text == {}
    write_image_atomic(tmp_path / "o.bmp", RGB, metadata=meta.scaled((6, 8), (12, 16)))
