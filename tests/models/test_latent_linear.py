"""``heads/latent_linear.py``: the fast paths' convolutions run at the precision of the linear layer they stand for."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from liif_sr.models.build import build_model
from liif_sr.models.heads import latent_linear
from liif_sr.models.heads.latent_linear import linear_as_conv2d, matmul_tf32_for_convs

CUDA = torch.device("cuda")


@pytest.fixture
def tf32_flags():
    """Restore both process-wide flags after the test."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@pytest.mark.parametrize("cudnn_tf32", [True, False])
@pytest.mark.parametrize("matmul_tf32", [True, False])
def test_convs_follow_the_matmul_setting_on_cuda_and_are_restored(tf32_flags, cudnn_tf32, matmul_tf32):
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = cudnn_tf32, matmul_tf32
    with matmul_tf32_for_convs(CUDA):  # the flag is read by cuDNN at each call: no CUDA needed to check it
        assert torch.backends.cudnn.allow_tf32 is matmul_tf32
    assert torch.backends.cudnn.allow_tf32 is cudnn_tf32


def test_restored_after_an_error(tf32_flags):
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = True, False
    with pytest.raises(RuntimeError), matmul_tf32_for_convs(CUDA):
        raise RuntimeError("conv failed")
    assert torch.backends.cudnn.allow_tf32 is True


def test_cpu_leaves_the_flags_alone(tf32_flags):
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = True, False
    with matmul_tf32_for_convs(torch.device("cpu")):
        assert torch.backends.cudnn.allow_tf32 is True


def test_linear_as_conv2d_equals_the_linear_layer():
    """The convolution is the linear layer applied to each pixel's unfolded 3x3 neighbourhood."""
    gen = torch.Generator().manual_seed(0)
    feat, weight = torch.randn(2, 4, 5, 7, generator=gen), torch.randn(6, 4 * 9, generator=gen)
    bias = torch.randn(6, generator=gen)
    out = linear_as_conv2d(feat, weight.view(6, 4, 3, 3), bias, padding=1)
    unfolded = F.unfold(feat, 3, padding=1).transpose(1, 2)  # (B, h*w, C*9)
    ref = (unfolded @ weight.T + bias).transpose(1, 2).reshape(2, 6, 5, 7)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("head", ["liif", "metasr"])
def test_liif_and_metasr_fast_prepare_use_it(monkeypatch, head):
    """LIIF's first layer and MetaSR's weight product are matmuls in the papers' code: their fast ``prepare``
    must go through ``linear_as_conv2d`` (so a CUDA run keeps fp32 where the user's matmuls do)."""
    seen = []
    real = latent_linear.matmul_tf32_for_convs

    def spy(device):
        seen.append(device)
        return real(device)

    monkeypatch.setattr(latent_linear, "matmul_tf32_for_convs", spy)
    model = build_model(
        {"encoder": {"name": "edsr_baseline", "n_resblocks": 1, "n_feats": 8}, "head": {"name": head}}
    )
    with torch.no_grad():
        model.upscale(torch.rand(1, 3, 6, 7), (13, 15), precision="fp32")
    assert seen and all(d.type == "cpu" for d in seen)
