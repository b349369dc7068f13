"""``scripts/bench/floor.py``'s memory (roofline) floor: the per-latent table each head's decode reads, the
bytes a decode moves at least, and the streaming rate."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

from bench.floor import memory_bytes, stream_rate, table_floats  # noqa: E402

from liif_sr.models import build_model  # noqa: E402

PAPER_TABLES = {"liif": 256, "lte": 515, "metasr": 771, "lmliif": 192, "lmlte": 291, "lmciaosr": 259}


def _head(name: str, **head):
    return build_model({"encoder": {"name": "edsr_baseline"}, "head": {"name": name, **head}}).head


@pytest.mark.parametrize("name", sorted(PAPER_TABLES))
def test_table_floats_of_the_paper_sizes(name):
    assert table_floats(_head(name)) == PAPER_TABLES[name]


def test_table_follows_the_sizes_and_the_skip():
    assert table_floats(_head("metasr", hidden_list=[16])) == 3 * 17
    assert table_floats(_head("liif", hidden_list=[32, 32])) == 32
    assert table_floats(_head("lmciaosr", lr_skip="never")) == 256


def test_memory_bytes_counts_table_rows_once_and_queries_in_and_out():
    head = _head("metasr")
    assert memory_bytes(head, 100, 0) == 100 * 771 * 4
    assert memory_bytes(head, 0, 10) == 10 * (4 + 3) * 4
    assert memory_bytes(head, 100, 10) == 100 * 771 * 4 + 10 * 7 * 4


def test_stream_rate_is_positive_bytes_per_second():
    assert 1e8 < stream_rate(nbytes=1 << 20, repeats=2) < 1e13
