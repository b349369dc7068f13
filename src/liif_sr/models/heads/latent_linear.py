"""A head's per-query linear layer, evaluated once per latent pixel as a convolution.

LIIF's first layer and MetaSR's weight product are ``nn.Linear`` / matmul products in the papers' code. Their
fast paths evaluate the latent part once per latent pixel with ``F.conv2d`` over the (unfolded) latent grid.
On CUDA, PyTorch's defaults differ for the two ops: matmuls run in full fp32 (``torch.backends.cuda.matmul
.allow_tf32`` is False) while cuDNN convolutions may use TF32 (``torch.backends.cudnn.allow_tf32`` is True), a
10-bit mantissa. The fast path then differed from the reference path by ~1e-3 (MetaSR on an H200, 2026-12-04)
instead of ~1e-6. :func:`linear_as_conv2d` runs the convolution with the *matmul's* TF32 setting, so the fast
path keeps the precision the user chose for the layer it stands for.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor


@contextmanager
def matmul_tf32_for_convs(device: torch.device) -> Iterator[None]:
    """Within the block, cuDNN convolutions on ``device`` use TF32 exactly when matmuls may.

    The cuDNN flag is process-wide: it is set for the block and restored after it (also on error).
    A no-op off CUDA and where both settings already agree.
    """
    wanted = torch.backends.cuda.matmul.allow_tf32
    if device.type != "cuda" or torch.backends.cudnn.allow_tf32 == wanted:
        yield
        return
    before = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = wanted
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32 = before


def linear_as_conv2d(feat: Tensor, weight: Tensor, bias: Tensor | None = None, padding: int = 0) -> Tensor:
    """``F.conv2d(feat, weight, bias, padding)`` at the precision of the linear layer it evaluates.

    Args:
        feat: (B, C, h, w) latent grid.
        weight: (O, C, k, k) the linear layer's weight, reshaped as a kernel.
        bias: (O,) or None.
    Returns:
        (B, O, h', w').
    """
    with matmul_tf32_for_convs(feat.device):
        return F.conv2d(feat, weight, bias, padding=padding)
