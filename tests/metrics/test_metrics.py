"""Tests of liif_sr.metrics: LIIF's PSNR protocol, MATLAB Y, MATLAB/BasicSR SSIM, and MeanPSNR."""

from __future__ import annotations

import math
from pathlib import Path

import kornia
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from liif_sr.data.resize import imresize_matlab, upsample_bicubic
from liif_sr.metrics import MeanPSNR, psnr, psnr_protocol, rgb_to_y_matlab, ssim_matlab

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
DTYPES = [torch.float32, torch.float64]
KORNIA_Y_OFFSET_DB = 20 * math.log10(255 / 219)  # 1.3219 dB


# ---------------------------------------------------------------------------------------------------------
# independent references, written from docs/method.md / MATLAB documentation
# ---------------------------------------------------------------------------------------------------------
def liif_calc_psnr(
    sr: torch.Tensor, hr: torch.Tensor, dataset: str | None = None, scale: int = 1
) -> torch.Tensor:
    """yinboc/liif utils.calc_psnr (rgb_range 1), as ``docs/method.md`` "Evaluation protocol" describes it: pools over the batch."""
    diff = sr - hr
    if dataset is not None:
        if dataset == "benchmark":
            shave = scale
            if diff.size(1) > 1:
                convert = diff.new_tensor([65.738, 129.057, 25.064]).view(1, 3, 1, 1) / 256
                diff = diff.mul(convert).sum(dim=1)
        elif dataset == "div2k":
            shave = scale + 6
        else:
            raise NotImplementedError
        valid = diff[..., shave:-shave, shave:-shave]
    else:
        valid = diff
    return -10 * torch.log10(valid.pow(2).mean())


def ssim_reference(a: np.ndarray, b: np.ndarray) -> float:
    """MATLAB ssim_index: fspecial('gaussian', 11, 1.5), filter2(..., 'valid'), K = (0.01, 0.03), L = 255."""
    g = np.exp(-((np.arange(11) - 5) ** 2) / (2 * 1.5**2))
    window = np.outer(g, g) / np.outer(g, g).sum()

    def filt(x: np.ndarray) -> np.ndarray:
        return np.einsum("ijkl,kl->ij", np.lib.stride_tricks.sliding_window_view(x, (11, 11)), window)

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_a, mu_b = filt(a), filt(b)
    var_a, var_b, cov = filt(a * a) - mu_a**2, filt(b * b) - mu_b**2, filt(a * b) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(ssim_map.mean())


def y255_reference(img: np.ndarray) -> np.ndarray:
    """MATLAB rgb2ycbcr Y on a (3, H, W) float image in [0, 1], scaled to [0, 255] (BasicSR convention)."""
    return 16.0 + 65.481 * img[0] + 128.553 * img[1] + 24.966 * img[2]


def _rgb(path: Path) -> torch.Tensor:
    with Image.open(path) as im:
        return torch.from_numpy(np.array(im.convert("RGB"))).permute(2, 0, 1).contiguous()


