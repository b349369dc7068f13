"""Super-resolution metrics with the conventions of published SR tables (LIIF, EDSR, BasicSR, MATLAB).

Why not torchmetrics/kornia directly (docs/method.md: Metrics):

* torchmetrics' ``PeakSignalNoiseRatio`` pools the squared error over every image it has seen unless
  ``dim`` is given (22.90 vs 29.66 dB on a 2-image batch), and ``kornia.metrics.psnr`` computes one MSE over
  the whole batch; SR tables average **per-image** PSNR.
* ``kornia.color.rgb_to_y`` is full-range JPEG/BT.601 luma (0.299, 0.587, 0.114); SR tables use MATLAB's
  ``rgb2ycbcr`` studio-swing Y, whose values (and differences) are 219/255 as large. Full-range Y therefore
  scores a constant 20·log10(255/219) = 1.32 dB *lower* PSNR on the same images.
* torchmetrics' SSIM pads the image ("same"); MATLAB/BasicSR SSIM keeps only the "valid" window positions.

All functions take float images in [0, 1], shape :math:`(B, C, H, W)` (or :math:`(C, H, W)`, treated as
B = 1) and return one value per image. They never round SR to 8 bits: the official LIIF evaluation
clamps the prediction to [0, 1] and uses it as a float.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torchmetrics import Metric

__all__ = ["MeanPSNR", "protocol_shave", "psnr", "psnr_protocol", "rgb_to_y_matlab", "ssim_matlab"]

#: MATLAB ``rgb2ycbcr`` Y row for RGB in [0, 1] (output in [0, 255] before the /255)
_Y_COEFFS = (65.481, 128.553, 24.966)
#: LIIF ``calc_psnr``: Y of the RGB *difference*, ``sum_c diff_c * k_c / 256`` (= 65.481/255 ... up to 1e-5)
_LIIF_Y_DIFF_COEFFS = (65.738, 129.057, 25.064)


def _check_pair(sr: object, hr: object) -> tuple[Tensor, Tensor]:
    for name, t in (("sr", sr), ("hr", hr)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if not t.is_floating_point():
            raise TypeError(f"{name} must be a float tensor with values in [0, 1], got {t.dtype}")
        if t.ndim not in (3, 4):
            raise ValueError(f"{name} must have shape (C, H, W) or (B, C, H, W), got {tuple(t.shape)}")
    assert isinstance(sr, Tensor) and isinstance(hr, Tensor)
    if sr.shape != hr.shape:
        raise ValueError(f"sr and hr must have the same shape, got {tuple(sr.shape)} and {tuple(hr.shape)}")
    if sr.ndim == 3:
        sr, hr = sr.unsqueeze(0), hr.unsqueeze(0)
    return sr, hr


def _check_shave(shave: object, height: int, width: int) -> int:
    if not isinstance(shave, int) or isinstance(shave, bool) or shave < 0:
        raise ValueError(f"shave must be a non-negative int, got {shave!r}")
    if 2 * shave >= height or 2 * shave >= width:
        raise ValueError(f"shave={shave} leaves no pixels of a {height}x{width} image")
    return shave


def _shave(x: Tensor, shave: int) -> Tensor:
    return x[..., shave:-shave, shave:-shave] if shave > 0 else x


def _metric_dtype(x: Tensor) -> torch.dtype:
    return torch.float32 if x.device.type == "mps" else torch.float64


def rgb_to_y_matlab(img: Tensor) -> Tensor:
    r"""Luma of MATLAB ``rgb2ycbcr`` (ITU-R BT.601 studio swing), for RGB in [0, 1].

    .. math:: Y = \frac{16 + 65.481 R + 128.553 G + 24.966 B}{255} \in [16/255, 235/255]

    Not to be confused with ``kornia.color.rgb_to_y`` (full-range JPEG luma, 0.299/0.587/0.114).

    Args:
        img: RGB image :math:`(B, 3, H, W)` or :math:`(3, H, W)`, float in [0, 1].

    Returns:
        Y image :math:`(B, 1, H, W)` (or :math:`(1, H, W)`), same dtype, in [0, 1].
    """
    if not isinstance(img, Tensor) or not img.is_floating_point():
        raise TypeError("img must be a float torch.Tensor with values in [0, 1]")
    if img.ndim not in (3, 4) or img.shape[-3] != 3:
        raise ValueError(f"img must have shape (B, 3, H, W) or (3, H, W), got {tuple(img.shape)}")
    r, g, b = img.unbind(dim=-3)
    y = (16.0 + _Y_COEFFS[0] * r + _Y_COEFFS[1] * g + _Y_COEFFS[2] * b) / 255.0
    return y.unsqueeze(-3)


def psnr(sr: Tensor, hr: Tensor, shave: int = 0, y_channel: bool = False) -> Tensor:
    r"""Per-image PSNR with data range 1, exactly LIIF's ``utils.calc_psnr`` protocol.

    ``diff = sr - hr``; with ``y_channel`` (and 3 channels) ``diff = sum_c diff_c * k_c / 256`` with
    ``k = (65.738, 129.057, 25.064)`` (the Y of MATLAB ``rgb2ycbcr``; its +16 offset cancels in a
    difference); single-channel images are used as they are. ``shave`` pixels are dropped on every side, then
    :math:`-10 \log_{10}(\mathrm{mean}(diff^2))` per image. Computed in float64 (float32 on MPS).

    Args:
        sr: prediction :math:`(B, C, H, W)` or :math:`(C, H, W)`, float in [0, 1], not quantised.
        hr: ground truth, same shape.
        shave: border pixels removed on each side before averaging.
        y_channel: compare MATLAB Y instead of all channels.

    Returns:
        PSNR in dB, shape :math:`(B,)`, float64 (float32 on MPS), on the input device; ``inf`` for
        identical images.
    """
    sr, hr = _check_pair(sr, hr)
    shave = _check_shave(shave, sr.shape[-2], sr.shape[-1])
    dtype = _metric_dtype(sr)
    diff = sr.to(dtype) - hr.to(dtype)
    if y_channel:
        if diff.shape[1] == 3:
            coeffs = torch.tensor(_LIIF_Y_DIFF_COEFFS, dtype=dtype, device=diff.device).view(1, 3, 1, 1) / 256
            diff = (diff * coeffs).sum(dim=1, keepdim=True)
        elif diff.shape[1] != 1:
            raise ValueError(f"y_channel needs 1 or 3 channels, got {diff.shape[1]}")
    mse = _shave(diff, shave).pow(2).mean(dim=(1, 2, 3))
    return -10.0 * torch.log10(mse)


def protocol_shave(dataset: str, scale: float) -> tuple[int, bool]:
    """``(shave, y_channel)`` of a PSNR protocol: ``div2k`` RGB, shave ``ceil(s) + 6``; ``benchmark`` MATLAB Y,
    shave ``ceil(s)``. The one definition: validation (:class:`MeanPSNR`), ``liif-sr-eval`` and
    :func:`psnr_protocol` all use it."""
    if not isinstance(scale, (int, float)) or isinstance(scale, bool) or not scale > 0:
        raise ValueError(f"scale must be a positive number, got {scale!r}")
    base = math.ceil(scale)
    key = dataset.lower() if isinstance(dataset, str) else dataset
    if key == "div2k":
        return base + 6, False
    if key == "benchmark":
        return base, True
    raise ValueError(f"dataset must be 'div2k' or 'benchmark', got {dataset!r}")


def psnr_protocol(sr: Tensor, hr: Tensor, dataset: str, scale: float) -> Tensor:
    """Per-image PSNR with LIIF's evaluation protocol (``eval_type: div2k-<s>`` or ``benchmark-<s>``).

    * ``"div2k"``: RGB, ``shave = scale + 6``;
    * ``"benchmark"`` (Set5, Set14, B100, Urban100): MATLAB Y, ``shave = scale``.

    LIIF only evaluates integer scales; for a non-integer scale this uses ``shave = ceil(scale)`` (+6 for
    DIV2K), so e.g. ×2.5 shaves 3 px on benchmarks and 9 px on DIV2K.

    Args:
        sr: prediction :math:`(B, 3, H, W)`, float in [0, 1].
        hr: ground truth, same shape.
        dataset: ``"div2k"`` or ``"benchmark"``.
        scale: the upscaling factor.

    Returns:
        PSNR in dB, shape :math:`(B,)`.
    """
    shave, y_channel = protocol_shave(dataset, scale)
    return psnr(sr, hr, shave=shave, y_channel=y_channel)


def ssim_matlab(sr: Tensor, hr: Tensor, shave: int, y_channel: bool = True) -> Tensor:
    """Per-image SSIM like MATLAB ``ssim_index``/BasicSR ``calculate_ssim(test_y_channel=True)``.

    MATLAB Y (:func:`rgb_to_y_matlab`) scaled to [0, 255] (not rounded), ``shave`` px dropped per side, an
    11x11 Gaussian window with sigma 1.5, **valid** filtering (no padding), ``C1 = (0.01*255)^2`` and
    ``C2 = (0.03*255)^2``; the SSIM map is averaged per image (and over channels when ``y_channel`` is
    False or the image has one channel). Computed with ``kornia.metrics.ssim(..., padding='valid')`` in
    float64, which reproduces BasicSR's reference value (docs/method.md: Metrics).

    Args:
        sr: prediction :math:`(B, C, H, W)` or :math:`(C, H, W)`, float in [0, 1].
        hr: ground truth, same shape.
        shave: border pixels removed on each side first (``scale`` for benchmarks).
        y_channel: compare MATLAB Y (needs C = 3; C = 1 is used as is).

    Returns:
        SSIM, shape :math:`(B,)`, float64 (float32 on MPS).
    """
    sr, hr = _check_pair(sr, hr)
    shave = _check_shave(shave, sr.shape[-2], sr.shape[-1])
    dtype = _metric_dtype(sr)
    sr, hr = sr.to(dtype), hr.to(dtype)
    if y_channel and sr.shape[1] == 3:
        sr, hr = rgb_to_y_matlab(sr), rgb_to_y_matlab(hr)
    elif y_channel and sr.shape[1] != 1:
        raise ValueError(f"y_channel needs 1 or 3 channels, got {sr.shape[1]}")
    sr, hr = _shave(sr, shave) * 255.0, _shave(hr, shave) * 255.0
    if sr.shape[-2] < 11 or sr.shape[-1] < 11:
        raise ValueError(f"SSIM needs at least 11x11 pixels after shaving, got {tuple(sr.shape[-2:])}")
    import kornia.metrics  # lazy: importing kornia takes seconds and only SSIM needs it

    ssim_map = kornia.metrics.ssim(sr, hr, window_size=11, max_val=255.0, eps=0.0, padding="valid")
    return ssim_map.mean(dim=(1, 2, 3))


class MeanPSNR(Metric):
    """Mean of per-image PSNR (the SR-table convention), DDP-safe.

    Each ``update`` adds the :func:`psnr` of every image of the batch to a running sum and the number of
    images to a count (both reduced with ``sum`` across processes); ``compute`` returns ``sum / count``.
    torchmetrics' own ``PeakSignalNoiseRatio`` pools the squared error over the whole epoch unless
    ``dim=(1, 2, 3)`` is passed, and kornia's Y is full-range JPEG luma (1.32 dB below MATLAB Y), so neither
    reproduces published numbers.

    Args:
        shave: border pixels removed on each side.
        y_channel: compare MATLAB Y instead of RGB.

    Example:
        >>> metric = MeanPSNR(shave=4, y_channel=True)
        >>> metric.update(torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32))
        >>> metric.compute().shape
        torch.Size([])
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    psnr_sum: Tensor
    count: Tensor

    def __init__(self, shave: int = 0, y_channel: bool = False, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        if not isinstance(shave, int) or isinstance(shave, bool) or shave < 0:
            raise ValueError(f"shave must be a non-negative int, got {shave!r}")
        self.shave = shave
        self.y_channel = bool(y_channel)
        self.add_state("psnr_sum", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, sr: Tensor, hr: Tensor) -> None:
        values = psnr(sr, hr, shave=self.shave, y_channel=self.y_channel)
        self.psnr_sum += values.sum().to(self.psnr_sum.dtype)
        self.count += values.numel()

    def compute(self) -> Tensor:
        return (self.psnr_sum / self.count).float()
