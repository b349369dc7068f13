"""The LM heads' CPU inference decode on the fused C kernel (liif_sr.kernels.lmf) equals their PyTorch fast path
(≤ 1e-5 relative): odd sizes, anisotropic non-integer scales, batch 2 with per-item cells, chunks, windows; the
fallback (LIIF_SR_KERNELS=0, a broken compiler) is the PyTorch path with one log line; training, autograd and
CPU autocast keep the PyTorch path."""

from __future__ import annotations

import ctypes
import logging

import pytest
import torch
from helpers import one_thread, require_compiler

from liif_sr.coords import make_cell, make_coord
from liif_sr.kernels import build, lmf
from liif_sr.models.build import build_model
from liif_sr.models.heads import lmf_kernel

HEADS = ("lmliif", "lmlte", "lmciaosr")


def require_kernel() -> None:
    """A compiler (else skip; fail when CI=true) and a CPU with the kernel's AVX2 or AVX-512 path (else skip:
    the heads keep their PyTorch path there)."""
    require_compiler()
    if not lmf.fast():
        pytest.skip("no AVX2/AVX-512 path on this CPU: the heads keep their PyTorch path")


@pytest.fixture(autouse=True)
def _single_thread():
    with one_thread():
        yield


@pytest.fixture
def kernels_off(monkeypatch):
    """Run the body with the kernel disabled; ``load``'s cache is reset before and after."""

    def switch(off: bool) -> None:
        if off:
            monkeypatch.setenv("LIIF_SR_KERNELS", "0")
        else:
            monkeypatch.delenv("LIIF_SR_KERNELS", raising=False)
        build.reset()

    yield switch
    monkeypatch.delenv("LIIF_SR_KERNELS", raising=False)
    build.reset()


def _model(head: str, **args):
    torch.manual_seed(0)
    enc = {"name": "edsr_baseline", "args": {"n_resblocks": 1, "n_feats": 16}}
    model = build_model({"encoder": enc, "head": {"name": head, **args}}).eval()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.head.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)
    return model


def _queries() -> tuple[torch.Tensor, torch.Tensor]:
    """Batch 2: item 0 at 41x53 (x3.15 x 3.12 of 13x17), item 1 at 29x61 (per-item cells)."""
    coords, cells = [], []
    for size in ((41, 53), (29, 61)):
        c = make_coord(size)[: 29 * 53]
        coords.append(c)
        cells.append(make_cell(size, c.shape[0]))
    return torch.stack(coords), torch.stack(cells)


def _decode(model, lr, coord, cell, chunks=(1, 15, 2048 + 5), window=None):
    """Decode in chunks of the given sizes (then the rest), on a fresh state."""
    feat = model.encoder(lr)
    if window is None:
        state = model.head.prepare(feat, lr)
    else:
        (y0, y1), (x0, x1) = window
        state = model.head.prepare(
            feat[..., y0:y1, x0:x1], lr[..., y0:y1, x0:x1], offset=(y0, x0), full_size=feat.shape[-2:]
        )
    outs, start = [], 0
    for size in (*chunks, coord.shape[1]):
        stop = min(start + size, coord.shape[1])
        if stop == start:
            break
        outs.append(model.head.decode(state, coord[:, start:stop], cell[:, start:stop]))
        start = stop
    return torch.cat(outs, dim=1)


def _rel(got: torch.Tensor, want: torch.Tensor) -> float:
    return ((got - want).abs().max() / want.abs().max()).item()


@pytest.mark.parametrize("head", HEADS)
def test_kernel_equals_the_pytorch_decode(head, kernels_off):
    require_kernel()
    model, lr = _model(head), torch.rand(2, 3, 13, 17) * 2 - 1
    coord, cell = _queries()
    with torch.no_grad():
        kernels_off(False)
        assert lmf_kernel.usable(model.head.render, torch.zeros(1), coord)
        got = _decode(model, lr, coord, cell)
        kernels_off(True)
        want = _decode(model, lr, coord, cell, chunks=(4096,))
    assert got.shape == want.shape == (2, coord.shape[1], 3)
    assert _rel(got, want) <= 1e-5
    assert not torch.equal(got, want)  # the kernel did run (other rounding)


@pytest.mark.parametrize("head", ("lmliif", "lmlte"))
def test_kernel_on_a_window_equals_the_whole_grid_and_refuses_a_short_margin(head):
    require_kernel()
    model, lr = _model(head), torch.rand(1, 3, 13, 17) * 2 - 1
    coord, cell = (t[:1] for t in _queries())
    inside = (
        (coord[..., 0] > -0.2) & (coord[..., 0] < 0.3) & (coord[..., 1] > -0.4) & (coord[..., 1] < 0.1)
    )[0]
    coord, cell = coord[:, inside], cell[:, inside]
    with torch.no_grad():
        whole = _decode(model, lr, coord, cell)
        win = _decode(model, lr, coord, cell, window=((2, 11), (1, 12)))
        assert torch.equal(win, whole)
        with pytest.raises(RuntimeError, match="outside the prepared window"):
            _decode(model, lr, coord, cell, window=((6, 8), (5, 9)))


