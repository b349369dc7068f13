"""The fused MetaSR CPU decode (``kernels/csrc/metasr.c`` via ``heads/metasr_kernel.py``): its geometry equals
the torch geometry bit for bit, its output the torch path's (≤ 1e-5 relative) on odd sizes, anisotropic
non-integer scales, batch 2, any chunk size and thread count, windows and tiles; it steps aside (the torch path
runs) for autograd, bf16, other MLP shapes and ``LIIF_SR_KERNELS=0``. Skips without a C compiler, fails in CI."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import metasr_test_model, pixel_grid, torch_threads

from liif_sr.inference.tiling import upscale_tiled
from liif_sr.models.heads import metasr_kernel
from liif_sr.models.heads.geometry import channels_last_rows, local_rows
from liif_sr.models.heads.metasr import corner_geometry

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def lib():
    found = metasr_kernel.library()
    if found is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("the metasr C kernel did not build in CI (gcc is expected there)")
        pytest.skip("no C compiler: the metasr kernel is unavailable")
    if found.metasr_simd() == 0:
        pytest.skip("no AVX2 / AVX-512 on this CPU: the head keeps its torch path")
    return found


BUILDS = {  # metasr_simd() level -> flags of a build for it (this CPU's x86 features minus the higher paths)
    2: ("-march=native",),
    1: ("-march=native", "-mno-avx512f"),
    0: ("-march=native", "-mno-avx512f", "-mno-avx2"),
}
LEVEL_IDS = ["avx512", "avx2", "portable"]


@pytest.fixture(scope="module")
def builds(lib, tmp_path_factory):
    """level -> the kernel built for that vector path, in GNU C mode (where GCC contracts ``a * b + c`` into
    FMAs unless the source forbids it: the geometry would no longer be bit for bit); skips what this CPU lacks."""
    import ctypes
    import shutil

    cc = os.environ.get("CC") or "cc"
    if shutil.which(cc) is None or platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("x86 builds with the system compiler")
    have = Path("/proc/cpuinfo").read_text()
    src = REPO / "src" / "liif_sr" / "kernels" / "csrc"
    done: dict[tuple[int, tuple[str, ...]], ctypes.CDLL] = {}

    def get(level: int, defines: tuple[str, ...] = ()) -> ctypes.CDLL:
        if level == 2 and "avx512f" not in have or level == 1 and "avx2" not in have:
            pytest.skip(f"no {LEVEL_IDS[2 - level]} on this CPU")
        if (level, defines) not in done:
            so = tmp_path_factory.mktemp("metasr") / f"metasr_{level}.so"
            flags = ["-O3", "-shared", "-fPIC", "-std=gnu11", "-I", str(src), *BUILDS[level], *defines]
            subprocess.run([cc, *flags, str(src / "metasr.c"), "-o", str(so), "-lm"], check=True, timeout=120)
            done[level, defines] = ctypes.CDLL(str(so))
            assert done[level, defines].metasr_simd() == level
        return done[level, defines]

    return get


def _use_build(builds, level: int, monkeypatch, defines: tuple[str, ...] = ()) -> None:
    """The head decodes through the ``level`` build (a portable build too, which it would otherwise skip)."""
    from liif_sr import kernels

    other = builds(level, defines)
    monkeypatch.setattr(kernels, "load", lambda name: other)
    assert metasr_kernel.library() is other and (metasr_kernel.fast_library() is other) == (level > 0)
    if level == 0:
        monkeypatch.setattr(metasr_kernel, "fast_library", lambda: other)


def _state(model, lr, kernel: bool = True):
    """The prepared state; ``kernel=False``: as without the kernel (its table rows are not padded for it)."""
    real = metasr_kernel.library
    if not kernel:
        metasr_kernel.library = lambda: None
    try:
        with torch.inference_mode():
            return model.head.prepare(model.encode(lr), (lr - 0.5) / 0.5)
    finally:
        metasr_kernel.library = real


def _decode(model, state, coord, cell, chunk: int | None = None, kernel: bool = True) -> torch.Tensor:
    """The head's decode in ``chunk``-query pieces; ``kernel=False``: the torch path (kernel switched off)."""
    chunk = chunk or coord.shape[1]
    real = metasr_kernel.library
    if not kernel:
        metasr_kernel.library = lambda: None
    try:
        with torch.inference_mode():
            parts = [
                model.head.decode(state, coord[:, i : i + chunk], cell[:, i : i + chunk])
                for i in range(0, coord.shape[1], chunk)
            ]
    finally:
        metasr_kernel.library = real
    return torch.cat(parts, dim=1)


