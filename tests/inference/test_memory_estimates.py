"""The heads' memory estimates describe the CPU inference paths that run (C kernels, cache-sized blocks).

``state_bytes_per_latent`` and ``decode_bytes_per_query`` feed the auto-tile planning
(:func:`liif_sr.inference.tile_policy.estimate_tile`, which counts the state twice for its working copy). Here
they are measured: the process's resident high-water mark (``/proc/self/clear_refs`` resets it; glibc's mmap
threshold is fixed so that freed tensors leave at once) over ``prepare`` + a first decode (state), and over the
decode of a 65536-query chunk (per query). Each estimate must cover the measurement and stay within 3x of it.
"""

from __future__ import annotations

import ctypes
import dataclasses
import gc
from collections.abc import Callable

import pytest
import torch
from helpers import require_compiler

from liif_sr.kernels import disabled
from liif_sr.kernels import lmf as lmf_lib
from liif_sr.models import LMCiaoSRHead, LMLIIFHead, LMLTEHead, LTEHead, MetaSRHead
from liif_sr.models.heads import metasr_kernel

SLACK = 256 * 1024  # constant allocator overhead (heap growth, small tensors): not per latent / per query
QUERIES = 1 << 16
HEADS = {
    "lmliif": lambda: LMLIIFHead(32),
    "lmlte": lambda: LMLTEHead(32),
    "lmciaosr": lambda: LMCiaoSRHead(32),
    "metasr": lambda: MetaSRHead(32),
    "lte": lambda: LTEHead(32, hidden_dim=64, hidden_list=[64, 64]),
}


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # VmHWM := VmRSS


def _status() -> tuple[int, int]:
    with open("/proc/self/status") as status:
        fields = dict(line.split(":", 1) for line in status)
    return int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024


@pytest.fixture(scope="module")
def measure() -> Callable[[Callable[[], object]], tuple[int, int, object]]:
    """``measure(fn)`` → (peak, kept, fn()): resident bytes above the start at the peak and at the end."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 64 * 1024)  # M_MMAP_THRESHOLD: fixed, so large tensors are unmapped when freed
        _reset_peak()
    except OSError as err:
        pytest.skip(f"resident peak not measurable here: {err}")

    def run(fn: Callable[[], object]) -> tuple[int, int, object]:
        gc.collect()
        libc.malloc_trim(0)
        _reset_peak()
        base = _status()[0]
        out = fn()
        gc.collect()
        rss, hwm = _status()
        return hwm - base, rss - base, out

    return run


def _tensor_bytes(state: object) -> int:
    """Bytes of the distinct storages a prepared state holds (its fields and its cache)."""
    values = [getattr(state, f.name) for f in dataclasses.fields(state)]
    values += list(getattr(state, "cache", {}).values())
    storages = {
        v.untyped_storage().data_ptr(): v.untyped_storage().nbytes() for v in values if torch.is_tensor(v)
    }
    return sum(storages.values())


def _kernel_head(name: str) -> torch.nn.Module:
    require_compiler()
    if name == "metasr":
        if metasr_kernel.library() is None:
            pytest.fail("the MetaSR kernel did not build with a compiler present")
    elif not lmf_lib.fast():
        pytest.skip("the LM kernel has no SIMD path on this CPU (the heads keep PyTorch)")
    torch.manual_seed(0)
    return HEADS[name]().eval()


def _inputs(side: int, queries: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    feat, lr = torch.randn(1, 32, side, side), torch.rand(1, 3, side, side) * 2 - 1
    coord = torch.rand(1, queries, 2) * 2 - 1
    return feat, lr, coord, torch.full((1, queries, 2), 2 / (3.5 * side))


@pytest.mark.parametrize("name", ["lmliif", "lmlte", "lmciaosr"])
def test_state_estimate_covers_the_kernel_path(name, measure):
    head, side = _kernel_head(name), 48 if name == "lmciaosr" else 96
    feat, lr, coord, cell = _inputs(side, 64)
    with torch.no_grad():
        head.decode(head.prepare(feat, lr), coord, cell)  # warm: the kernel's build, first-call allocations

        def first_decode():  # the state as the render loop holds it: prepared, rows and tables cached
            lr_copy = lr.clone()
            state = head.prepare(feat, lr_copy)
            head.decode(state, coord, cell)
            return state, lr_copy

        peak, kept, (state, _) = measure(first_decode)
    # exact: every tensor the state holds (the kernel's packed table and LR copy; 1 KiB: per-image scalars)
    held = (_tensor_bytes(state) - 1024) / side**2
    assert "kernel.table" in state.cache
    assert held <= head.state_bytes_per_latent(), (name, held)
    # the planner counts the state twice (its working copy): the state kept, and half the transient peak
    measured = max(kept - SLACK, (peak - SLACK) / 2) / side**2
    est = head.state_bytes_per_latent()
    print(
        f"{name}: state {measured:.0f} B/latent measured (kept {kept / side**2:.0f}, peak {peak / side**2:.0f}), {est} estimated"
    )
    assert measured <= est <= 3 * measured, (name, est, measured, kept / side**2, peak / side**2)


@pytest.mark.parametrize("name", ["lmliif", "lmlte", "lmciaosr", "metasr", "lte"])
def test_decode_estimate_covers_the_cpu_path(name, measure):
    head = _kernel_head(name) if name != "lte" else HEADS[name]().eval()
    feat, lr, coord, cell = _inputs(24, QUERIES)
    with torch.no_grad():
        state = head.prepare(feat, lr)
        head.decode(state, coord[:, :64], cell[:, :64])  # warm: kernel, cached rows/tables

        peak, _, out = measure(lambda: head.decode(state, coord, cell))
    assert out.shape == (1, QUERIES, 3)
    measured = max(peak - SLACK, 1) / QUERIES
    est = head.decode_bytes_per_query()
    print(f"{name}: decode {measured:.1f} B/query measured, {est} estimated")
    assert measured <= est <= 3 * max(measured, 12), (name, est, measured)  # 12: the fp32 output


@pytest.mark.parametrize("name", ["lmliif", "lmlte", "lmciaosr", "metasr"])
def test_estimates_follow_the_path_that_runs(name):
    """Kernels off, training or the GPU form: the PyTorch whole-chunk estimate (larger); fp32 CPU inference
    with the kernel: the kernel's; bf16 planning never the kernel's."""
    head = _kernel_head(name)
    kernel_q, kernel_s = head.decode_bytes_per_query(), head.state_bytes_per_latent()
    with disabled():
        torch_q, torch_s = head.decode_bytes_per_query(), head.state_bytes_per_latent()
    assert kernel_q == (3 + 4) * 4 < torch_q
    assert torch_s <= kernel_s <= torch_s + 3 * 4  # the kernel's LR copy at most
    assert head.train().decode_bytes_per_query() == torch_q
    assert head.eval().decode_bytes_per_query(2) > kernel_q
