"""The columns of an evaluation table: which benchmark sets (``benchmark=[...]``) and scales are evaluated,
with each column's LR source and HR files (re-exported by :mod:`liif_sr.evaluation.runner`)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig, ListConfig, OmegaConf

from liif_sr.errors import DatasetMissingError, UserError
from liif_sr.evaluation.benchmarks import BenchmarkSpec, lr_source, normalize_scale
from liif_sr.evaluation.report import Column
from liif_sr.metrics.sr import protocol_shave

__all__ = ["load_specs", "plan_columns", "select_scales"]

log = logging.getLogger("liif_sr.evaluate")


def load_specs(cfg: DictConfig, warn: bool = True) -> list[BenchmarkSpec]:
    """The selected sets (``benchmark=[...]``); missing ones raise, or are skipped with ``skip_missing``
    (with a warning unless ``warn=False``)."""
    specs = []
    for key, node in (cfg.get("benchmark") or {}).items():
        spec = BenchmarkSpec.from_config(OmegaConf.to_container(node, resolve=True))
        try:
            spec.check_present()
        except DatasetMissingError as exc:
            if not cfg.skip_missing:
                raise DatasetMissingError(f"{exc} (or pass skip_missing=true)") from None
            if warn:
                log.warning("skipping %s: %s", key, exc)
            continue
        specs.append(spec)
    if not specs:
        raise UserError("no benchmark set to evaluate (benchmark=[set5,set14,b100,urban100,manga109,div2k])")
    return specs


def select_scales(cfg: DictConfig, spec: BenchmarkSpec) -> list[int | float]:
    """``scales`` from the config (a number or a list), else the set's own given + generated scales."""
    scales = cfg.get("scales")
    if scales is None:
        return list(spec.scales)
    scales = list(scales) if isinstance(scales, (ListConfig, list, tuple)) else [scales]
    return list(dict.fromkeys(normalize_scale(s) for s in scales))


def plan_columns(
    cfg: DictConfig, specs: Sequence[BenchmarkSpec]
) -> list[tuple[BenchmarkSpec, Column, list[Path]]]:
    """Every (set, scale) column with its LR source and HR files; warns where ×2–×4 LR must be generated."""
    plan = []
    for spec in specs:
        files = spec.hr_files(cfg.first_k)
        for scale in select_scales(cfg, spec):
            source = lr_source(spec, scale, cfg.downsampler, cfg.generate_with)
            if source != "given" and scale in spec.given_lr_scales and cfg.generate_with is None:
                log.warning(
                    "%s x%s: no LR folder %s, generating the LR with %s bicubic; published x2-x4 numbers use "
                    "MATLAB LR: run `liif-sr make-lr %s --scales %s --out %s` once, or pass generate_with=matlab",
                    spec.name, scale, spec.lr_path(scale), source, spec.hr_path, scale,
                    (spec.lr_path(scale) or spec.root / "LR").parent,
                )  # fmt: skip
            col = Column(
                spec.name, scale, source, spec.protocol, protocol_shave(spec.protocol, scale)[0], len(files)
            )
            plan.append((spec, col, files))
    return plan
