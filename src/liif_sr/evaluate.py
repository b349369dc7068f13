"""Evaluation entry point: ``liif-sr-eval`` / ``python -m liif_sr.evaluate`` (Hydra, ``conf/eval.yaml``).

The LIIF tables from one command (protocol: ``docs/method.md``, "Evaluation protocol")::

    liif-sr-eval checkpoint=runs/x/model.safetensors                      # Set5/Set14/B100/Urban100 x2..x8
    liif-sr-eval checkpoint=[a.pth,b.ckpt] benchmark=[set5,b100] scales=[2,4]
    liif-sr-eval benchmark=[div2k]                                         # bicubic row only, x2..x30
    liif-sr-eval paths.benchmark_dir=/data/benchmark generate_with=matlab  # Urban100 x2-x4 without LR files

The flow is :func:`liif_sr.evaluation.runner.evaluate` (benchmark sets: :mod:`liif_sr.evaluation.benchmarks`,
tables and plot: :mod:`liif_sr.evaluation.report`); the Hydra plumbing is :mod:`liif_sr.hydra_app`.
"""

from __future__ import annotations

from collections.abc import Sequence

from omegaconf import DictConfig

from liif_sr.evaluation.runner import evaluate
from liif_sr.hydra_app import hydra_entry

__all__ = ["evaluate", "main"]


def _task(cfg: DictConfig) -> None:
    evaluate(cfg)


def _preflight(argv: Sequence[str]) -> None:
    """Refuse an evaluation that cannot work before Hydra creates its run folder (values, sets, checkpoints)."""
    from liif_sr.evaluation.preflight import preflight

    preflight(argv)


main = hydra_entry("liif-sr-eval", "eval", _task, module="liif_sr.evaluate", preflight=_preflight)

if __name__ == "__main__":
    main()
