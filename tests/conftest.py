"""Shared fixtures: real data location, Hydra config composition, environment for offline tests."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("WANDB_SILENT", "true")
# precision="auto" resolves as on a machine without native bf16 (fp32): the suite's exact comparisons do not
# depend on the CPU; tests/models/test_precision_bound.py sets it to 1 for the bf16 rule (issue 21)
os.environ.setdefault("LIIF_SR_NATIVE_BF16", "0")
sys.path.insert(0, str(Path(__file__).parent))  # tests/ helpers (corpus, official_liif)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _require(path: Path) -> Path:
    if path.exists():
        return path
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"required real data is missing in CI: {path}")
    pytest.skip(f"real data not available: {path}")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the checkout; skips when absent (a user's clone), fails when CI=true."""
    return _require(SHARED_DATA)


@pytest.fixture
def compose_train(tmp_path):
    """Compose the real ``train.yaml`` with overrides, outputs in ``tmp_path``; returns a function."""
    from helpers import compose_in
    from hydra.core.global_hydra import GlobalHydra

    def _compose(*overrides: str):
        return compose_in(tmp_path / "run", *overrides)

    yield _compose
    GlobalHydra.instance().clear()


@pytest.fixture
def run_train(compose_train, tmp_path):
    """Run ``liif_sr.train.train`` in-process on a composed config (HydraConfig set, output in tmp_path)."""

    def _run(*overrides: str):
        from liif_sr.train import train

        cfg = compose_train(*overrides)
        return cfg, train(cfg)

    return _run
