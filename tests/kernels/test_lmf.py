"""The LM decode kernel itself: its sin/cos against torch's, its AVX2 and portable C builds against the best
build of this CPU, and one-line refusals of bad arguments (the heads' decode: tests/models/test_lmf_kernel.py)."""

from __future__ import annotations

import ctypes
import dataclasses
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from helpers import require_compiler

from liif_sr.kernels import build, lmf

BUILDS = {2: (), 1: ("-mno-avx512f",), 0: ("-mno-avx512f", "-mno-avx2")}  # simd level -> extra flags


@pytest.fixture(scope="module")
def lmf_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("lmf_kcache")


@pytest.fixture(autouse=True)
def fresh_kernels(lmf_cache, monkeypatch):
    """Overrides the folder's per-test kernel cache: this module's builds (three SIMD levels of the real kernel)
    share one fresh cache folder, each compiled once instead of once per test (~0.5 s each); ``load``'s
    per-process cache is still cleared around each test. Building into and reusing a cache:
    tests/kernels/test_build.py."""
    monkeypatch.setenv("LIIF_SR_KERNEL_CACHE", str(lmf_cache))
    monkeypatch.delenv("LIIF_SR_KERNELS", raising=False)
    build.reset()
    yield
    build.reset()


def _bind_build(monkeypatch, level: int) -> None:
    """``lmf`` bound to a build of one SIMD level (AVX-512, AVX2, portable C) for this machine's CPU."""
    if level > lmf.simd():
        pytest.skip(f"this CPU has no {lmf.SIMD_NAMES[level]} path")
    path = build.compile_kernel(lmf.NAME, flags=(*build.FLAGS, *BUILDS[level]))
    lib = lmf.bind(ctypes.CDLL(str(path)))
    monkeypatch.setattr(lmf, "_lib", lambda: lib)
    assert lmf.simd() == level and lmf.fast() == (level > 0)


@pytest.mark.parametrize("level", [2, 1, 0])
def test_sincos_matches_torch_over_the_range_and_beyond_the_reduction(monkeypatch, level):
    require_compiler()
    _bind_build(monkeypatch, level)
    x = torch.cat(
        [torch.linspace(-50, 50, 4096), torch.tensor([0.0, -0.0, math.pi / 4, 1e5, -3e5, 1e7] * 16)]
    )
    x = x[: x.numel() // 16 * 16].contiguous()
    for cos, fn in ((False, torch.sin), (True, torch.cos)):
        got, want = lmf.sincos(x, cos), fn(x.double()).float()
        assert (got - want).abs().max().item() <= 1e-6, cos


def _net(mode: int, depth: int, skip: bool, gen: torch.Generator) -> lmf.Net:
    latents = 2 * 5 * 7
    stride = 32 * depth + (32 if mode else 0)

    def r(*shape: int, scale: float = 0.3) -> torch.Tensor:
        return torch.randn(*shape, generator=gen) * scale

    w_out = torch.zeros(16, 16)
    w_out[:, :3] = r(16, 3)
    return lmf.Net(
        table=r(latents, stride) + 0.5,
        depth=depth,
        mode=mode,
        w_first=r(8, 2) if mode else r(4, 16),
        n_geo=0 if mode else 4,
        w_hidden=r(depth, 16, 16),
        w_out=w_out,
        b_out=r(3),
        lr=r(latents, 3) if skip else None,
    )


@pytest.mark.parametrize("level", [1, 0])
@pytest.mark.parametrize(
    ("mode", "depth", "skip"), [(0, 1, False), (0, 6, True), (1, 8, True), (1, 3, False)]
)
def test_every_build_equals_the_best_build(monkeypatch, mode, depth, skip, level):
    require_compiler()
    gen = torch.Generator().manual_seed(mode + depth)
    net = _net(mode, depth, skip, gen)
    # 2 x 37 queries: blocks of 16, 16, 16, 16, 10; 17, 18, 19: a last block of 1, 2, 3 queries (the AVX2
    # layers run 6 member rows at a time: 4, 2 and no rows left over)
    sizes = [(2, 37), (1, 17), (1, 18), (1, 19)]
    geom = (5, 7, 0, 0, 5, 7, 1)
    inputs = [(torch.rand(b, q, 2, generator=gen) * 2 - 1, torch.full((b, q, 2), 0.1)) for b, q in sizes]
    best = [lmf.decode(net, coord, cell, geom, 3) for coord, cell in inputs]
    _bind_build(monkeypatch, level)
    for want, (coord, cell) in zip(best, inputs, strict=True):
        other = lmf.decode(net, coord, cell, geom, 3)
        assert ((want - other).abs().max() / other.abs().max()).item() <= 1e-5, coord.shape


@pytest.mark.parametrize("channels", [3, 5])
def test_the_skip_is_a_bilinear_border_sample_of_any_width(channels):
    """With a zero output layer the decode is the skip alone: grid_sample's (RGB has its own unrolled sum)."""
    require_compiler()
    gen = torch.Generator().manual_seed(channels)
    lr = torch.randn(1, channels, 5, 7, generator=gen)
    rows = lr.permute(0, 2, 3, 1).reshape(35, channels).contiguous()
    net = dataclasses.replace(
        _net(1, 2, True, gen), w_out=torch.zeros(16, 16), b_out=torch.zeros(channels), lr=rows
    )
    coord = torch.rand(1, 40, 2, generator=gen) * 2.4 - 1.2
    got = lmf.decode(net, coord, torch.full((1, 40, 2), 0.1), (5, 7, 0, 0, 5, 7, 1), channels)
    grid = coord.flip(-1).unsqueeze(1)
    want = F.grid_sample(lr, grid, mode="bilinear", padding_mode="border", align_corners=False)
    assert (got - want[:, :, 0].transpose(1, 2)).abs().max().item() <= 1e-5


def test_bad_arguments_are_refused_in_one_line():
    require_compiler()
    net = _net(0, 2, False, torch.Generator().manual_seed(0))
    coord, cell = torch.zeros(1, 4, 2), torch.zeros(1, 4, 2)
    with pytest.raises(ValueError, match="contiguous fp32 CPU"):
        lmf.decode(net, coord.double(), cell, (5, 7, 0, 0, 5, 7, 1), 3)
    with pytest.raises(ValueError, match="unsupported sizes"):
        lmf.decode(net, coord, cell, (5, 7, 0, 0, 5, 7, 1), 17)
    window = (5, 7, 2, 2, 2, 2, 0)  # a 2x2 window of a 5x7 grid: the centre query reads outside it
    with pytest.raises(RuntimeError, match="outside the prepared window"):
        lmf.decode(net, coord, cell, window, 3, head="X")
