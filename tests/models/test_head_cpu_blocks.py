"""CPU inference of the LTE and MetaSR heads in cache-sized blocks (``lte_blocks.py``, ``MetaSRHead.decode``):
the same output on one thread and on the worker pool, equal to the whole-chunk form (training/GPU path) and to
the reference, under bf16 autocast too (fp32 Fourier phases), and no chunk-sized intermediates."""

from __future__ import annotations

import pytest
import torch

from liif_sr.models import build_model
from liif_sr.models.heads import lte_blocks


def _model(head: str, fast: bool = True):
    torch.manual_seed(0)
    args = {"hidden_dim": 16, "hidden_list": [32, 32]} if head == "lte" else {"hidden_list": [32]}
    config = {"encoder": {"name": "edsr_baseline", "args": {"n_resblocks": 1, "n_feats": 8}}}
    config["head"] = {"name": head, **args}
    model = build_model(config, head_mode="fast" if fast else "plain").eval()
    with torch.no_grad():
        for p in model.head.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


def _queries(b: int = 2, q: int = 1100):
    gen = torch.Generator().manual_seed(4)
    coord = torch.rand(b, q, 2, generator=gen) * 2 - 1
    cell = torch.rand(b, q, 2, generator=gen) * 0.2 + 0.01
    return coord, cell


def _decode(model, threads: int, grad: bool = False, bf16: bool = False) -> torch.Tensor:
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        lr = torch.rand(2, 3, 9, 11, generator=torch.Generator().manual_seed(5))
        coord, cell = _queries()
        with torch.set_grad_enabled(grad), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            x = (lr - 0.5) / 0.5
            state = model.head.prepare(model.encode(lr), x)
            return model.head.decode(state, coord, cell).detach()
    finally:
        assert torch.get_num_threads() == threads
        torch.set_num_threads(before)


@pytest.mark.parametrize("head", ["lte", "metasr"])
def test_blocks_equal_on_one_and_two_threads_and_match_the_chunk_form(head, monkeypatch):
    model = _model(head)
    one, two = _decode(model, 1), _decode(model, 2)
    assert torch.equal(one, two)  # blocks are independent: the pool changes nothing
    chunk = _decode(model, 1, grad=True)  # grad enabled: the whole-chunk form of the training step
    ref = _decode(_model(head, fast=False), 1)
    scale = ref.abs().max()
    assert ((one - chunk).abs().max() / scale).item() <= 1e-5
    assert ((one - ref).abs().max() / scale).item() <= 1e-5
    if head == "lte":  # smaller blocks (block edges inside a batch image) give the same values
        monkeypatch.setattr(lte_blocks, "BLOCK_QUERIES", 7)
        assert torch.equal(_decode(model, 1), one)


@pytest.mark.parametrize("head", ["lte", "metasr"])
def test_blocks_under_bf16_autocast(head):
    model = _model(head)
    fp32, bf16 = _decode(model, 1), _decode(model, 2, bf16=True)
    assert bf16.dtype == torch.float32 and torch.isfinite(bf16).all()
    assert ((bf16 - fp32).abs().max() / fp32.abs().max()).item() < 0.05
