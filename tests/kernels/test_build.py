"""liif_sr.kernels: compile once into a keyed cache, fall back (one INFO line, no exception) when disabled, without
a compiler or on a failed build; rows split over threads exactly once each."""

from __future__ import annotations

import ctypes
import logging
import re
import threading
from fnmatch import fnmatch
from pathlib import Path

import pytest
import torch
from helpers import require_compiler

from liif_sr import kernels
from liif_sr.kernels import build

ADD = '#include "common.h"\nLIIF_EXPORT int64_t add3(int64_t a) { return a + %d; }\n'


@pytest.fixture
def csrc(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "csrc"
    folder.mkdir()
    (folder / "common.h").write_text((build.CSRC / "common.h").read_text())
    (folder / "toy.c").write_text(ADD % 3)
    monkeypatch.setattr(build, "CSRC", folder)
    return folder


def _records(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == build.log.name]


def test_builds_once_into_the_cache_and_reuses_it(csrc, caplog):
    require_compiler()
    lib = kernels.load("toy")
    assert lib is not None and kernels.available("toy")
    lib.add3.argtypes, lib.add3.restype = [ctypes.c_int64], ctypes.c_int64
    assert lib.add3(2**40) == 2**40 + 3
    files = list(kernels.cache_dir().iterdir())
    assert len(files) == 1 and files[0].name.startswith("toy-") and files[0].suffix == ".so"
    stamp = files[0].stat().st_mtime_ns
    build.reset()  # a new process: finds the cached file, does not rebuild
    assert kernels.load("toy") is not None
    assert list(kernels.cache_dir().iterdir()) == files and files[0].stat().st_mtime_ns == stamp
    assert _records(caplog) == []


def test_cache_key_changes_with_source_header_flags_and_compiler(csrc):
    require_compiler()
    cc = build._compiler()
    key = build.cache_key("toy", cc, csrc=csrc)
    assert build.cache_key("toy", cc, csrc=csrc) == key
    (csrc / "toy.c").write_text(ADD % 4)
    key2 = build.cache_key("toy", cc, csrc=csrc)
    (csrc / "common.h").write_text((csrc / "common.h").read_text() + "/* changed */\n")
    key3 = build.cache_key("toy", cc, csrc=csrc)
    assert len({key, key2, key3, build.cache_key("toy", cc, flags=("-O2",), csrc=csrc)}) == 4
    assert kernels.load("toy").add3(1) == 5  # the new source, built under its own name
    assert len(list(kernels.cache_dir().glob("toy-*.so"))) == 1


def test_disabled_by_environment(csrc, monkeypatch, caplog):
    monkeypatch.setenv("LIIF_SR_KERNELS", "0")
    with caplog.at_level(logging.INFO, logger=build.log.name):
        assert kernels.load("toy") is None and not kernels.available("toy")
    (line,) = _records(caplog)
    assert "LIIF_SR_KERNELS=0" in line and "\n" not in line
    assert not kernels.cache_dir().exists()


def test_disabled_block_and_environment_apply_after_a_kernel_was_loaded(csrc, monkeypatch, caplog):
    """``kernels.disabled()`` and ``LIIF_SR_KERNELS=0`` are read at every ``load``: a kernel loaded before is
    not handed out meanwhile (benchmarks time both paths in one run), and comes back after."""
    require_compiler()
    lib = kernels.load("toy")
    assert lib is not None
    with caplog.at_level(logging.INFO, logger=build.log.name):
        with kernels.disabled():
            assert kernels.load("toy") is None and not kernels.available("toy") and not kernels.enabled()
            with kernels.disabled():  # nested
                assert kernels.load("toy") is None
            assert kernels.load("toy") is None
        assert kernels.load("toy") is lib and kernels.enabled()
        monkeypatch.setenv("LIIF_SR_KERNELS", "off")
        assert kernels.load("toy") is None
        monkeypatch.delenv("LIIF_SR_KERNELS")
        assert kernels.load("toy") is lib
    (line,) = _records(caplog)  # the reason once per kernel and process
    assert "off: liif_sr.kernels.disabled();" in line
    with pytest.raises(KeyError), kernels.disabled():
        raise KeyError("inside")
    assert kernels.load("toy") is lib  # restored after an error


def test_heads_see_the_disabled_block():
    """Both heads' kernel lookups go through ``kernels.load``: ``disabled()`` reaches them."""
    require_compiler()
    from liif_sr.kernels import lmf
    from liif_sr.models.heads import metasr_kernel

    assert lmf.available() and metasr_kernel.library() is not None
    with kernels.disabled():
        assert not lmf.available() and metasr_kernel.library() is None


@pytest.mark.parametrize("cc", ["false", "/nonexistent/cc"])
def test_broken_or_missing_compiler_falls_back_with_one_line(csrc, monkeypatch, caplog, cc):
    monkeypatch.setenv("CC", cc)
    with caplog.at_level(logging.INFO, logger=build.log.name):
        assert kernels.load("toy") is None
        assert kernels.load("toy") is None  # cached: logged once
    (line,) = _records(caplog)
    assert "unavailable" in line and "PyTorch path" in line and "\n" not in line


def test_failed_build_falls_back_and_leaves_no_temporary_file(csrc, caplog):
    require_compiler()
    (csrc / "toy.c").write_text("this is not C;\n")
    with caplog.at_level(logging.INFO, logger=build.log.name):
        assert kernels.load("toy") is None
        assert kernels.load("missing") is None
    lines = _records(caplog)
    assert len(lines) == 2 and "failed" in lines[0] and "no kernel source" in lines[1]
    assert list(kernels.cache_dir().iterdir()) == []


def test_sources_ship_as_package_data():
    """The .c/.h files are found from a wheel too: pyproject's package data covers every one of them."""
    root = Path(__file__).resolve().parents[2]
    text = (root / "pyproject.toml").read_text()
    line = re.search(r"^\[tool\.setuptools\.package-data\]\nliif_sr = \[(.*)\]$", text, re.M)
    patterns = {"liif_sr": re.findall(r'"([^"]+)"', line.group(1))}
    pkg = root / "src" / "liif_sr"
    files = [p.relative_to(pkg).as_posix() for p in build.CSRC.iterdir() if p.suffix in (".c", ".h")]
    assert "kernels/csrc/common.h" in files
    assert all(any(fnmatch(f, pat) for pat in patterns["liif_sr"]) for f in files), files


@pytest.mark.parametrize(
    ("threads", "rows", "min_rows", "parts"), [(1, 10000, 10, 1), (3, 10, 4, 2), (4, 9999, 1000, 4)]
)
def test_parallel_rows_cover_each_row_once(threads, rows, min_rows, parts):
    seen: list[tuple[int, int, int]] = []
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        kernels.parallel_rows(lambda a, b: seen.append((a, b, threading.get_ident())), rows, min_rows)
    finally:
        torch.set_num_threads(old)
    spans = sorted((a, b) for a, b, _ in seen)
    assert len(spans) == parts and spans[0][0] == 0 and spans[-1][1] == rows
    assert all(spans[i][1] == spans[i + 1][0] for i in range(len(spans) - 1))
    if parts == 1:
        assert seen[0][2] == threading.get_ident()


def test_an_unloadable_cached_file_is_rebuilt(csrc, caplog):
    require_compiler()
    cached = kernels.cache_dir() / f"toy-{build.cache_key('toy', build._compiler())}.so"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"truncated")  # e.g. a full disk
    lib = kernels.load("toy")
    assert lib is not None and lib.add3(1) == 4 and cached.read_bytes()[:4] == b"\x7fELF"
    assert _records(caplog) == []
