"""Issue #14: API arguments are used as meant or refused with one line (never silently wrong)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from liif_sr.errors import InvalidArgumentError, UserError
from liif_sr.inference.upscale import (
    check_cell_clip,
    check_chunk,
    check_lr,
    check_size,
    check_tile,
    check_upscale_args,
    min_tile,
    parse_size,
    target_size,
    upscale_tensor,
)
from liif_sr.models import EDSRBaseline, ImplicitSR, LIIFHead


@pytest.fixture(scope="module")
def model() -> ImplicitSR:
    torch.manual_seed(0)
    return ImplicitSR(EDSRBaseline(n_resblocks=1, n_feats=8), LIIFHead(8, hidden_list=[16])).eval()


@pytest.mark.parametrize(
    "lr,message",
    [
        ((torch.rand(1, 3, 8, 8) * 255).to(torch.uint8), "dtype torch.uint8: pass floats in [0, 1]"),
        (torch.randint(0, 255, (2, 3, 4, 4), dtype=torch.int64), "dtype torch.int64"),
        (torch.rand(1, 3, 8, 8) * 255, "expected [0, 1] (0..255 data: divide by 255"),
        (torch.rand(1, 3, 8, 8) * 2 - 1, "expected [0, 1]"),
        (torch.full((1, 3, 4, 4), float("nan")), "NaN or infinite"),
        (torch.tensor([[[[0.5, float("inf")]]] * 3]), "NaN or infinite"),
        (torch.rand(3, 16, 16), "got (3, 16, 16): add a batch dimension, lr[None]"),
        (torch.rand(1, 16, 16, 3), "channels last? use lr.permute(0, 3, 1, 2)"),
        (torch.rand(1, 4, 8, 8), "lr must be (B, 3, h, w), got (1, 4, 8, 8)"),
        (torch.rand(16, 16), "lr must be (B, 3, h, w)"),
        (torch.rand(0, 3, 8, 8), "lr is empty"),
        (np.zeros((1, 3, 4, 4), np.float32), "lr must be a torch.Tensor"),
    ],
)
def test_check_lr_refuses(lr, message):
    with pytest.raises(InvalidArgumentError) as exc:
        check_lr(lr)
    assert message in str(exc.value) and "\n" not in str(exc.value)
    assert isinstance(exc.value, ValueError) and isinstance(exc.value, UserError)


def test_check_lr_accepts_image_data():
    for lr in (torch.rand(2, 3, 5, 7), torch.rand(1, 3, 4, 4).double(), torch.rand(1, 3, 4, 4).bfloat16()):
        check_lr(lr)
    check_lr(torch.rand(1, 3, 4, 4) * 1.1 - 0.05)  # bicubic over/undershoot is fine


@pytest.mark.parametrize(
    "size,want",
    [
        (32, (32, 32)),
        ((20, 30), (20, 30)),
        ([7, 9], (7, 9)),
        (torch.Size([5, 6]), (5, 6)),
        (np.int64(4), (4, 4)),
        ((np.int32(3), torch.tensor(8)), (3, 8)),
    ],
)
def test_check_size_accepts(size, want):
    assert check_size(size) == want


@pytest.mark.parametrize(
    "size,message",
    [
        (0, "positive"),
        ((-5, 10), "positive"),
        ((10, 0), "positive"),
        (32.0, "(H, W) or one int"),
        ((32.5, 3), "(H, W) or one int"),
        ((1, 2, 3), "(H, W) or one int"),
        ("32x32", "(H, W) or one int"),
        (True, "(H, W) or one int"),
        ((True, 3), "(H, W) or one int"),
        (None, "(H, W) or one int"),
    ],
)
def test_check_size_refuses(size, message):
    with pytest.raises(InvalidArgumentError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_size(size)


@pytest.mark.parametrize("chunk", [-1, 0, -5, 2.5, True, None, "64"])
def test_check_chunk_refuses(chunk):
    with pytest.raises(InvalidArgumentError, match="chunk must be a positive integer"):
        check_chunk(chunk)


@pytest.mark.parametrize(
    "clip", [0, -1, 0.0, math.nan, math.inf, -math.inf, "4", True, 1e-3, 1e-30, 0.5, 0.999999]
)
def test_check_cell_clip_refuses(clip):
    """Issue 18 class 5: a clip below 1 (a cell floor larger than an LR pixel) rendered black images."""
    with pytest.raises(InvalidArgumentError, match="cell_clip must be"):
        check_cell_clip(clip)
    assert check_cell_clip(None) is None and check_cell_clip(4) == 4.0 and check_cell_clip(1) == 1.0


@pytest.mark.parametrize("clip", [1e-3, 1e-30, 0.5])
def test_api_refuses_a_cell_clip_below_one(model, clip):
    lr = torch.rand(1, 3, 6, 7)
    with pytest.raises(InvalidArgumentError, match="cell_clip must be a finite number >= 1"):
        model.upscale(lr, (12, 14), cell_clip=clip)
    with pytest.raises(InvalidArgumentError, match="cell_clip must be a finite number >= 1"):
        upscale_tensor(model, lr, (12, 14), cell_clip=clip)


def test_upscale_tensor_checks_and_square_size(model):
    lr = torch.rand(1, 3, 6, 7)
    assert torch.equal(upscale_tensor(model, lr, 12), model.upscale(lr, (12, 12)))
    for bad in (
        {"lr": (lr * 255).to(torch.uint8)},
        {"lr": lr[0]},
        {"chunk": -1},
        {"chunk": 0},
        {"cell_clip": 0},
        {"cell_clip": 1e-3},
        {"size": (0, 5)},
        {"tile": -1},
    ):
        kwargs = {"lr": lr, "size": (9, 9), **bad}
        with pytest.raises(InvalidArgumentError):
            upscale_tensor(model, **kwargs)
    size, chunk, clip = check_upscale_args(lr, 9, 7, 4)
    assert (size, chunk, clip) == ((9, 9), 7, 4.0)


def test_tile_is_raised_to_minimum(model):
    floor = min_tile(model)
    assert floor >= 16
    assert check_tile(model, 0) == (0, None) and check_tile(model, floor) == (floor, None)
    for tile in (1, 2, floor - 1):
        got, note = check_tile(model, tile)
        assert got == floor and f"tile {tile} is below" in note and f"using {floor}" in note
    lr = torch.rand(1, 3, 45, 33)
    want = model.upscale(lr, (90, 66))
    with pytest.warns(UserWarning, match="tile 1 is below"):
        got = upscale_tensor(model, lr, (90, 66), tile=1)
    assert (got - want).abs().max() <= 1e-5  # tiling is exact: the bigger tile changes only the speed


def test_memory_budget_too_small_for_a_useful_tile(model):
    lr = torch.rand(1, 3, 45, 33)
    with pytest.raises(UserError, match="too small for a 45x33 input .* minimum useful tile is"):
        upscale_tensor(model, lr, (90, 66), chunk=512, max_memory=600_000)
    with pytest.raises(UserError, match="--max-memory: memory budget"):
        upscale_tensor(model, lr, (90, 66), chunk=512, max_memory=1000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = upscale_tensor(model, lr, (90, 66), chunk=512, max_memory=2_000_000)
    assert (got - model.upscale(lr, (90, 66))).abs().max() <= 1e-5


@pytest.mark.parametrize(
    "text", ["80x", "x80", "2x3x4", "-5x10", "1.5x2", "", "x", "80xx80", "8 0", "nan", "80x-1"]
)
def test_parse_size_refuses(text):
    with pytest.raises(UserError, match="expected"):
        parse_size(text)


def test_parse_size_accepts():
    assert parse_size("80") == (80, 80)
    assert (
        parse_size("80x60") == (80, 60)
        and parse_size(" 80 X 60 ") == (80, 60)
        and parse_size("80,60") == (80, 60)
    )


@pytest.mark.parametrize("scale", [1e-9, 0.01, (1.0, 1e-3)])
def test_scale_that_rounds_a_side_to_zero(scale):
    with pytest.raises(UserError, match=r"would become \d+x\d+; each side must be at least 1 pixel"):
        target_size((45, 33), scale, None)
    assert target_size((45, 33), 0.05, None) == (2, 2)  # a small scale that still gives pixels is used


@pytest.mark.parametrize("scale", [1e308, 1001.0, (2.0, 5000.0)])
def test_scale_above_maximum(scale):
    with pytest.raises(UserError, match="at most 1000 per axis"):
        target_size((45, 33), scale, None)
