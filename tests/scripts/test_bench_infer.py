"""``scripts/bench_infer.py``: every model row (LIIF, LTE, MetaSR heads; EDSR-baseline, RDN, SwinIR encoders)
runs its reference and fast path, names its device, and the fast output equals the reference."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_infer.py"
SMALL = {  # the script's models at smoke-test sizes (the script uses the paper sizes)
    "edsr": {"name": "edsr_baseline", "args": {"n_resblocks": 1, "n_feats": 8}},
    "rdn": {"name": "rdn", "args": {"G0": 8, "D": 1, "C": 1, "G": 4}},
    "lte": {"name": "edsr_baseline", "args": {"n_resblocks": 1, "n_feats": 8}},
    "metasr": {"name": "edsr_baseline", "args": {"n_resblocks": 1, "n_feats": 8}},
    "swinir": {"name": "swinir", "args": {"embed_dim": 12, "depths": [1], "num_heads": [2], "out_dim": 8}},
}
HEADS = {"edsr": "liif", "rdn": "liif", "lte": "lte", "metasr": "metasr", "swinir": "liif"}


@pytest.fixture
def bench(monkeypatch):
    spec = importlib.util.spec_from_file_location("bench_infer", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_infer", module)
    spec.loader.exec_module(module)
    for key, (label, config) in list(module.MODELS.items()):
        assert config["head"]["name"] == HEADS[key]
        small = {"encoder": SMALL[key], "head": {"name": HEADS[key], "hidden_list": [8]}}
        if HEADS[key] == "lte":
            small["head"]["hidden_dim"] = 8
        monkeypatch.setitem(module.MODELS, key, (label, small))
    return module


def test_every_model_row_plain_vs_fast(bench, capsys, tmp_path):
    assert set(bench.MODELS) == {"edsr", "rdn", "lte", "metasr", "swinir"}
    out = tmp_path / "BENCH.md"
    models = "edsr,rdn,lte,metasr,swinir"
    assert (
        bench.main(
            ["--device", "cpu", "--cases", "tiny", "--models", models, "--repeats", "1", "--out", str(out)]
        )
        == 0
    )
    rows = [line.split(" | ") for line in capsys.readouterr().out.splitlines() if line.startswith("| cpu |")]
    labels = ["EDSR-baseline-LIIF", "RDN-LIIF", "EDSR-baseline-LTE", "EDSR-baseline-MetaSR", "SwinIR-LIIF"]
    paths = (
        "plain",
        "fast fp32",
        "fast auto=fp32",
    )  # the default, as on a CPU without native bf16 (conftest)
    assert [(r[2], r[3]) for r in rows] == [(m, p) for m in labels for p in paths]
    for r in rows:
        if r[3] == "plain":
            assert r[-1].strip(" |") == "ref"
        else:
            assert float(r[-1].strip(" |")) < 1e-5, r  # fast == reference for every head
    assert "| device | case | model |" in out.read_text()
