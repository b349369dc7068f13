"""Image resizing: MATLAB-exact bicubic, PIL bicubic (LIIF's training path) and torch antialiased bicubic.

Three bicubic resamplers matter for reproducing LIIF (docs/method.md: Bicubic resampling):

* :func:`imresize_matlab` -- a clean-room implementation of MATLAB ``imresize(A, ..., 'bicubic')``. The
  ×2/×3/×4 benchmark and DIV2K LR files were made with it, and so is the "Bicubic" row of SR tables
  (:func:`upsample_bicubic`).
* :func:`resize_pil_bicubic` -- PIL ``Image.resize(BICUBIC)`` on 8-bit images: what the official LIIF code
  uses to make training LR and the ×6..×30 test LR on the fly.
* :func:`resize_torch_antialias` -- ``F.interpolate(mode='bicubic', antialias=True)``: equal to PIL bicubic
  on *float* images, fast and differentiable on any device. On 8-bit images PIL rounds and clips its
  intermediate image (after the horizontal pass), so rounded torch output differs from PIL's by one or a
  few grey levels on ~10-15% of the pixels (up to ~12 levels where bicubic overshoot is clipped).

:func:`downsample` dispatches between them on 8-bit images (the data config ``downsampler``).

All three use the Keys cubic with ``a = -0.5`` and stretch the kernel by ``1/scale`` when shrinking; they
differ at the borders (MATLAB mirrors the image, PIL/torch renormalise the truncated kernel) and in the
quantisation of the result.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from liif_sr.data.resize_checks import _as_batch, _check_image, _check_size, _compute_dtype
from liif_sr.data.resize_matlab import (
    imresize_matlab,
    imresize_matlab_uint8,
    quantize_uint8,
    upsample_bicubic,
)

__all__ = [
    "DOWNSAMPLE_METHODS",
    "DownsampleMethod",
    "downsample",
    "imresize_matlab",
    "imresize_matlab_uint8",
    "quantize_uint8",
    "resize_pil_bicubic",
    "resize_torch_antialias",
    "upsample_bicubic",
]

DownsampleMethod = Literal["pil", "matlab", "torch_antialias"]
#: the values accepted by :func:`downsample` (and by the data config key ``downsampler``)
DOWNSAMPLE_METHODS: tuple[str, ...] = ("pil", "matlab", "torch_antialias")


# ---------------------------------------------------------------------------------------------------------
# PIL and torch bicubic
# ---------------------------------------------------------------------------------------------------------
def resize_pil_bicubic(img_uint8: Tensor, size: tuple[int, int]) -> Tensor:
    """PIL ``Image.resize(BICUBIC)`` on 8-bit images: the official LIIF training/on-the-fly LR path.

    LIIF's ``resize_fn`` is ``ToTensor()(Resize(size, BICUBIC)(ToPILImage()(img)))`` on a float image that
    came from ``ToTensor`` (``uint8 / 255`` in float32). torchvision's float->PIL step is
    ``img.mul(255).byte()``, which *truncates*; but for every ``k`` in 0..255,
    ``float32(k) / 255 * 255 == k`` exactly (checked in numpy and torch, float32 and float64), so the
    truncation never drops a level and that path is identical to calling PIL on the original ``uint8``
    image, which is what this function does. PIL's bicubic (a = -0.5) is antialiased when shrinking,
    renormalises the kernel at the borders and rounds its fixed-point result to 8 bits.

    Args:
        img_uint8: ``uint8`` image :math:`(C, H, W)` or :math:`(B, C, H, W)` with C = 1 (mode ``L``) or
            C = 3 (mode ``RGB``); any device (it is processed on the CPU).
        size: output size ``(H_out, W_out)``.

    Returns:
        ``uint8`` image :math:`(C, H_{out}, W_{out})` or :math:`(B, C, H_{out}, W_{out})` on the input device.
    """
    _check_image(img_uint8, "img_uint8", floating=False)
    out_h, out_w = _check_size(size)
    channels = img_uint8.shape[-3]
    if channels not in (1, 3):
        raise ValueError(f"img_uint8 must have 1 or 3 channels for PIL, got {channels}")
    x, unbatched = _as_batch(img_uint8)
    arrays = x.detach().cpu().permute(0, 2, 3, 1).numpy()
    outs = []
    for arr in arrays:
        pil = Image.fromarray(np.ascontiguousarray(arr[..., 0] if channels == 1 else arr))
        res = np.asarray(pil.resize((out_w, out_h), Image.Resampling.BICUBIC))
        outs.append(res[..., None] if channels == 1 else res)
    out = torch.from_numpy(np.stack(outs)).permute(0, 3, 1, 2).contiguous().to(img_uint8.device)
    return out.squeeze(0) if unbatched else out


def resize_torch_antialias(img: Tensor, size: tuple[int, int]) -> Tensor:
    """``F.interpolate(mode='bicubic', antialias=True, align_corners=False)``, float in and out.

    Equal to PIL bicubic on float (mode ``F``) images to ~1e-7 (same a = -0.5 kernel, same stretching and
    border renormalisation). PIL on 8-bit images resizes the width first and rounds *and clips* that
    intermediate to 8 bits, so ``round(resize_torch_antialias(x))`` differs from :func:`resize_pil_bicubic`
    by one or a few grey levels on ~10-15% of the pixels, more where bicubic overshoot was clipped. Not
    clamped.

    Args:
        img: float image :math:`(C, H, W)` or :math:`(B, C, H, W)`; float16/bfloat16 are computed in float32.
        size: output size ``(H_out, W_out)``.

    Returns:
        Float image :math:`(C, H_{out}, W_{out})` or :math:`(B, C, H_{out}, W_{out})`, dtype of ``img``.
    """
    _check_image(img, floating=True)
    out_size = _check_size(size)
    x, unbatched = _as_batch(img)
    y = F.interpolate(
        x.to(_compute_dtype(img)), size=out_size, mode="bicubic", align_corners=False, antialias=True
    ).to(img.dtype)
    return y.squeeze(0) if unbatched else y


def downsample(img_uint8: Tensor, size: tuple[int, int], method: DownsampleMethod = "pil") -> Tensor:
    """Make an 8-bit LR image with one of the three bicubic resamplers (config key ``downsampler``).

    * ``"pil"``: :func:`resize_pil_bicubic` -- exactly the official LIIF training path.
    * ``"matlab"``: :func:`imresize_matlab_uint8` -- MATLAB ``imresize`` on a ``uint8`` image, bit-exact
      (round half up and saturate after each of the two separable passes, like MATLAB).
    * ``"torch_antialias"``: :func:`resize_torch_antialias` in float32, then ``round`` (half to even) and
      clamp; close to, but not bit-identical with, ``"pil"`` (see :func:`resize_torch_antialias`).

    Args:
        img_uint8: ``uint8`` image :math:`(C, H, W)` or :math:`(B, C, H, W)`.
        size: LR size ``(h, w)``.
        method: ``"pil"``, ``"matlab"`` or ``"torch_antialias"``.

    Returns:
        ``uint8`` image :math:`(C, h, w)` or :math:`(B, C, h, w)` on the input device.
    """
    _check_image(img_uint8, "img_uint8", floating=False)
    out_size = _check_size(size)
    if method == "pil":
        return resize_pil_bicubic(img_uint8, out_size)
    if method == "matlab":
        return imresize_matlab_uint8(img_uint8, size=out_size, antialias=True)
    if method == "torch_antialias":
        y = resize_torch_antialias(img_uint8.to(torch.float32), out_size)
        return y.round_().clamp_(0, 255).to(torch.uint8)
    raise ValueError(f"unknown downsample method {method!r}; expected one of {', '.join(DOWNSAMPLE_METHODS)}")
