"""The LTE head's fused MLP input (``kernels/csrc/lte.c`` via ``heads/lte_kernel.py``): the CPU fp32 inference
decode with the kernel equals the PyTorch block path (≤ 1e-5 relative) on odd latent sizes, anisotropic
non-integer scales, batch 2, several chunk sizes and thread counts; the kernel steps aside (the PyTorch path
runs) for autograd, bf16 tables and ``kernels.disabled()``. Skips without a C compiler, fails in CI."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import require_compiler

from liif_sr import kernels
from liif_sr.coords import make_coord
from liif_sr.models import build_model
from liif_sr.models.heads import lte_kernel


@pytest.fixture(scope="module")
def lib():
    require_compiler()
    if not kernels.enabled():
        pytest.skip("kernels turned off (LIIF_SR_KERNELS=0)")
    found = lte_kernel.library()
    if found is None:
        pytest.fail("a C compiler is present but the lte kernel did not build")
    return found


def _model(hidden_dim: int = 16):
    torch.manual_seed(0)
    config = {"encoder": {"name": "edsr_baseline", "args": {"n_resblocks": 1, "n_feats": 8}}}
    config["head"] = {"name": "lte", "hidden_dim": hidden_dim, "hidden_list": [32, 32]}
    model = build_model(config, head_mode="fast").eval()
    with torch.no_grad():
        for p in model.head.parameters():
            p.add_(torch.randn_like(p) * 0.05)
        model.head.freq.weight.mul_(8)  # phases of several periods: the reduction by rint(t) is exercised
    return model


def _decode(model, lr: torch.Tensor, size: tuple[int, int], chunk: int, threads: int = 1) -> torch.Tensor:
    b = lr.shape[0]
    coord = make_coord(size).unsqueeze(0).expand(b, -1, -1).contiguous()
    cell = torch.tensor([2 / size[0], 2 / size[1]]).expand_as(coord).contiguous()
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            state = model.head.prepare(model.encode(lr), (lr - 0.5) / 0.5)
            parts = [
                model.head.decode(state, coord[:, i : i + chunk], cell[:, i : i + chunk])
                for i in range(0, coord.shape[1], chunk)
            ]
    finally:
        torch.set_num_threads(before)
    return torch.cat(parts, dim=1)


def _assert_close(got: torch.Tensor, want: torch.Tensor) -> None:
    assert got.shape == want.shape
    assert ((got - want).abs().max() / want.abs().max()).item() <= 1e-5


@pytest.mark.parametrize(
    ("latent", "size", "chunk", "threads"),
    [((7, 11), (17, 29), 97, 1), ((7, 11), (17, 29), 100000, 2), ((9, 5), (31, 12), 300, 1)],
)
def test_kernel_equals_the_pytorch_path(lib, latent, size, chunk, threads):
    model = _model()
    lr = torch.rand(2, 3, *latent, generator=torch.Generator().manual_seed(3))
    calls = []
    original = lte_kernel.basis_writer

    def spy(*args):
        writer = original(*args)
        calls.append(writer is not None)
        return writer

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("liif_sr.models.heads.lte_blocks.basis_writer", spy)
        got = _decode(model, lr, size, chunk, threads)
        with kernels.disabled():
            want = _decode(model, lr, size, chunk, threads)
    n_chunks = math.ceil(size[0] * size[1] / chunk)
    assert calls == [True] * n_chunks + [False] * n_chunks  # the kernel ran, then the fallback did
    _assert_close(got, want)


def test_basis_matches_torch_for_large_phases(lib):
    gen = torch.Generator().manual_seed(1)
    d, n, rows = 32, 37, 10
    table = torch.randn(rows, 2 * d, generator=gen) * 20
    index = torch.randint(0, rows, (n, 4), generator=gen)
    rel = torch.rand(n, 4, 2, generator=gen) * 4 - 2
    phase = torch.randn(n, 1, d // 2, generator=gen) * 30
    write = lte_kernel.basis_writer(table, index, rel, phase)
    assert write is not None
    got = torch.cat([write(0, 5), write(5, n)])
    picked = table[index.reshape(-1)].view(n, 4, 2 * d)
    freq = picked[..., d:].view(n, 4, d // 2, 2)
    # the phase in fp32 as the kernel rounds it (three separate operations), then cos/sin in float64
    theta = (freq[..., 0] * rel[..., 0:1] + freq[..., 1] * rel[..., 1:2] + phase).double()
    assert theta.abs().max().item() > 50  # many periods: the reduction by rint(t) and its sign are exercised
    basis = torch.cat([torch.cos(math.pi * theta), torch.sin(math.pi * theta)], -1)
    want = (picked[..., :d].double() * basis).view(4 * n, d)
    err = (got.double() - want).abs() / picked[..., :d].double().abs().view(4 * n, d)
    assert err.max().item() <= 1e-6


def test_kernel_steps_aside(lib):
    table = torch.randn(6, 8)
    index = torch.zeros(3, 4, dtype=torch.int64)
    rel, phase = torch.zeros(3, 4, 2), torch.zeros(3, 1, 2)
    assert lte_kernel.basis_writer(table, index, rel, phase) is not None
    assert lte_kernel.basis_writer(table.bfloat16(), index, rel, phase) is None
    with torch.enable_grad():
        assert lte_kernel.basis_writer(table.requires_grad_(), index, rel, phase) is None
    with kernels.disabled():
        assert lte_kernel.basis_writer(table.detach(), index, rel, phase) is None


def test_row_outside_the_table_is_refused(lib):
    index = torch.full((2, 4), 6, dtype=torch.int64)
    write = lte_kernel.basis_writer(torch.randn(6, 8), index, torch.zeros(2, 4, 2), torch.zeros(2, 1, 2))
    with pytest.raises(RuntimeError, match="outside the prepared window"):
        write(0, 2)
