"""MetaSR CPU decode grouped by latent (``metasr_groups.py``, with the fused C kernel off): taken on output
grids, equal to the per-query path and to the reference (integer, non-integer and anisotropic scales, batch > 1,
any query order, tiled), falls back when the queries per latent are too uneven, and its layout stays bounded by
the chunk."""

from __future__ import annotations

import pytest
import torch
from helpers import metasr_test_model, one_thread, pixel_grid, torch_threads

from liif_sr.inference.tiling import upscale_tiled
from liif_sr.models.heads import metasr_groups, metasr_kernel
from liif_sr.models.heads.metasr_groups import decode_grouped, latent_layout


@pytest.fixture(autouse=True)
def _torch_path(monkeypatch):
    """These tests cover the torch path; the fused C kernel (tests/models/test_metasr_kernel.py) is off."""
    monkeypatch.setattr(metasr_kernel, "library", lambda: None)


def _decode(model, lr, coord, cell):
    with torch.inference_mode():
        state = model.head.prepare(model.encode(lr), (lr - 0.5) / 0.5)
        return model.head.decode(state, coord, cell)


def _spy(monkeypatch) -> list[bool]:
    taken: list[bool] = []
    real = metasr_groups.decode_grouped

    def spy(*args):
        out = real(*args)
        taken.append(out is not None)
        return out

    monkeypatch.setattr("liif_sr.models.heads.metasr.decode_grouped", spy)
    return taken


@pytest.mark.parametrize(
    "b,lr_size,size",
    [(1, (9, 11), (27, 33)), (2, (9, 11), (23, 28)), (2, (7, 12), (14, 60)), (1, (10, 10), (10, 10))],
    ids=["x3", "x2.5-batch2", "anisotropic-batch2", "x1"],
)
@pytest.mark.parametrize("threads", [1, 2])
def test_grouped_equals_per_query_and_reference(b, lr_size, size, threads, monkeypatch):
    model = metasr_test_model()
    lr = torch.rand(b, 3, *lr_size, generator=torch.Generator().manual_seed(1))
    coord, cell = pixel_grid(b, size)
    taken = _spy(monkeypatch)
    with torch_threads(threads):
        grouped = _decode(model, lr, coord, cell)
    assert taken == [True]
    monkeypatch.setattr(metasr_groups, "DENSITY", 0)  # every layout over budget: the per-query path
    per_query = _decode(model, lr, coord, cell)
    assert taken == [True, False]
    ref = _decode(metasr_test_model(fast=False), lr, coord, cell)
    scale = ref.abs().max()
    assert ((grouped - per_query).abs().max() / scale).item() <= 1e-5
    assert ((grouped - ref).abs().max() / scale).item() <= 1e-5


def test_threads_block_size_and_query_order_change_nothing(monkeypatch):
    model = metasr_test_model()
    lr = torch.rand(2, 3, 9, 11, generator=torch.Generator().manual_seed(2))
    coord, cell = pixel_grid(2, (31, 40))
    with torch_threads(1):
        one = _decode(model, lr, coord, cell)
    with torch_threads(2):
        assert torch.equal(_decode(model, lr, coord, cell), one)  # blocks are independent
    perm = torch.randperm(coord.shape[1], generator=torch.Generator().manual_seed(3))
    shuffled = _decode(model, lr, coord[:, perm], cell[:, perm])
    assert torch.allclose(shuffled, one[:, perm], rtol=0, atol=1e-6)  # the permutation is inverted
    monkeypatch.setattr(metasr_groups, "BLOCK_ROWS", 7)  # one latent per block
    assert torch.allclose(_decode(model, lr, coord, cell), one, rtol=0, atol=1e-6)


def test_tiled_grouped_equals_untiled():
    model = metasr_test_model()
    lr = torch.rand(1, 3, 13, 17, generator=torch.Generator().manual_seed(4))
    with one_thread(), torch.inference_mode():
        want = model.upscale(lr, (52, 51))
        got = upscale_tiled(model, lr, (52, 51), tile=5, chunk=301)
    assert (got - want).abs().max().item() <= 1e-5


def test_uneven_queries_fall_back_and_layout_is_bounded():
    index = torch.tensor([5] * 40 + list(range(20)))  # one latent with 41 queries, 19 with one
    order, latents, slot, n_max = latent_layout(index)
    assert n_max == 41 and latents.tolist() == list(range(20))
    assert torch.equal(index[order], latents[slot // n_max])  # each query sits in its latent's group
    assert sorted(slot.tolist()) == sorted(set(slot.tolist()))  # one slot per query
    hidden = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU())
    table = torch.randn(20, 3 * 4 + 3)
    inp = torch.randn(index.numel(), 3)
    assert decode_grouped(table, index, inp, hidden, 3) is None  # 20 x 41 slots > 2 x 60 queries
    even = torch.arange(20).repeat_interleave(3)
    got = decode_grouped(table, even, inp, hidden, 3)
    rows = table[even]
    t = hidden(inp)
    want = torch.einsum("qkh,qh->qk", rows[:, :12].view(-1, 3, 4), t) + rows[:, 12:]
    assert got is not None and torch.allclose(got, want, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_grouped_under_autocast_and_half_models(dtype, monkeypatch):
    model = metasr_test_model()
    lr = torch.rand(2, 3, 9, 11, generator=torch.Generator().manual_seed(6))
    coord, cell = pixel_grid(2, (27, 33))
    fp32 = _decode(model, lr, coord, cell)
    taken = _spy(monkeypatch)
    with torch.autocast("cpu", torch.bfloat16):
        auto = _decode(model, lr, coord, cell)
    half = _decode(metasr_test_model().to(dtype), lr.to(dtype), coord, cell)
    assert taken == [True, True]
    for low in (auto, half):
        assert low.dtype == torch.float32 and torch.isfinite(low).all()
        assert ((low - fp32).abs().max() / fp32.abs().max()).item() < 0.05