def _spy(monkeypatch) -> list[bool]:
    taken: list[bool] = []
    real = metasr_kernel.kernel_decode

    def spy(*args):
        out = real(*args)
        taken.append(out is not None)
        return out

    monkeypatch.setattr("liif_sr.models.heads.metasr.kernel_decode", spy)
    return taken


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.mark.parametrize(
    "b,lr_size,size,hidden",
    [
        (1, (9, 11), (27, 33), [32]),  # x3, odd sizes
        (2, (9, 11), (23, 28), [32]),  # x2.55 x2.55, batch 2
        (2, (7, 12), (19, 61), [48]),  # anisotropic non-integer: x2.71 x5.08
        (1, (10, 13), (10, 13), [32]),  # x1
        (2, (7, 5), (31, 17), [20]),  # H not a multiple of 16: the portable loops
    ],
    ids=["x3", "x2.55-batch2", "anisotropic-batch2", "x1", "portable-h20"],
)
def test_kernel_equals_torch_path_and_reference(lib, b, lr_size, size, hidden, monkeypatch):
    model = metasr_test_model(hidden)
    lr = torch.rand(b, 3, *lr_size, generator=torch.Generator().manual_seed(1))
    coord, cell = pixel_grid(b, size)
    state = _state(model, lr)
    taken = _spy(monkeypatch)
    got = _decode(model, state, coord, cell)
    assert taken == [True]
    want = _decode(model, state, coord, cell, kernel=False)
    ref = _decode(
        metasr_test_model(hidden, fast=False), _state(metasr_test_model(hidden, fast=False), lr), coord, cell
    )
    assert got.shape == want.shape == (b, size[0] * size[1], 3) and got.dtype == torch.float32
    assert _rel(got, want) <= 1e-5
    assert _rel(got, ref) <= 1e-5
    for chunk, threads in [(1, 1), (7, 2), (64, 1), (301, 2), (5000, 2)]:  # any chunking, the pool: bitwise
        with torch_threads(threads):
            assert torch.equal(_decode(model, state, coord, cell, chunk), got)


@pytest.mark.parametrize("level", [2, 1], ids=LEVEL_IDS[:2])
def test_outputs_do_not_depend_on_query_order(builds, level, monkeypatch):
    """A raster grid's steps hold queries of one output row (the AVX2 path caches that row's first-layer terms);
    shuffled, each step mixes rows and latents. Every query must get the same bits either way."""
    _use_build(builds, level, monkeypatch)
    model = metasr_test_model()
    lr = torch.rand(1, 3, 8, 9, generator=torch.Generator().manual_seed(3))
    coord, cell = pixel_grid(1, (16, 36))  # x2 and x4: rows of 36 queries, 9 full steps each
    state = _state(model, lr)
    perm = torch.randperm(coord.shape[1], generator=torch.Generator().manual_seed(4))
    raster = _decode(model, state, coord, cell)
    shuffled = _decode(model, state, coord[:, perm], cell[:, perm])
    assert torch.equal(shuffled, raster[:, perm])
    assert _rel(raster, _decode(model, state, coord, cell, kernel=False)) <= 1e-5


ORDERS = {  # build defines -> how the kernel orders a block's queries
    "default": (),  # latent order where the given order's runs of one latent are short (x2-x3 raster grids)
    "always-latent-order": ("-DSORT_BLOCK=64", "-DSORT_RUN10=100000"),  # every unsorted 64-query block
    "given-order": ("-DSORT_BLOCK=0",),  # never reordered
}


@pytest.mark.parametrize("level", [2, 1, 0], ids=LEVEL_IDS)
@pytest.mark.parametrize(
    "size",
    [(16, 18), (20, 23), (64, 9), (9, 72)],
    ids=["x2", "x2.5", "x8-by-x1", "x1-by-x8"],
)
def test_latent_order_gives_the_same_bits(builds, level, size, monkeypatch):
    """Blocks of queries are decoded latent by latent when that reads each table row once (a raster grid at
    x2-x3); outputs go back to their own queries, and every query sums the same way in any order. x8 by x1: a
    latent's 8 queries come from 8 output rows, more than the cached rows' slots hold between latent rows;
    shuffled: runs of one query (batch 2: blocks never cross a batch item)."""
    model = metasr_test_model()
    lr = torch.rand(2, 3, 8, 9, generator=torch.Generator().manual_seed(5))
    coord, cell = pixel_grid(2, size)
    perm = torch.randperm(coord.shape[1], generator=torch.Generator().manual_seed(6))
    state = _state(model, lr)
    got = {}
    for name, defines in ORDERS.items():
        _use_build(builds, level, monkeypatch, defines)
        got[name] = _decode(model, state, coord, cell)
        got[name + " shuffled"] = _decode(model, state, coord[:, perm], cell[:, perm])[:, perm.argsort()]
    for name, out in got.items():
        assert torch.equal(out, got["given-order"]), name
    assert _rel(got["default"], _decode(model, state, coord, cell, kernel=False)) <= 1e-5


