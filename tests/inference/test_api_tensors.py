"""The Python API with the tensors users pass (issue 18, class 7): any floating dtype just works, wrong
queries and states are one-line :class:`InvalidArgumentError`, and no autograd graph is kept for inference."""

from __future__ import annotations

import os
import stat

import pytest
import torch

from liif_sr.checkpoints import load_model, save_weights
from liif_sr.coords import make_coord
from liif_sr.errors import InvalidArgumentError
from liif_sr.inference.upscale import upscale_tensor
from liif_sr.models.build import build_model

ENCODER = {"name": "edsr_baseline", "args": {"n_resblocks": 1, "n_feats": 4}}
HEADS = {
    "liif": {"hidden_list": [8]},
    "lte": {"name": "lte", "hidden_dim": 8, "hidden_list": [8]},
    "metasr": {"name": "metasr"},
    "lmliif": {"name": "lmliif", "hidden_list": [8], "hidden_dim": 8, "hidden_depth": 2},
    "lmlte": {"name": "lmlte", "latent_dim": 8, "hidden_list": [8], "hidden_dim": 8, "hidden_depth": 2},
    "lmciaosr": {
        "name": "lmciaosr",
        "attn_hidden": [8],
        "hidden_list": [8],
        "hidden_dim": 4,
        "hidden_depth": 2,
    },
}
UNTILEABLE = {"lmciaosr"}  # non-local: a tile covering the (border-padded) image runs untiled
# largest difference from the float32 result in [0, 1] units (the input's own rounding dominates)
TOL = {torch.float64: 1e-6, torch.float16: 2e-3, torch.bfloat16: 1e-2}


def _model(head: str):
    torch.manual_seed(0)
    return build_model({"encoder": ENCODER, "head": HEADS[head]}).eval()


