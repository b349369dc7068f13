"""``scripts/bench_lmf.py``: LM-LIIF vs LIIF and LM-LTE vs LTE rows with the FLOP floor, in seconds (--tiny)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_lmf.py"


def test_tiny_run_prints_both_pairs_and_cases(monkeypatch, capsys):
    spec = importlib.util.spec_from_file_location("bench_lmf", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_lmf", module)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "TINY", {"100-800": ((6, 5), (13, 11)), "256-2048": ((8, 8), (20, 24))})
    assert module.main(["--tiny", "--max-queries", "100"]) == 0
    rows = [
        ln.split(" | ")
        for ln in capsys.readouterr().out.splitlines()
        if ln.startswith("| 1") or ln.startswith("| 2")
    ]
    assert [(r[0].strip("| "), r[1]) for r in rows] == [
        ("100-800", "lmliif"), ("100-800", "lmlte"), ("256-2048", "lmliif"), ("256-2048", "lmlte")
    ]  # fmt: skip
    assert all(r[8] in ("13,184", "16,768") for r in rows)  # the render MLPs' FLOPs per query (x4 members)
