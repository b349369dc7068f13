"""The precision default holds its bound on real images (issue 21): ``bf16-decode`` — what ``precision="auto"``
picks on hardware with native bf16 — costs at most 0.01 dB of Y-PSNR against fp32, for every model type.

Models: the shipped EDSR-baseline-LIIF, and LTE / MetaSR heads fine-tuned on its encoder (test-only weights in
``tests/fixtures/precision_heads``, made by ``scripts/precision_heads.py``; no official weights offline).
MetaSR's bf16 decode reached -0.0101 dB at Set5 ×4, so its ``auto_bf16`` is False and ``auto`` keeps it fp32.
``liif-sr-eval``'s protocol (given MATLAB-bicubic LR, Y channel, shave = scale). The default suite checks Set5
``bird`` at ×4; ``slow``: Set5 and Set14, ×2/×3/×4 (the table in BENCHMARKS.md "Precision"). The test
MetaSR head is undertrained (below bicubic): ``test_models_render_real_images[metasr]`` is a strict xfail.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
from precision_heads import FIXTURES, load_head_model  # noqa: E402

from liif_sr.evaluation.precision_check import benchmark_set, psnr_by_precision  # noqa: E402

TOL_DB = 0.01
HEADS = ("liif", "lte", "metasr")
BICUBIC_MARGIN_DB = 0.5  # a test head must render real images: this far above bicubic on the same images


def _model(key: str):  # noqa: ANN202
    if key == "liif":
        from liif_sr import load_model

        return load_model("edsr-baseline-liif")
    return load_head_model(FIXTURES / f"{key}.safetensors")


def _bicubic(spec, scale: int, names=None) -> float:  # noqa: ANN001
    from liif_sr.evaluation.benchmarks import iter_pairs
    from liif_sr.evaluation.runner import bicubic_predictor, score_image

    files = None if names is None else [f for f in spec.hr_files() if f.stem in set(names)]
    vals = [
        score_image(
            bicubic_predictor, p.lr.float()[None] / 255, p.hr.float()[None] / 255, spec.protocol, scale, False
        )[0]
        for p in iter_pairs(spec, scale, files=files)
    ]
    return sum(vals) / len(vals)


@functools.cache
def _measure(
    key: str, set_name: str, scale: int, data: Path, names: tuple[str, ...] | None
) -> dict[str, float]:
    spec = benchmark_set(data / "benchmark", set_name)
    res = psnr_by_precision(_model(key), spec, scale, ("fp32", "bf16-decode"), names=names)
    return {**res, "bicubic": _bicubic(spec, scale, names)}


def _check(key: str, set_name: str, scale: int, data: Path, names: tuple[str, ...] | None = None) -> None:
    """``auto`` on native bf16 within the bound: ``bf16-decode`` measured, or fp32 for a head that opts out."""
    from liif_sr.models.registry import HEADS as REGISTERED

    if not REGISTERED[key].auto_bf16:  # MetaSR: measured over the bound, so auto keeps it fp32
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("LIIF_SR_NATIVE_BF16", "1")
            assert _model(key).resolve_precision("auto") == "fp32"
        return
    res = _measure(key, set_name, scale, data, names)
    delta = res["bf16-decode"] - res["fp32"]
    assert abs(delta) <= TOL_DB, (
        f"{key} {set_name} x{scale}: fp32 {res['fp32']:.4f}, bf16-decode {delta:+.4f} dB"
    )


QUICK = ("bird",)  # 288² HR: the default suite's real-image check stays short
#: the test MetaSR head is undertrained (a few hundred steps from scratch on a loaded 2-core CPU: below
#: bicubic), so its bound is measured on a weak model; strict: a retrained fixture turns this into a failure
#: to remove the mark (scripts/precision_heads.py)
WEAK = {"metasr": pytest.mark.xfail(strict=True, reason="test MetaSR head undertrained: below bicubic")}


@pytest.mark.parametrize("key", HEADS)
def test_bound_set5_x4_quick(shared_data, key):
    _check(key, "Set5", 4, shared_data, QUICK)


@pytest.mark.parametrize("key", [pytest.param(k, marks=WEAK.get(k, ())) for k in HEADS])
def test_models_render_real_images(shared_data, key):
    """The bound means something only on a model that renders real images: well above bicubic."""
    res = _measure(key, "Set5", 4, shared_data, QUICK)
    assert res["fp32"] > res["bicubic"] + BICUBIC_MARGIN_DB, (
        f"{key}: {res['fp32']:.2f} vs bicubic {res['bicubic']:.2f}"
    )


@pytest.mark.slow
@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("set_name", ["Set5", "Set14"])
@pytest.mark.parametrize("key", HEADS)
def test_bound_set5_set14(shared_data, key, set_name, scale):
    _check(key, set_name, scale, shared_data)


def test_auto_picks_the_measured_rule(monkeypatch):
    """What the bound above measures is what ``auto`` runs on native bf16 (and fp32 elsewhere)."""
    model = _model("liif")
    monkeypatch.setenv("LIIF_SR_NATIVE_BF16", "1")
    assert model.resolve_precision("auto") == "bf16-decode"
    monkeypatch.setenv("LIIF_SR_NATIVE_BF16", "0")
    assert model.resolve_precision("auto") == "fp32"


def test_fixture_heads_are_small():
    for key in ("lte", "metasr"):
        path = FIXTURES / f"{key}.safetensors"
        assert path.stat().st_size < 8 * 2**20
        model = load_head_model(path)
        assert model.head.name == key and next(model.parameters()).dtype == torch.float32
