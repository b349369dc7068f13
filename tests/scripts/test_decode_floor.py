"""``scripts/bench/decode_floor.py``: the decode-only floor measurement runs for LTE and MetaSR and reports a
fraction consistent with its own numbers."""

from __future__ import annotations

import pytest
from helpers import load_script


@pytest.fixture(scope="module")
def script():
    return load_script("bench/decode_floor.py")


@pytest.mark.parametrize("head", ["lte", "metasr"])
def test_fraction_is_flops_over_rate_and_time(script, head):
    rows = script.measure(head, latent=6, size=20, repeats=2, hidden=[16], stream_bytes=1 << 20)
    assert len(rows) == 2
    for r in rows:
        assert r["cpu_s"] > 0 and r["gemm_gflops"] > 0 and r["gflop"] > 0
        assert r["fraction"] == pytest.approx(r["gflop"] / r["gemm_gflops"] / r["cpu_s"])


def test_main_prints_one_line_per_run(script, capsys):
    script.main(["--heads", "metasr", "--latent", "5", "--size", "15", "--repeats", "2"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and all("fraction of the floor (CPU time)" in line for line in lines)


def test_kernels_both_times_each_repeat_with_and_without(script, capsys, monkeypatch):
    from liif_sr import kernels
    from liif_sr.models.heads import metasr, metasr_kernel

    real, fused = kernels.load, []

    def spy(*args):
        out = metasr_kernel.kernel_decode(*args)
        fused.append(out is not None)
        return out

    monkeypatch.setattr(metasr, "kernel_decode", spy)
    script.main(["--heads", "metasr", "--latent", "5", "--size", "15", "--repeats", "1", "--kernels", "both"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and "(C kernels on)" in lines[0] and "(C kernels off)" in lines[1]
    assert kernels.load is real  # restored
    if metasr_kernel.fast_library() is not None:  # (a machine without a compiler runs the torch path twice)
        assert fused == [True, True, False, False]  # warm-up + timed decode: with, then without the kernel


def test_scales_give_one_size_per_scale(script):
    assert script.scale_sizes(100, 800, None) == [800]
    assert script.scale_sizes(128, 800, "2,2.5,3,4,8") == [256, 320, 384, 512, 1024]
    for bad in ("0.5", "2,x", "100"):
        with pytest.raises(SystemExit, match="--scales"):
            script.scale_sizes(128, 800, bad)


def test_main_scales_prints_one_line_per_scale_with_both_floors(script, capsys):
    script.main(["--heads", "metasr", "--latent", "5", "--scales", "2,2.5", "--repeats", "1"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and "5²→10² (×2)" in lines[0] and "5²→12² (×2.4)" in lines[1]
    assert all("fraction of the memory floor" in line and "of the larger floor" in line for line in lines)


@pytest.mark.parametrize("head", ["liif", "lte", "metasr", "lmliif", "lmlte", "lmciaosr"])
def test_memory_floor_is_bytes_over_stream_rate(script, head):
    hidden = [16] if head != "lmliif" else None
    r = script.measure(head, latent=6, size=15, repeats=1, hidden=hidden, stream_bytes=1 << 20)[0]
    assert r["mbytes"] > 0 and r["stream_gbs"] > 0
    assert r["mem_fraction"] == pytest.approx(r["mbytes"] / 1e3 / r["stream_gbs"] / r["cpu_s"])
    assert r["roof_fraction"] == pytest.approx(max(r["fraction"], r["mem_fraction"]))
