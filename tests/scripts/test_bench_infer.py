"""``scripts/bench_infer.py``: every model row (LIIF, LTE, MetaSR, LM-LIIF, LM-LTE, LM-CiaoSR heads;
EDSR-baseline, RDN, SwinIR encoders) runs its reference and fast path, names its device, and the fast output equals the reference."""

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
    "lmliif": {"name": "edsr_baseline", "args": {"n_resblocks": 1, "n_feats": 8}},
    "lmlte": {"name": "edsr_baseline", "args": {"n_resblocks": 1, "n_feats": 8}},
    "lmciaosr": {"name": "edsr_baseline", "args": {"n_resblocks": 1, "n_feats": 8}},
}
HEADS = {
    "edsr": "liif",
    "rdn": "liif",
    "lte": "lte",
    "metasr": "metasr",
    "swinir": "liif",
    "lmliif": "lmliif",
    "lmlte": "lmlte",
    "lmciaosr": "lmciaosr",
}
HEAD_ARGS = {
    "lte": {"hidden_dim": 8},
    "lmlte": {"latent_dim": 8},
    "lmciaosr": {"attn_hidden": [8], "hidden_dim": 4, "hidden_depth": 2},
}


@pytest.fixture
def bench(monkeypatch):
    spec = importlib.util.spec_from_file_location("bench_infer", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_infer", module)
    spec.loader.exec_module(module)
    for key, (label, config) in list(module.MODELS.items()):
        assert config["head"]["name"] == HEADS[key]
        head = {"name": HEADS[key], "hidden_list": [8], **HEAD_ARGS.get(HEADS[key], {})}
        small = {"encoder": SMALL[key], "head": head}
        monkeypatch.setitem(module.MODELS, key, (label, small))
    return module


def test_every_model_row_plain_vs_fast(bench, capsys, tmp_path):
    assert set(bench.MODELS) == set(HEADS)
    out = tmp_path / "BENCH.md"
    models = ",".join(HEADS)
    assert (
        bench.main(
            ["--device", "cpu", "--cases", "tiny", "--models", models, "--repeats", "1", "--out", str(out)]
        )
        == 0
    )
    rows = [line.split(" | ") for line in capsys.readouterr().out.splitlines() if line.startswith("| cpu |")]
    labels = ["EDSR-baseline-LIIF", "RDN-LIIF", "EDSR-baseline-LTE", "EDSR-baseline-MetaSR", "SwinIR-LIIF"]
    labels += ["EDSR-baseline-LM-LIIF", "EDSR-baseline-LM-LTE", "EDSR-baseline-LM-CiaoSR"]
    assert [(r[2], r[3]) for r in rows] == [(m, p) for m in labels for p in ("plain", "fast fp32")]
    for r in rows:
        if r[3] == "plain":
            assert r[-1].strip(" |") == "ref"
        else:
            assert float(r[-1].strip(" |")) < 1e-5, r  # fast == reference for every head
    assert "| device | case | model |" in out.read_text()
