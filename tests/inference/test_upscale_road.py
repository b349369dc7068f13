"""Issue 19, point 1: one options object, one render loop, the tile policy in one place.

The outputs of every path are compared with a frozen copy of the loops as they were before
(``tests/legacy_upscale.py``): bit-identical, dtype included, for the shipped model and for LTE / MetaSR."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from legacy_upscale import legacy_upscale, legacy_upscale_tiled

from liif_sr import load_model
from liif_sr.errors import InvalidArgumentError, UserError
from liif_sr.inference.tile_policy import budget_tile, min_tile, resolve_tile
from liif_sr.inference.tiling import upscale_tiled
from liif_sr.inference.upscale import upscale_tensor, upscale_with
from liif_sr.models import EDSRBaseline, ImplicitSR, LTEHead, MetaSRHead, UpscaleOptions


@pytest.fixture(scope="module")
def shipped() -> ImplicitSR:
    return load_model("edsr-baseline-liif")


def _lr(b: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, 3, h, w, generator=torch.Generator().manual_seed(seed))


def _same(got: torch.Tensor, want: torch.Tensor) -> None:
    assert got.dtype == want.dtype and got.shape == want.shape
    assert torch.equal(got, want), (got - want).abs().max()


@pytest.mark.parametrize("border", ["replicate", "none"])
@pytest.mark.parametrize("cell_clip", ["auto", 4.0])  # auto = None for LIIF
@pytest.mark.parametrize(
    ("shape", "size"), [((1, 23, 19), (46, 38)), ((2, 16, 16), (49, 46)), ((1, 9, 12), (5, 7))]
)
def test_shipped_model_upscale_is_bit_identical(shipped, border, cell_clip, shape, size):
    lr = _lr(*shape)
    want = legacy_upscale(shipped, lr, size, chunk=777, cell_clip=cell_clip, border=border)
    _same(shipped.upscale(lr, size, chunk=777, cell_clip=cell_clip, border=border), want)
    _same(upscale_tensor(shipped, lr, size, chunk=777, cell_clip=cell_clip, border=border), want.float())


@pytest.mark.parametrize("border", ["replicate", "none"])
@pytest.mark.parametrize("tile", [12, (10, 16)])
def test_shipped_model_tiled_is_bit_identical(shipped, border, tile):
    lr = _lr(1, 23, 19, seed=1)
    want = legacy_upscale_tiled(shipped, lr, (69, 55), tile, chunk=500, border=border)
    _same(upscale_tiled(shipped, lr, (69, 55), tile=tile, chunk=500, border=border), want)


def test_budget_and_tile_options_are_bit_identical(shipped):
    lr = _lr(1, 80, 90, seed=2)
    opts = UpscaleOptions.create(size=(160, 180), chunk=512, max_memory=9 * 10**7).for_model(shipped)
    tile = resolve_tile(shipped, tuple(lr.shape), opts)
    assert min_tile(shipped) <= tile < 90  # a budget that tiles
    want = legacy_upscale_tiled(shipped, lr, (160, 180), tile, chunk=512)
    _same(upscale_tensor(shipped, lr, (160, 180), chunk=512, max_memory=9 * 10**7), want)
    small = _lr(1, 45, 33, seed=2)
    big = UpscaleOptions.create(size=(90, 66), max_memory=2**40).for_model(shipped)
    assert resolve_tile(shipped, tuple(small.shape), big) == 0  # fits: untiled
    _same(upscale_with(shipped, small, big), legacy_upscale(shipped, small, (90, 66)))


@pytest.mark.parametrize("head", [LTEHead, MetaSRHead])
def test_other_heads_are_bit_identical(head):
    torch.manual_seed(0)
    model = ImplicitSR(EDSRBaseline(n_resblocks=1, n_feats=8), head(in_channels=8, hidden_list=[16])).eval()
    lr = _lr(1, 14, 11, seed=3)
    for size in ((28, 22), (90, 70)):
        _same(model.upscale(lr, size, chunk=300), legacy_upscale(model, lr, size, chunk=300))
        _same(upscale_tiled(model, lr, size, tile=5), legacy_upscale_tiled(model, lr, size, 5))


def test_options_are_checked_once_and_frozen():
    opts = UpscaleOptions.create(size=12, chunk=7, cell_clip=4, tile=3, max_memory=10**6, precision="bf16")
    assert opts == UpscaleOptions((12, 12), 7, 4.0, "replicate", 3, 10**6, "bf16")
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.chunk = 1  # type: ignore[misc]
    for kwargs, option in [
        ({"chunk": 0}, "chunk"),
        ({"cell_clip": 0.5}, "cell_clip"),
        ({"border": "reflect"}, "border"),
        ({"tile": -1}, "tile"),
        ({"tile": 1.5}, "tile"),
        ({"max_memory": 0}, "max_memory"),
        ({"precision": "fp8"}, "precision"),
        ({"size": (0, 3)}, "size"),
    ]:
        with pytest.raises(InvalidArgumentError) as exc:
            UpscaleOptions.create(**kwargs)
        assert exc.value.option == option and "\n" not in str(exc.value)
    with pytest.raises(InvalidArgumentError, match="no output size"):
        UpscaleOptions.create().out_size  # noqa: B018


def test_lr_is_checked_once_per_call(shipped, monkeypatch):
    """``check_lr`` reads the whole tensor back to the host: once per call, whichever path."""
    import liif_sr.inference.upscale as up
    import liif_sr.models.implicit_sr as liif_mod

    calls = []
    real = liif_mod.check_lr
    monkeypatch.setattr(liif_mod, "check_lr", lambda lr: calls.append(1) or real(lr))
    monkeypatch.setattr(up, "check_lr", lambda lr: calls.append(1) or real(lr))
    lr = _lr(1, 10, 10)
    for run in (
        lambda: shipped.upscale(lr, (20, 20)),
        lambda: upscale_tensor(shipped, lr, (20, 20)),
        lambda: upscale_tensor(shipped, lr, (20, 20), tile=72),
        lambda: upscale_tensor(shipped, lr, (20, 20), max_memory=2**40),
    ):
        calls.clear()
        run()
        assert len(calls) == 1


def test_budget_policy_is_one_function(shipped):
    """Too small a budget is refused in one line by the one policy, whichever entry asks."""
    from liif_sr.inference.tiling import upscale_budgeted

    lr = _lr(1, 150, 120)
    opts = UpscaleOptions.create(size=(300, 240), chunk=512, max_memory=5 * 10**7)  # room for 36-px tiles
    with pytest.raises(UserError, match="36-pixel tiles; the minimum useful tile is 72"):
        budget_tile(shipped, tuple(lr.shape), opts)
    for run in (
        lambda: upscale_budgeted(shipped, lr, (300, 240), chunk=512, max_memory=5 * 10**7),
        lambda: upscale_tensor(shipped, lr, (300, 240), chunk=512, max_memory=5 * 10**7),
    ):
        with pytest.raises(UserError, match="36-pixel tiles; the minimum useful tile is 72"):
            run()
