"""The heads' memory estimates describe the CPU inference paths that run (C kernels, cache-sized blocks).

``state_bytes_per_latent`` and ``decode_bytes_per_query`` feed the auto-tile planning
(:func:`liif_sr.inference.tile_policy.estimate_tile`, which counts the state twice for its working copy). Here
they are measured: the process's resident high-water mark (``/proc/self/clear_refs`` resets it; glibc's mmap
threshold is fixed so that freed tensors leave at once) over ``prepare`` + a first decode (state), and over the
decode of a 65536-query chunk (per query). Each estimate must cover the measurement and stay within 3x of it.

The measurements run in one fresh subprocess (this file as a script, one torch thread): in a process where
other tests ran, glibc's heap has grown (its dynamic mmap threshold rises after large frees; training's
``reuse_host_memory`` turns mmap off altogether), so the measured tensors come from heap holes that stay resident
after they are freed, and the "kept" state reads 20-100 % high whatever the heads do.
"""

from __future__ import annotations

import ctypes
import dataclasses
import gc
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

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
STATE_HEADS = ["lmliif", "lmlte", "lmciaosr"]
TESTS = Path(__file__).resolve().parents[1]  # for ``helpers`` in the subprocess
SKIP_RC = 77


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # VmHWM := VmRSS


def _status() -> tuple[int, int]:
    with open("/proc/self/status") as status:
        fields = dict(line.split(":", 1) for line in status)
    return int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024


def _measurer() -> Callable[[Callable[[], object]], tuple[int, int, object]]:
    """``measure(fn)`` → (peak, kept, fn()): resident bytes above the start at the peak and at the end."""
    libc = ctypes.CDLL("libc.so.6")
    libc.mallopt(-3, 64 * 1024)  # M_MMAP_THRESHOLD: fixed, so large tensors are unmapped when freed
    _reset_peak()

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


def _inputs(side: int, queries: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    feat, lr = torch.randn(1, 32, side, side), torch.rand(1, 3, side, side) * 2 - 1
    coord = torch.rand(1, queries, 2) * 2 - 1
    return feat, lr, coord, torch.full((1, queries, 2), 2 / (3.5 * side))


def _kernel_ready(name: str) -> bool:
    return metasr_kernel.fast_library() is not None if name == "metasr" else lmf_lib.fast()


def _measure_state(name: str, measure: Callable) -> dict[str, float]:
    torch.manual_seed(0)
    head, side = HEADS[name]().eval(), 48 if name == "lmciaosr" else 96
    feat, lr, coord, cell = _inputs(side, 64)
    with torch.no_grad():
        head.decode(head.prepare(feat, lr), coord, cell)  # warm: the kernel's build, first-call allocations

        def first_decode():  # the state as the render loop holds it: prepared, rows and tables cached
            lr_copy = lr.clone()
            state = head.prepare(feat, lr_copy)
            head.decode(state, coord, cell)
            return state, lr_copy

        peak, kept, (state, _) = measure(first_decode)
    return {
        # exact: every tensor the state holds (the kernel's packed table and LR copy; 1 KiB: per-image scalars)
        "held": (_tensor_bytes(state) - 1024) / side**2,
        "table": "kernel.table" in state.cache,
        "kept": kept / side**2,
        "peak": peak / side**2,
        # the planner counts the state twice (its working copy): the state kept, and half the transient peak
        "measured": max(kept - SLACK, (peak - SLACK) / 2) / side**2,
    }


def _measure_decode(name: str, measure: Callable) -> dict[str, float]:
    torch.manual_seed(0)
    head = HEADS[name]().eval()
    feat, lr, coord, cell = _inputs(24, QUERIES)
    with torch.no_grad():
        state = head.prepare(feat, lr)
        head.decode(state, coord[:, :64], cell[:, :64])  # warm: kernel, cached rows/tables
        peak, _, out = measure(lambda: head.decode(state, coord, cell))
    assert out.shape == (1, QUERIES, 3)
    return {"measured": max(peak - SLACK, 1) / QUERIES}


def _measure_all() -> dict[str, dict[str, float] | None]:
    """Every measurement, in this (fresh) process: one torch thread, the kernels loaded and warmed first."""
    torch.set_num_threads(1)
    measure = _measurer()
    ready = {name: name == "lte" or _kernel_ready(name) for name in HEADS}
    results: dict[str, dict[str, float] | None] = {}
    for name in STATE_HEADS:
        results[f"state/{name}"] = _measure_state(name, measure) if ready[name] else None
    for name in HEADS:
        results[f"decode/{name}"] = _measure_decode(name, measure) if ready[name] else None
    return results


@pytest.fixture(scope="module")
def measured() -> dict[str, dict[str, float] | None]:
    """The measurements, taken in a fresh subprocess: what earlier tests left in this process (its heap,
    loaded libraries, thread pools) must not enter a resident-memory measurement."""
    if not (Path("/proc/self/clear_refs").exists() and Path("/proc/self/status").exists()):
        pytest.skip("resident peak not measurable here: no /proc/self/clear_refs")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), *filter(None, [env.get("PYTHONPATH")])])
    done = subprocess.run(
        [sys.executable, __file__], env=env, capture_output=True, text=True, timeout=600, check=False
    )
    if done.returncode == SKIP_RC:
        pytest.skip(f"resident peak not measurable here: {done.stdout.strip()}")
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.splitlines()[-1])


