"""``scripts/bench/decode_floor.py``: the decode-only floor measurement runs for LTE and MetaSR and reports a
fraction consistent with its own numbers."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench" / "decode_floor.py"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("decode_floor", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("head", ["lte", "metasr"])
def test_fraction_is_flops_over_rate_and_time(script, head):
    rows = script.measure(head, latent=6, size=20, repeats=2, hidden=[16])
    assert len(rows) == 2
    for r in rows:
        assert r["cpu_s"] > 0 and r["gemm_gflops"] > 0 and r["gflop"] > 0
        assert r["fraction"] == pytest.approx(r["gflop"] / r["gemm_gflops"] / r["cpu_s"])


def test_main_prints_one_line_per_run(script, capsys):
    script.main(["--heads", "metasr", "--latent", "5", "--size", "15", "--repeats", "2"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and all("fraction of the floor (CPU time)" in line for line in lines)