@pytest.mark.parametrize("lr_skip", ("eval", "never"))
def test_lmciaosr_skip_modes(lr_skip, kernels_off):
    require_kernel()
    model, lr = _model("lmciaosr", lr_skip=lr_skip), torch.rand(1, 3, 9, 11) * 2 - 1
    model.head.train()  # "eval" skips only in eval mode
    coord, cell = (t[:1, :500] for t in _queries())
    with torch.no_grad():
        got = _decode(model, lr, coord, cell)
        kernels_off(True)
        want = _decode(model, lr, coord, cell)
    assert _rel(got, want) <= 1e-5


@pytest.mark.parametrize("how", ["env", "broken-cc"])
def test_fallback_is_the_pytorch_path_with_one_log_line(how, monkeypatch, tmp_path, caplog, kernels_off):
    model, lr = _model("lmlte"), torch.rand(1, 3, 9, 11) * 2 - 1
    coord, cell = (t[:1, :300] for t in _queries())
    with torch.no_grad():
        kernels_off(True)
        reference = _decode(model, lr, coord, cell)
        kernels_off(False)
        if how == "env":
            monkeypatch.setenv("LIIF_SR_KERNELS", "0")
        else:
            monkeypatch.setenv("CC", "false")
            monkeypatch.setenv("LIIF_SR_KERNEL_CACHE", str(tmp_path / "empty"))
        caplog.clear()  # the reference's own "off" line, when an earlier test left the logger at INFO
        with caplog.at_level(logging.INFO, logger=build.log.name):
            got = _decode(model, lr, coord, cell)
    assert torch.equal(got, reference)
    lines = [r.getMessage() for r in caplog.records if r.name == build.log.name]
    assert len(lines) == 1 and "PyTorch path" in lines[0] and "\n" not in lines[0], lines


def test_training_autograd_and_autocast_keep_the_pytorch_path(monkeypatch):
    require_kernel()
    model = _model("lmliif")
    coord, cell = (t[:1, :100] for t in _queries())
    calls = []
    monkeypatch.setattr(lmf, "decode", lambda *a, **k: calls.append(1))
    render, rows = model.head.render, torch.zeros(1)
    assert lmf_kernel.usable(render, rows, coord) is False  # grad enabled here
    with torch.no_grad():
        assert lmf_kernel.usable(render, rows, coord)
        assert not lmf_kernel.usable(render, rows.double(), coord)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert not lmf_kernel.usable(render, rows, coord)
    out = model.head.decode(model.head.prepare(model.encoder(torch.rand(1, 3, 9, 11)), None), coord, cell)
    out.sum().backward()
    assert calls == [] and model.head.render.layers[0].weight.grad is not None


def test_threads_split_rows_with_the_same_result(monkeypatch):
    """With 2 torch threads the kernel's rows run on 2 Python threads: bit for bit the 1-thread output."""
    require_kernel()
    monkeypatch.setattr(lmf, "MIN_ROWS", 500)
    model, lr = _model("lmlte"), torch.rand(2, 3, 13, 17) * 2 - 1
    coord, cell = _queries()
    with torch.no_grad():
        one = _decode(model, lr, coord, cell, chunks=())
        torch.set_num_threads(2)
        calls = []
        original = lmf.parallel_rows

        def spy(work, rows, min_rows):
            calls.append(rows // min_rows)
            return original(work, rows, min_rows)

        lmf.parallel_rows = spy
        try:
            two = _decode(model, lr, coord, cell, chunks=())
        finally:
            lmf.parallel_rows = original
    assert calls and min(calls) >= 2 and torch.equal(one, two)


def test_a_portable_c_build_keeps_the_pytorch_path(monkeypatch):
    """Without AVX2/AVX-512 the kernel's portable C path is no faster than PyTorch: the heads do not use it."""
    require_kernel()
    path = build.compile_kernel(lmf.NAME, flags=(*build.FLAGS, "-mno-avx512f", "-mno-avx2"))
    lib = lmf.bind(ctypes.CDLL(str(path)))
    monkeypatch.setattr(lmf, "_lib", lambda: lib)
    model = _model("lmliif")
    coord, cell = (t[:1, :100] for t in _queries())
    with torch.no_grad():
        assert lmf.simd() == 0 and not lmf_kernel.usable(model.head.render, torch.zeros(1), coord)