def _grid(h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    coord = make_coord((h, w))[None]
    return coord, torch.full_like(coord, 2 / h)


@pytest.mark.parametrize("head", sorted(HEADS))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_any_float_input_into_an_fp32_model(head, dtype):
    model, lr = _model(head), torch.rand(2, 3, 6, 7)
    coord, cell = _grid(12, 14)
    ref = model.upscale(lr, (12, 14))
    out = model.upscale(lr.to(dtype), (12, 14))
    assert out.dtype == dtype and (out.float() - ref).abs().max() <= TOL[dtype]
    q = model.query(lr.to(dtype), coord.expand(2, -1, -1), cell.expand(2, -1, -1))
    q_ref = model.query(lr.to(dtype).float(), coord.expand(2, -1, -1), cell.expand(2, -1, -1))
    assert q.dtype == dtype and (q.float() - q_ref).abs().max() <= TOL[dtype]
    tiled = upscale_tensor(model, lr.to(dtype), (12, 14), tile=64 if head in UNTILEABLE else 16)
    assert tiled.dtype == torch.float32 and (tiled - ref).abs().max() <= TOL[dtype]


@pytest.mark.parametrize("head", sorted(HEADS))
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_fp32_input_into_a_half_model(head, dtype):
    model, lr = _model(head), torch.rand(1, 3, 6, 7)
    ref = model.upscale(lr, (12, 14))
    half = _model(head).to(dtype)
    out = half.upscale(lr, (12, 14))
    assert out.dtype == torch.float32 and (out - ref).abs().max() < 2e-2
    coord, cell = _grid(12, 14)
    assert half.query(lr, coord, cell).dtype == torch.float32
    tile = 64 if head in UNTILEABLE else 16
    assert (upscale_tensor(half, lr, (12, 14), tile=tile) - ref).abs().max() < 2e-2


@pytest.mark.parametrize(
    ("coord", "cell", "message"),
    [
        (torch.zeros(1, 0, 2), None, "coord holds no queries"),
        (torch.zeros(1, 0, 2), torch.zeros(1, 0, 2), "coord holds no queries"),
        (torch.full((1, 4, 2), float("nan")), None, "coord holds NaN or infinite values"),
        (torch.tensor([[[0.0, float("inf")]]]), None, "coord holds NaN"),
        (torch.zeros(1, 4, 2), torch.full((1, 4, 2), float("nan")), "cell holds NaN"),
        (torch.zeros(1, 4, 3), None, "coord must be (B, Q, 2)"),
        (torch.zeros(4, 2), None, "coord must be (B, Q, 2)"),
        (torch.zeros(2, 4, 2), None, "coord has batch 2, the image(s) 1"),
        (torch.zeros(1, 4, 2, dtype=torch.long), None, "coord has dtype torch.int64"),
        (torch.zeros(1, 4, 2), torch.zeros(1, 3, 2), "cell must be None or a float tensor shaped like coord"),
        ([[0.0, 0.0]], None, "coord must be a torch.Tensor"),
    ],
)
def test_bad_queries_are_one_line(coord, cell, message):
    model, lr = _model("liif"), torch.rand(1, 3, 6, 7)
    with pytest.raises(InvalidArgumentError, match=message.replace("(", r"\(").replace(")", r"\)")) as exc:
        model.query(lr, coord, cell)
    assert "\n" not in str(exc.value)
    state = model.prepare(lr)
    with pytest.raises(InvalidArgumentError, match="coord|cell"):
        model.decode(state, coord, cell)


def test_decode_with_another_models_state():
    a, b, lr = _model("liif"), _model("lte"), torch.rand(1, 3, 6, 7)
    coord, cell = _grid(4, 4)
    for other in (b, _model("liif")):  # another kind of model, or the same kind but another instance
        with pytest.raises(InvalidArgumentError, match="decode: the state was not prepared by this model"):
            other.decode(a.prepare(lr), coord, cell)
    with pytest.raises(InvalidArgumentError, match="not prepared by this model"):
        a.decode({"feat": torch.zeros(1)}, coord, cell)
    assert a.decode(a.prepare(lr), coord, cell).shape == (1, 16, 3)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("device", ["cuda", "cuda:1", torch.device("cuda"), "bogus"])
def test_load_model_on_a_missing_device(device):
    with pytest.raises(InvalidArgumentError, match="load_model: device") as exc:
        load_model("edsr-baseline-liif", device=device)
    assert "\n" not in str(exc.value)


def test_query_keeps_no_graph_unless_an_input_requires_grad():
    model, lr = _model("liif"), torch.rand(1, 3, 6, 7)
    coord, cell = _grid(8, 8)
    assert torch.is_grad_enabled()
    for out in (model.query(lr, coord, cell), model.decode(model.prepare(lr), coord, cell)):
        assert not out.requires_grad and out.grad_fn is None
    state = model.prepare(lr)
    tensors = [v for v in vars(state.head_state).values() if isinstance(v, torch.Tensor)]
    assert tensors and not any(t.requires_grad for t in tensors)
    # gradients with respect to an input: the graph is kept
    lr_g = lr.clone().requires_grad_()
    model.query(lr_g, coord, cell).sum().backward()
    assert lr_g.grad is not None and lr_g.grad.abs().sum() > 0
    coord_g = coord.clone().requires_grad_()
    assert model.query(lr, coord_g, cell).requires_grad
    with torch.no_grad():
        assert not model.query(lr_g, coord, cell).requires_grad


def test_saved_weights_have_the_mode_of_a_new_file(tmp_path):
    """Issue 18: ``model.safetensors`` was written 0600 (mkstemp) while everything else is 0644."""
    old = os.umask(0o022)
    try:
        for name in ("m.safetensors", "m.pth"):
            path = save_weights(_model("liif"), tmp_path / name)
            assert stat.S_IMODE(path.stat().st_mode) == 0o644
        os.umask(0o077)
        path = save_weights(_model("liif"), tmp_path / "private.safetensors")
        assert stat.S_IMODE(path.stat().st_mode) == 0o600  # a stricter umask is respected
    finally:
        os.umask(old)