def test_kernel_table_rows_start_on_cache_lines(lib):
    """With the kernel the table's rows are padded to 16 fp32 (64 bytes) and start on cache lines (rows split
    across lines decoded ~16-20 % slower); the torch path's table keeps out·H + out channels."""
    model = metasr_test_model()  # H = 32: 3·32 + 3 = 99 channels
    lr = torch.rand(2, 3, 5, 6, generator=torch.Generator().manual_seed(6))
    table = channels_last_rows(_state(model, lr).proj)
    assert table.shape == (2 * 5 * 6, 112) and table.stride(0) == 112 and table.data_ptr() % 64 == 0
    assert not table[:, 99:].any()
    assert channels_last_rows(_state(model, lr, kernel=False).proj).shape == (2 * 5 * 6, 99)
    with torch.no_grad():
        assert model.head.state_bytes_per_latent() == 112 * 4


def test_large_chunk_on_two_threads(lib, monkeypatch):
    monkeypatch.setattr(metasr_kernel, "MIN_PER_THREAD", 100)  # the split over pool threads at a small size
    model = metasr_test_model()
    lr = torch.rand(2, 3, 8, 9, generator=torch.Generator().manual_seed(2))
    coord, cell = pixel_grid(2, (37, 29))
    state = _state(model, lr)
    one = _decode(model, state, coord, cell)
    with torch_threads(2):
        two = _decode(model, state, coord, cell)
        assert torch.get_num_threads() == 2
    assert torch.equal(one, two)
    assert _rel(one, _decode(model, state, coord, cell, kernel=False)) <= 1e-5
    with torch.inference_mode():  # no queries
        assert model.head.decode(state, coord[:, :0], cell[:, :0]).shape == (2, 0, 3)


@pytest.mark.parametrize("level", [2, 1, 0], ids=LEVEL_IDS)
@pytest.mark.parametrize("seed", [0, 1])
def test_geometry_is_bitwise_the_torch_geometry(builds, level, seed, monkeypatch):
    """Random coordinates and cells (also on the borders and past them) and windows: the same latent rows and
    MLP inputs, bit for bit, as ``corner_geometry`` + ``local_rows``, in every build."""
    _use_build(builds, level, monkeypatch)
    gen = torch.Generator().manual_seed(seed)
    model = metasr_test_model()
    for b, full, q in [(1, (13, 7), 3001), (2, (100, 100), 2000), (2, (5, 37), 999)]:
        coord = torch.rand(b, q, 2, generator=gen) * 2.2 - 1.1
        coord[:, :8] = torch.tensor([[-1.0, -1.0], [1.0, 1.0], [-1.0, 1.0], [0.0, 0.0]]).repeat(2, 1)
        cell = torch.rand(b, q, 2, generator=gen) * 0.3 + 1e-3
        # corners just around the latent edges (the +1e-6 shift and the round-half-to-even decide the latent)
        edges = torch.linspace(-1, 1, 2 * full[0] + 1)
        near = (edges.view(-1, 1) + torch.tensor([-3e-6, -1.5e-6, -1e-6, -5e-7, 0.0, 5e-7, 1e-6])).flatten()
        n = min(near.numel(), q - 8)
        coord[:, 8 : 8 + n, 0] = near[:n] + cell[:, 8 : 8 + n, 0] / 2
        coord[:, 8 : 8 + n, 1] = (
            near[torch.randperm(near.numel(), generator=gen)[:n]] + cell[:, 8 : 8 + n, 1] / 2
        )
        state = model.head.prepare(torch.randn(b, 8, *full))
        rows, inp = metasr_kernel.kernel_geometry(state, coord, cell)
        idx, want_inp = corner_geometry(coord, cell, *full)
        assert torch.equal(rows, local_rows(idx, state).view(-1))
        assert torch.equal(inp, want_inp.view(-1, 3))


