"""Kernel tests: a fresh kernel cache per test and ``load``'s per-process cache cleared around each test."""

from __future__ import annotations

import pytest

from liif_sr.kernels import build


@pytest.fixture(autouse=True)
def fresh_kernels(tmp_path, monkeypatch):
    monkeypatch.setenv("LIIF_SR_KERNEL_CACHE", str(tmp_path / "kcache"))
    monkeypatch.delenv("LIIF_SR_KERNELS", raising=False)
    build.reset()
    yield
    build.reset()