def _pair(seed: int = 0, shape=(2, 3, 40, 48), noise=(0.02, 0.1)) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    hr = torch.rand(shape, generator=g, dtype=torch.float64)
    sigma = torch.tensor(
        noise[: shape[0]] if len(noise) >= shape[0] else [noise[0]] * shape[0], dtype=torch.float64
    )
    sr = (hr + sigma.view(-1, 1, 1, 1) * torch.randn(shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    return sr, hr


@pytest.fixture(scope="module")
def set5_bicubic(request) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(SR, HR) float64 [0, 1] pairs: Set5 x4 LR files upscaled with MATLAB bicubic."""
    shared = request.getfixturevalue("shared_data")
    root = shared / "benchmark" / "Set5"
    pairs = []
    for hr_path in sorted((root / "HR").glob("*.png")):
        lr = _rgb(root / "LR_bicubic" / "X4" / f"{hr_path.stem}x4.png").double() / 255
        hr = _rgb(hr_path)[:, : lr.shape[1] * 4, : lr.shape[2] * 4].double() / 255
        pairs.append((upsample_bicubic(lr, tuple(hr.shape[-2:])).clamp(0, 1)[None], hr[None]))
    return pairs


# ---------------------------------------------------------------------------------------------------------
# PSNR
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize(
    ("dataset", "scale"), [(None, 1), ("div2k", 2), ("div2k", 4), ("benchmark", 2), ("benchmark", 3)]
)
def test_psnr_matches_liif_calc_psnr(dataset, scale, dtype, device):
    sr, hr = _pair(seed=scale)
    sr, hr = sr.to(device=device, dtype=dtype), hr.to(device=device, dtype=dtype)
    if dataset is None:
        ours = psnr(sr, hr)
    else:
        ours = psnr_protocol(sr, hr, dataset, scale)
    assert ours.shape == (2,) and ours.device.type == device
    for i in range(2):  # LIIF evaluates with batch size 1
        ref = float(liif_calc_psnr(sr[i : i + 1].double(), hr[i : i + 1].double(), dataset, scale))
        assert abs(float(ours[i]) - ref) <= 1e-4, (
            f"{dataset} x{scale}: {float(ours[i]):.6f} vs LIIF {ref:.6f}"
        )


def test_psnr_matches_liif_on_real_images(set5_bicubic):
    for sr, hr in set5_bicubic:
        for dataset, scale in (("benchmark", 4), ("div2k", 4)):
            ours = float(psnr_protocol(sr, hr, dataset, scale))
            ref = float(liif_calc_psnr(sr.float(), hr.float(), dataset, scale))
            assert abs(ours - ref) <= 1e-4


def test_per_image_mean_differs_from_pooled_psnr():
    """SR tables average per-image PSNR; pooling the MSE over a batch (LIIF with batch > 1, torchmetrics'
    default, kornia.metrics.psnr) gives a different number."""
    from torchmetrics.image import PeakSignalNoiseRatio

    sr, hr = _pair(seed=1, noise=(0.005, 0.1))
    per_image = psnr(sr, hr)
    pooled = float(liif_calc_psnr(sr, hr))
    assert abs(float(per_image.mean()) - pooled) > 3.0
    assert float(PeakSignalNoiseRatio(data_range=1.0)(sr, hr)) == pytest.approx(pooled, abs=1e-4)
    assert float(kornia.metrics.psnr(sr, hr, 1.0)) == pytest.approx(pooled, abs=1e-4)
    per_image_tm = PeakSignalNoiseRatio(data_range=1.0, dim=(1, 2, 3))(sr, hr)
    assert float(per_image_tm) == pytest.approx(float(per_image.mean()), abs=1e-4)


def test_kornia_y_is_full_range_and_costs_a_constant_1_32_db():
    sr, hr = _pair(seed=2, noise=(0.01, 0.05))
    ours = psnr(sr, hr, shave=2, y_channel=True)
    kornia_y = psnr(kornia.color.rgb_to_y(sr), kornia.color.rgb_to_y(hr), shave=2)
    torch.testing.assert_close(ours - kornia_y, torch.full_like(ours, KORNIA_Y_OFFSET_DB), atol=1e-4, rtol=0)


def test_y_of_difference_equals_difference_of_matlab_y():
    """LIIF's 65.738/256 on the difference equals MATLAB's 65.481/255 Y (the +16 cancels), to 1e-4 dB."""
    sr, hr = _pair(seed=3)
    on_y = psnr(rgb_to_y_matlab(sr), rgb_to_y_matlab(hr), shave=3)
    torch.testing.assert_close(psnr(sr, hr, shave=3, y_channel=True), on_y, atol=1e-4, rtol=0)


def test_rgb_to_y_matlab():
    skimage_color = pytest.importorskip("skimage.color")
    img = torch.rand(2, 3, 9, 7, dtype=torch.float64)
    y = rgb_to_y_matlab(img)
    assert y.shape == (2, 1, 9, 7)
    ref = skimage_color.rgb2ycbcr(img[0].permute(1, 2, 0).numpy())[..., 0] / 255
    np.testing.assert_allclose(y[0, 0].numpy(), ref, atol=1e-7)
    corners = rgb_to_y_matlab(torch.tensor([[[0.0]], [[0.0]], [[0.0]]]).expand(3, 1, 2).reshape(3, 1, 2))
    assert corners.flatten().tolist() == pytest.approx([16 / 255] * 2)
    assert float(rgb_to_y_matlab(torch.ones(3, 1, 1))) == pytest.approx(235 / 255)


def test_psnr_protocol_shaves():
    sr, hr = _pair(seed=4, shape=(1, 3, 60, 60))
    torch.testing.assert_close(psnr_protocol(sr, hr, "div2k", 3), psnr(sr, hr, shave=9))
    torch.testing.assert_close(psnr_protocol(sr, hr, "benchmark", 3), psnr(sr, hr, shave=3, y_channel=True))
    # non-integer scales: shave = ceil(scale) (+6 for DIV2K)
    torch.testing.assert_close(psnr_protocol(sr, hr, "benchmark", 2.5), psnr(sr, hr, shave=3, y_channel=True))
    torch.testing.assert_close(psnr_protocol(sr, hr, "DIV2K", 2.5), psnr(sr, hr, shave=9))
    with pytest.raises(ValueError, match="div2k"):
        psnr_protocol(sr, hr, "set5", 2)
    with pytest.raises(ValueError):
        psnr_protocol(sr, hr, "benchmark", 0)


def test_psnr_edge_cases():
    x = torch.rand(3, 10, 10)
    assert psnr(x, x).shape == (1,) and math.isinf(float(psnr(x, x)))
    gray = torch.rand(2, 1, 10, 10)
    torch.testing.assert_close(psnr(gray, gray * 0.9, y_channel=True), psnr(gray, gray * 0.9))
    with pytest.raises(ValueError):
        psnr(x, x, shave=5)
    with pytest.raises(ValueError):
        psnr(x, x, shave=-1)
    with pytest.raises(ValueError):
        psnr(x, x[:, :9])
    with pytest.raises(ValueError):
        psnr(torch.rand(2, 4, 8, 8), torch.rand(2, 4, 8, 8), y_channel=True)
    with pytest.raises(TypeError):
        psnr(x.mul(255).byte(), x.mul(255).byte())
    with pytest.raises(TypeError):
        psnr(x.numpy(), x)


# ---------------------------------------------------------------------------------------------------------
# SSIM
# ---------------------------------------------------------------------------------------------------------
def test_butterfly_x4_basicsr_golden(shared_data):
    """docs/method.md "Metrics": BasicSR calculate_psnr/ssim(test_y_channel=True, crop_border=4) = 22.3206 / 0.737903.

    Reproduced with: LR = MATLAB-bicubic x1/4 of the HR kept in float (not quantised), SR = F.interpolate
    bicubic (antialias=False, align_corners=False) quantised to 8 bits (the doc's "both quantised" is off:
    quantising the LR too gives 22.3199 / 0.737854).
    """
    hr8 = _rgb(shared_data / "benchmark" / "Set5" / "HR" / "butterfly.png")
    hr = hr8.double()[None] / 255
    lr = imresize_matlab(hr, scale=1 / 4)
    sr = F.interpolate(lr.float(), size=hr.shape[-2:], mode="bicubic", align_corners=False, antialias=False)
    sr = (sr.clamp(0, 1) * 255).round().double() / 255
    assert round(float(psnr(sr, hr, shave=4, y_channel=True)), 4) == 22.3206
    assert float(ssim_matlab(sr, hr, shave=4)) == pytest.approx(0.737903, abs=1e-6)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_ssim_matches_numpy_reference_random(dtype, device):
    sr, hr = _pair(seed=5, shape=(2, 3, 40, 37))
    ours = ssim_matlab(sr.to(device=device, dtype=dtype), hr.to(device=device, dtype=dtype), shave=2)
    assert ours.shape == (2,)
    for i in range(2):
        ref = ssim_reference(
            y255_reference(sr[i].numpy())[2:-2, 2:-2], y255_reference(hr[i].numpy())[2:-2, 2:-2]
        )
        tol = 1e-5 if dtype == torch.float64 else 1e-4
        assert abs(float(ours[i]) - ref) <= tol


def test_ssim_matches_numpy_reference_real(set5_bicubic):
    for sr, hr in set5_bicubic:
        ref = ssim_reference(
            y255_reference(sr[0].numpy())[4:-4, 4:-4], y255_reference(hr[0].numpy())[4:-4, 4:-4]
        )
        assert abs(float(ssim_matlab(sr, hr, shave=4)) - ref) <= 1e-5


def test_ssim_rgb_and_identity():
    sr, hr = _pair(seed=6, shape=(1, 3, 30, 30))
    assert float(ssim_matlab(hr, hr, shave=0)) == pytest.approx(1.0, abs=1e-12)
    rgb = float(ssim_matlab(sr, hr, shave=1, y_channel=False))
    per_channel = [
        ssim_reference(255 * sr[0, c, 1:-1, 1:-1].numpy(), 255 * hr[0, c, 1:-1, 1:-1].numpy())
        for c in range(3)
    ]
    assert rgb == pytest.approx(np.mean(per_channel), abs=1e-6)
    with pytest.raises(ValueError, match="11x11"):
        ssim_matlab(sr, hr, shave=10)


# ---------------------------------------------------------------------------------------------------------
# MeanPSNR (torchmetrics)
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
def test_mean_psnr_accumulates_per_image(device):
    batches = [
        _pair(seed=s, shape=(n, 3, 24, 24), noise=(0.01, 0.05, 0.2)) for s, n in ((7, 1), (8, 3), (9, 2))
    ]
    metric = MeanPSNR(shave=2, y_channel=True).to(device)
    values = []
    for sr, hr in batches:
        metric.update(sr.to(device), hr.to(device))
        values.append(psnr(sr, hr, shave=2, y_channel=True))
    expected = float(torch.cat(values).mean())
    assert float(metric.compute()) == pytest.approx(expected, abs=1e-5)
    assert int(metric.count) == 6
    metric.reset()
    assert int(metric.count) == 0


def test_mean_psnr_merges_like_ddp():
    """States are sums (dist_reduce_fx='sum'): merging two ranks' states gives the global per-image mean."""
    (sr_a, hr_a), (sr_b, hr_b) = (
        _pair(seed=10, shape=(1, 3, 16, 16)),
        _pair(seed=11, shape=(3, 3, 16, 16), noise=(0.1,)),
    )
    rank0, rank1 = MeanPSNR(), MeanPSNR()
    rank0.update(sr_a, hr_a)
    rank1.update(sr_b, hr_b)
    rank0.merge_state(rank1)
    expected = float(torch.cat([psnr(sr_a, hr_a), psnr(sr_b, hr_b)]).mean())
    assert float(rank0.compute()) == pytest.approx(expected, abs=1e-5)
    with pytest.raises(ValueError):
        MeanPSNR(shave=-1)