def _kernel_check(name: str) -> None:
    require_compiler()
    if name == "metasr":
        if metasr_kernel.library() is None:
            pytest.fail("the MetaSR kernel did not build with a compiler present")
        if metasr_kernel.fast_library() is None:
            pytest.skip("the MetaSR kernel has no SIMD path on this CPU (the head keeps PyTorch)")
    elif not lmf_lib.fast():
        pytest.skip("the LM kernel has no SIMD path on this CPU (the heads keep PyTorch)")


def _kernel_head(name: str) -> torch.nn.Module:
    _kernel_check(name)
    torch.manual_seed(0)
    return HEADS[name]().eval()


@pytest.mark.parametrize("name", STATE_HEADS)
def test_state_estimate_covers_the_kernel_path(name, measured):
    _kernel_check(name)
    head, got = HEADS[name]().eval(), measured[f"state/{name}"]
    assert got is not None, f"{name}: the kernel ran here but not in the measuring subprocess"
    assert got["table"]
    est = head.state_bytes_per_latent()
    assert got["held"] <= est, (name, got["held"])
    print(
        f"{name}: state {got['measured']:.0f} B/latent measured (kept {got['kept']:.0f}, peak {got['peak']:.0f}), {est} estimated"
    )
    assert got["measured"] <= est <= 3 * got["measured"], (name, est, got)


@pytest.mark.parametrize("name", ["lmliif", "lmlte", "lmciaosr", "metasr", "lte"])
def test_decode_estimate_covers_the_cpu_path(name, measured):
    if name != "lte":
        _kernel_check(name)
    head, got = HEADS[name]().eval(), measured[f"decode/{name}"]
    assert got is not None, f"{name}: the kernel ran here but not in the measuring subprocess"
    est = head.decode_bytes_per_query()
    print(f"{name}: decode {got['measured']:.1f} B/query measured, {est} estimated")
    assert got["measured"] <= est <= 3 * max(got["measured"], 12), (name, est, got)  # 12: the fp32 output


@pytest.mark.parametrize("name", ["lmliif", "lmlte", "lmciaosr", "metasr"])
def test_estimates_follow_the_path_that_runs(name):
    """Kernels off, training or the GPU form: the PyTorch whole-chunk estimate (larger); fp32 CPU inference
    with the kernel: the kernel's; bf16 planning never the kernel's."""
    head = _kernel_head(name)
    kernel_q, kernel_s = head.decode_bytes_per_query(), head.state_bytes_per_latent()
    with disabled():
        torch_q, torch_s = head.decode_bytes_per_query(), head.state_bytes_per_latent()
    assert kernel_q == (3 + 4) * 4 < torch_q
    assert torch_s <= kernel_s <= torch_s + 3 * 4 + 60  # the kernel's LR copy or 64-byte rows at most
    assert head.train().decode_bytes_per_query() == torch_q
    assert head.eval().decode_bytes_per_query(2) > kernel_q


if __name__ == "__main__":  # the measuring subprocess (the ``measured`` fixture): one JSON line
    try:
        _reset_peak()
        ctypes.CDLL("libc.so.6")
    except OSError as err:
        print(err)
        sys.exit(SKIP_RC)
    print(json.dumps(_measure_all()))