@pytest.mark.parametrize("level", [2, 1, 0], ids=LEVEL_IDS)
def test_window_state_and_tiles(builds, level, monkeypatch):
    _use_build(builds, level, monkeypatch)
    model = metasr_test_model()
    lr = torch.rand(1, 3, 13, 17, generator=torch.Generator().manual_seed(4))
    feat = model.encode(lr)
    coord, cell = pixel_grid(1, (52, 51))
    with torch.inference_mode():
        whole = model.head.prepare(feat)
        window = model.head.prepare(feat[..., 2:11, 3:15], offset=(2, 3), full_size=(13, 17))
        inside = (coord[0, :, 0].abs() < 0.2) & (coord[0, :, 1].abs() < 0.2)
        c, s = coord[:, inside], cell[:, inside]
        assert torch.equal(model.head.decode(window, c, s), model.head.decode(whole, c, s))
        with pytest.raises(RuntimeError, match="outside the prepared window"):
            model.head.decode(window, coord, cell)
        with torch_threads(1):
            want = model.upscale(lr, (52, 51))
            got = upscale_tiled(model, lr, (52, 51), tile=5, chunk=301)
    assert (got - want).abs().max().item() <= 1e-5


def test_kernel_steps_aside(lib, monkeypatch):
    """Autograd, bf16 (autocast or a bf16 model) and a deeper weight MLP run the torch path."""
    lr = torch.rand(1, 3, 6, 7, generator=torch.Generator().manual_seed(5))
    coord, cell = pixel_grid(1, (13, 15))
    taken = _spy(monkeypatch)
    model = metasr_test_model()
    state = model.head.prepare(model.encode(lr))
    assert model.head.decode(state, coord, cell).requires_grad  # training: the chunk form, before the kernel
    with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16):
        model.head.decode(_state(model, lr), coord, cell)
    half = metasr_test_model().to(torch.bfloat16)
    with torch.inference_mode():
        half.head.decode(_state(half, lr.bfloat16()), coord, cell)
    deep = metasr_test_model([16, 16])
    _decode(deep, _state(deep, lr), coord, cell)
    assert taken == [False, False, False]
    state = _state(model, lr)
    table = channels_last_rows(state.proj)
    hidden = model.head.mlp.layers[:-1]
    with torch.inference_mode():  # the same call with fp32 inference: the kernel runs
        assert metasr_kernel.kernel_decode(state, table, coord, cell, hidden, 3) is not None
    model.requires_grad_(False)  # grad mode on, nothing requires grad: the kernel runs, unless coord does
    assert metasr_kernel.kernel_decode(state, table, coord, cell, hidden, 3) is not None
    assert metasr_kernel.kernel_decode(state, table, coord.requires_grad_(), cell, hidden, 3) is None


def test_disabled_by_environment_runs_the_torch_path():
    """``LIIF_SR_KERNELS=0``: no library, and the decode is the torch (grouped) path's, bit for bit."""
    code = (
        "import torch; from liif_sr.models.heads import metasr_kernel, metasr\n"
        "assert metasr_kernel.library() is None\n"
        "from helpers import metasr_test_model, pixel_grid\nfrom test_metasr_kernel import _state, _decode\n"
        "m = metasr_test_model(); lr = torch.rand(2, 3, 9, 11, generator=torch.Generator().manual_seed(1))\n"
        "coord, cell = pixel_grid(2, (23, 28)); st = _state(m, lr)\n"
        "calls = []; real = metasr.decode_grouped\n"
        "metasr.decode_grouped = lambda *a: calls.append(1) or real(*a)\n"
        "torch.save(_decode(m, st, coord, cell), __import__('sys').argv[1]); assert calls == [1]\n"
    )
    env = {
        **os.environ,
        "LIIF_SR_KERNELS": "0",
        "PYTHONPATH": os.pathsep.join(
            [str(REPO / "src"), str(REPO / "tests"), str(REPO / "tests" / "models")]
        ),
    }
    out = Path(os.environ.get("TMPDIR", "/tmp")) / f"metasr_kernel_off_{os.getpid()}.pt"
    try:
        subprocess.run([sys.executable, "-c", code, str(out)], env=env, check=True, timeout=120)
        off = torch.load(out)
    finally:
        out.unlink(missing_ok=True)
    model = metasr_test_model()
    lr = torch.rand(2, 3, 9, 11, generator=torch.Generator().manual_seed(1))
    coord, cell = pixel_grid(2, (23, 28))
    assert torch.equal(off, _decode(model, _state(model, lr, kernel=False), coord, cell, kernel=False))


