"""``scripts/bench_lmf.py``: the LM heads' decode vs their FLOP floor and base heads, in seconds (--tiny)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_lmf.py"


def _module(monkeypatch):  # noqa: ANN001, ANN202
    spec = importlib.util.spec_from_file_location("bench_lmf", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_lmf", module)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "TINY", {"100-800": ((6, 5), (13, 11)), "256-2048": ((8, 8), (20, 24))})
    return module


def test_tiny_run_prints_every_lm_head_and_case(monkeypatch, capsys):
    module = _module(monkeypatch)
    threads = torch.get_num_threads()
    assert module.main(["--tiny", "--max-queries", "100", "--repeats", "1"]) == 0
    assert torch.get_num_threads() == threads  # --threads 1 is the benchmark's, not its caller's
    out = capsys.readouterr().out
    assert "process CPU seconds" in out and "load average before" in out
    rows = [ln.split(" | ") for ln in out.splitlines() if ln.startswith("| 1") or ln.startswith("| 2")]
    assert [(r[0].strip("| "), r[1]) for r in rows] == [
        (case, head) for case in ("100-800", "256-2048") for head in ("lmliif", "lmlte", "lmciaosr")
    ]
    # the render MLPs' FLOPs per query (x4 members): 13,184 LM-LIIF, 16,768 LM-LTE, 19,072 LM-CiaoSR
    assert [r[8] for r in rows[:3]] == ["13,184", "16,768", "19,072"]
    assert rows[2][3] == "–" and rows[0][3] != "–"  # LM-CiaoSR has no base head here
    assert all(r[10].endswith("(8192)") and r[12].strip("*%").isdigit() for r in rows)
    assert all(r[14].endswith("%") for r in rows)  # the render-MLP ceiling
    paths = {r[15] for r in rows}
    assert len(paths) == 1 and paths <= {"kernel (AVX-512)", "kernel (AVX2)", "PyTorch"}
    if paths != {"PyTorch"}:  # the PyTorch path timed beside the kernel
        assert all(float(r[16]) >= 0 and r[17].endswith("%") and r[18].rstrip(" |") for r in rows), rows


def test_no_kernel_runs_the_pytorch_path_only(monkeypatch, capsys):
    module = _module(monkeypatch)
    args = [
        "--tiny",
        "--max-queries",
        "50",
        "--repeats",
        "1",
        "--no-kernel",
        "--cases",
        "100-800",
        "--no-base",
    ]
    assert module.main(args) == 0
    rows = [ln.split(" | ") for ln in capsys.readouterr().out.splitlines() if ln.startswith("| 1")]
    assert len(rows) == 3 and all(r[15] == "PyTorch" and r[16] == "–" for r in rows)
    assert "LIIF_SR_KERNELS" not in module.os.environ or module.os.environ["LIIF_SR_KERNELS"] != "0"


def test_unknown_head_is_refused(monkeypatch):
    module = _module(monkeypatch)
    with pytest.raises(SystemExit) as err:
        module.main(["--tiny", "--heads", "lmfoo"])
    assert err.value.code == 2


def test_kernel_flags_time_another_build(monkeypatch, capsys):
    from helpers import have_compiler

    from liif_sr.kernels import lmf

    if not have_compiler() or lmf.simd() < 2:
        pytest.skip("needs a C compiler and an AVX-512 CPU")
    module = _module(monkeypatch)
    monkeypatch.setattr(module.lmf_kernel, "_lib", module.lmf_kernel._lib)  # restored after the test
    args = ["--tiny", "--max-queries", "50", "--repeats", "1", "--cases", "100-800", "--no-base"]
    assert module.main([*args, "--heads", "lmliif", "--kernel-flags=-mno-avx512f"]) == 0
    rows = [ln.split(" | ") for ln in capsys.readouterr().out.splitlines() if ln.startswith("| 1")]
    assert [r[15] for r in rows] == ["kernel (AVX2)"]
