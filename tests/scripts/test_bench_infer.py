"""``scripts/bench_infer.py``: every model row (LIIF, LTE, MetaSR, LM-LIIF, LM-LTE, LM-CiaoSR heads;
EDSR-baseline, RDN, SwinIR encoders) runs the official code (where it expresses the model), its reference and fast
path, names its device, the outputs are equal, and the decode's fraction of the FLOP floor is reported."""

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


def _table(text: str) -> list[list[str]]:
    return [
        [c.strip() for c in line.strip("| ").split(" | ")]
        for line in text.splitlines()
        if line.startswith("| cpu |")
    ]


def test_every_model_row_official_plain_fast(bench, capsys, tmp_path):
    """The official code runs first where it expresses the model (same weights: the same output), then our
    reference and fast paths; every row has a decode time and its fraction of the FLOP floor."""
    assert set(bench.MODELS) == set(HEADS)
    out = tmp_path / "BENCH.md"
    models = ",".join(HEADS)
    assert (
        bench.main(
            ["--device", "cpu", "--cases", "tiny", "--models", models, "--repeats", "1", "--out", str(out)]
        )
        == 0
    )
    rows = _table(capsys.readouterr().out)
    labels = ["EDSR-baseline-LIIF", "RDN-LIIF", "EDSR-baseline-LTE", "EDSR-baseline-MetaSR", "SwinIR-LIIF"]
    labels += ["EDSR-baseline-LM-LIIF", "EDSR-baseline-LM-LTE", "EDSR-baseline-LM-CiaoSR"]
    # the official transcriptions have no arguments for the reduced RDN, SwinIR and MetaSR sizes of this test
    official = {"EDSR-baseline-LIIF", "EDSR-baseline-LTE"}
    # "fast auto=fp32": the default, as on a CPU without native bf16 (conftest)
    paths = ("official", "plain", "fast fp32", "fast auto=fp32")
    want = [(m, p) for m in labels for p in paths if p != "official" or m in official]
    assert [(r[2], r[3]) for r in rows] == want
    for r in rows:
        first = r[3] == "official" or (r[3] == "plain" and r[2] not in official)
        if first:
            assert r[-1] == "ref"
        else:
            assert float(r[-1]) < 1e-5, r  # fast == reference == official for every head
        assert float(r[-4].replace(",", "")) > 0, r  # decode ms
        assert r[-3].endswith("%") and r[-2].endswith("%"), r  # fraction of the floor: wall, CPU time
        vs_official = r[-6]  # "speed-up vs official": the official row 1.00x, ours a ratio, "–" without one
        if r[2] not in official or r[3] == "official":
            assert vs_official == ("–" if r[2] not in official else "1.00×")
        assert vs_official == "–" or vs_official.endswith("×") and float(vs_official[:-1]) > 0
    text = out.read_text()
    assert "| device | case | model |" in text and "fraction of the FLOP floor" in text


def test_paths_option(bench, capsys):
    args = [
        "--device",
        "cpu",
        "--cases",
        "tiny",
        "--models",
        "lte",
        "--repeats",
        "1",
        "--paths",
        "official,fast",
    ]
    assert bench.main(args) == 0
    rows = _table(capsys.readouterr().out)
    assert [r[3] for r in rows] == ["official", "fast fp32", "fast auto=fp32"] and float(rows[1][-1]) < 1e-5
    with pytest.raises(SystemExit):
        bench.main(["--paths", "fast,quick"])


def test_no_official(bench, capsys):
    assert (
        bench.main(
            ["--device", "cpu", "--cases", "tiny", "--models", "lte", "--repeats", "1", "--no-official"]
        )
        == 0
    )
    assert [r[3] for r in _table(capsys.readouterr().out)] == ["plain", "fast fp32", "fast auto=fp32"]


def test_flop_counts_at_the_paper_sizes():
    """The FLOP count of scripts/bench/floor.py: the MLP products per query of each head's fast decode."""
    sys.path.insert(0, str(SCRIPT.parent))
    from bench.floor import decode_flops

    from liif_sr.models import build_model

    def head(name: str):
        return build_model(
            {"encoder": {"name": "edsr_baseline", "args": {"n_resblocks": 1}}, "head": {"name": name}}
        ).head

    assert decode_flops(head("lte")) == 4 * 2 * (256 * 256 * 3 + 256 * 3)  # D = 256 -> [256]*3 -> 3
    assert decode_flops(head("liif")) == 4 * 2 * (4 * 256 + 256 * 256 * 3 + 256 * 3)  # latent part: prepare
    assert decode_flops(head("metasr")) == 2 * (3 * 256 + 3 * 256)  # 3 -> 256, then (1, 256) @ (256, 3)
