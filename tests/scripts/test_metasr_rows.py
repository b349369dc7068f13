"""``scripts/bench/metasr_rows.py``: the MetaSR kernel on unpadded and cache-line-aligned table rows, one line
per scale with bitwise-equal outputs; a one-line refusal without the kernel."""

from __future__ import annotations

import re

import pytest
from helpers import load_script, require_metasr_kernel

from liif_sr.models.heads import metasr_kernel


@pytest.fixture(scope="module")
def script():
    return load_script("bench/metasr_rows.py")


def test_both_layouts_give_the_same_bits(script, capsys):
    require_metasr_kernel()
    script.main(["--latent", "6", "--scales", "2,3.5", "--repeats", "2", "--flush-mb", "1"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert "rows 771 vs 784 fp32" in lines[0] and len(lines) == 3
    for line, scale in zip(lines[1:], ("×2 (6²→12²)", "×3.5 (6²→21²)"), strict=True):
        assert line.startswith(scale) and line.endswith("bitwise equal True"), line
        assert re.search(r"unpadded [0-9.]+ ns/query, aligned [0-9.]+ ns/query, [0-9.]+× faster", line)


def test_refuses_without_the_kernel(script, monkeypatch):
    monkeypatch.setattr(metasr_kernel, "fast_library", lambda: None)
    with pytest.raises(SystemExit, match="not available"):
        script.main(["--latent", "6", "--scales", "2", "--repeats", "1"])