@pytest.mark.parametrize("level", [1, 0], ids=LEVEL_IDS[1:])
def test_other_builds_equal_the_torch_path(builds, level, monkeypatch):
    """The kernel built for the AVX2 + FMA path and for the portable C loops (what CPUs without AVX-512 / AVX2
    compile). The head decodes through an AVX2 build; a portable build is slower than the torch path, so the
    head keeps that path (:func:`_use_build` passes it to the head anyway, to check its loops)."""
    _use_build(builds, level, monkeypatch)
    model = metasr_test_model()
    lr = torch.rand(2, 3, 7, 12, generator=torch.Generator().manual_seed(1))
    coord, cell = pixel_grid(2, (19, 61))
    state = _state(model, lr)
    taken = _spy(monkeypatch)
    got = _decode(model, state, coord, cell, chunk=777)
    assert taken == [True, True]  # 1159 queries in chunks of 777
    assert _rel(got, _decode(model, state, coord, cell, kernel=False)) <= 1e-5
    for chunk in (1, 5, 301):  # partial steps and blocks: the same bits
        assert torch.equal(_decode(model, state, coord, cell, chunk=chunk), got)
    hidden20 = metasr_test_model([20])  # H not a multiple of 8: the portable loops in any build
    state20 = _state(hidden20, lr)
    assert (
        _rel(_decode(hidden20, state20, coord, cell), _decode(hidden20, state20, coord, cell, kernel=False))
        <= 1e-5
    )


def test_a_portable_build_keeps_the_torch_path(lib, monkeypatch):
    """No vector path (``metasr_simd() == 0``): the head decodes on its torch path and plans its memory so."""
    model = metasr_test_model()
    lr = torch.rand(1, 3, 6, 7, generator=torch.Generator().manual_seed(1))
    coord, cell = pixel_grid(1, (12, 14))
    state = _state(model, lr)
    assert model.head.decode_bytes_per_query() == metasr_kernel.query_bytes(3)
    portable = type("Portable", (), {"metasr_simd": staticmethod(lambda: 0)})()
    monkeypatch.setattr(metasr_kernel, "library", lambda: portable)
    taken = _spy(monkeypatch)
    got = _decode(model, state, coord, cell)
    assert taken == [False] and model.head.decode_bytes_per_query() > metasr_kernel.query_bytes(3)
    assert torch.equal(got, _decode(model, state, coord, cell, kernel=False))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="transparent huge pages: Linux")
def test_large_tables_on_huge_pages(lib, monkeypatch):
    """A kernel table of >= 8 MiB starts on a 2 MiB boundary and is advised for transparent huge pages
    (``madvise(MADV_HUGEPAGE)`` on its whole 2 MiB pages, before it is written; accepted where the kernel has THP);
    same values as ordinary memory, and small tables are not advised."""
    advised: list[tuple[int, int, bool]] = []
    real = metasr_kernel._madvise_huge

    def spy(address: int, length: int) -> bool:
        advised.append((address, length, real(address, length)))
        return advised[-1][2]

    monkeypatch.setattr(metasr_kernel, "_madvise_huge", spy)
    model = metasr_test_model()
    head = model.head
    feat = torch.randn(1, 8, 150, 150, generator=torch.Generator().manual_seed(7))
    with torch.inference_mode():
        state = head.prepare(feat, torch.rand(1, 3, 150, 150))
        plain = head.latent_projection(feat, 16)
        small = head.prepare(feat[..., :20, :20], torch.rand(1, 3, 20, 20))
    table = state.proj
    nbytes = table.numel() * 4
    assert nbytes >= metasr_kernel.MIN_HUGE_BYTES
    assert table.data_ptr() % metasr_kernel.HUGE_PAGE == 0
    assert table.is_contiguous(memory_format=torch.channels_last) and torch.equal(table, plain)
    huge = nbytes // metasr_kernel.HUGE_PAGE * metasr_kernel.HUGE_PAGE
    assert [a[:2] for a in advised] == [(table.data_ptr(), huge)]  # the small table: not advised
    if Path("/sys/kernel/mm/transparent_hugepage/enabled").is_file():
        assert advised[0][2], "madvise(MADV_HUGEPAGE) refused on a kernel with transparent huge pages"
    assert small.proj.numel() * 4 < metasr_kernel.MIN_HUGE_BYTES
    coord, cell = pixel_grid(1, (300, 300))
    with torch.inference_mode():
        got = head.decode(state, coord[:, :5000], cell[:, :5000])
        rows = channels_last_rows(plain)
        want = metasr_kernel.kernel_decode(
            state, rows, coord[:, :5000], cell[:, :5000], head.mlp.layers[:-1], 3
        )
    assert want is not None and torch.equal(got, want)
