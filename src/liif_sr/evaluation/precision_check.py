"""The precision bound, measured: mean Y-PSNR of one model on a benchmark set per inference precision (issue 21).

``precision="auto"`` may run the head's decode in bf16 (:mod:`liif_sr.models.precision`); this measures what
that costs with ``liif-sr-eval``'s protocol (given MATLAB-bicubic LR, ``border="none"``, the head's paper cell
clip, Y channel, shave = scale: :func:`~liif_sr.evaluation.runner.score_image`), each precision on the same
images. Used by ``tests/models/test_precision_bound.py`` and ``scripts/bench_precision.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from liif_sr.evaluation.benchmarks import BenchmarkSpec, iter_pairs
from liif_sr.evaluation.runner import score_image
from liif_sr.models.implicit_sr import ImplicitSR
from liif_sr.models.upscale_options import UpscaleOptions


def benchmark_set(root: Path, name: str) -> BenchmarkSpec:
    """The set ``name`` (``Set5``, ``Set14``) under ``root`` (the ``benchmark`` folder: HR, LR_bicubic/X{s})."""
    return BenchmarkSpec(name=name, root=Path(root) / name)


@torch.no_grad()
def psnr_by_precision(
    model: ImplicitSR,
    spec: BenchmarkSpec,
    scale: int,
    precisions: Sequence[str] = ("fp32", "bf16-decode"),
    limit: int | None = None,
    names: Sequence[str] | None = None,
) -> dict[str, float]:
    """Mean Y-PSNR (dB) of ``model`` on ``spec`` at ``scale`` (given LR) for each of ``precisions``.

    ``limit``: only the first ``limit`` images; ``names``: only the HR images of these stems. Each precision is resolved for the model's device (``auto``
    as the user would get it).
    """
    param = next(model.parameters())
    opts = {
        p: UpscaleOptions.create(border="none", precision=p).for_model(model) for p in precisions
    }  # checked once
    sums = dict.fromkeys(precisions, 0.0)
    count = 0
    files = None if names is None else [f for f in spec.hr_files() if f.stem in set(names)]
    for pair in iter_pairs(spec, scale, limit=limit, files=files):
        lr = pair.lr.to(param.device).float().div_(255).unsqueeze(0)
        hr = pair.hr.to(param.device).float().div_(255).unsqueeze(0)
        for p, o in opts.items():

            def predict(x: torch.Tensor, size: tuple[int, int], o: UpscaleOptions = o) -> torch.Tensor:
                return model.render(x, o.with_size(size))

            sums[p] += score_image(predict, lr, hr, spec.protocol, scale, with_ssim=False)[0]
        count += 1
    if count == 0:
        raise ValueError(f"{spec.name}: no images at x{scale} under {spec.root}")
    return {p: s / count for p, s in sums.items()}
