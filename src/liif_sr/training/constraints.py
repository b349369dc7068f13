"""The value constraints of a training config, in one place: what a value must be for the run to work.

Two tables, checked by :func:`check_values`; the types were checked by Hydra at composition (the
structured-config schemas of :mod:`liif_sr.conf.schema`):

* :data:`FIELDS`: one key, one :class:`Rule` (``data.batch_size`` a positive integer, ``model.head.out_dim``
  3, ``trainer.max_epochs`` positive or -1, ``trainer.log_every_n_steps`` positive, ...), checked where the
  key is present (the trainer's integer options that Lightning takes without a word when absurd: 0 or -1
  logging intervals, accumulations, sanity steps below -1, a negative clip);
* :data:`RELATIONS`: rules over several keys (``scale_min <= scale_max``, ``data.sample_q`` at most the
  pixels of the smallest HR crop, ...).

The global batch divisible by the devices is the data module's own check
(:func:`liif_sr.data.options.check_batch_split`): the start-up checks call it with the planned ``Trainer``'s
world size (:func:`liif_sr.training.dry_build.check_trainer`), which also knows ``devices=auto`` / ``-1``.

What torch and Lightning refuse themselves (an optimizer's ``lr``, ``trainer.precision``) is left to them:
:mod:`liif_sr.training.dry_build` builds those objects at start. What depends on files (the images' sizes)
is :mod:`liif_sr.data.source_check`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from liif_sr.errors import UserError


class ConfigValueError(UserError):
    """A training config value that cannot work (printed as one line, exit 2)."""


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


@dataclass(frozen=True)
class Rule:
    """A value's constraint: ``holds(value)``, else ``<key>=<value>: <expected>``."""

    holds: Callable[[Any], bool]
    expected: str


POSITIVE = Rule(lambda v: _int(v) and v >= 1, "expected a positive integer")
POSITIVE_OR_NULL = Rule(lambda v: v is None or (_int(v) and v >= 1), "expected a positive integer")
NON_NEGATIVE = Rule(lambda v: _int(v) and v >= 0, "expected an integer >= 0")
SCALE = Rule(lambda v: _number(v) and v >= 1, "expected a finite number >= 1")
RGB = Rule(lambda v: _int(v) and v == 3, "expected 3: training images are RGB")
LOOP_LIMIT = Rule(
    lambda v: v is None or (_int(v) and (v == -1 or v >= 1)),
    "expected a positive integer, or -1 for no limit",
)
EVERY_N = Rule(lambda v: v is None or (_int(v) and v >= 1), "expected a positive integer or null")
NON_NEGATIVE_OR_NULL = Rule(lambda v: v is None or (_int(v) and v >= 0), "expected an integer >= 0 or null")
SANITY_STEPS = Rule(
    lambda v: _int(v) and v >= -1, "expected an integer >= 0, or -1 for the whole validation set"
)
VAL_INTERVAL = Rule(
    lambda v: v is None or (_int(v) and v >= 1) or (isinstance(v, float) and 0 < v <= 1),
    "expected a positive integer (training batches) or a fraction of the epoch in (0, 1]",
)
CLIP = Rule(lambda v: v is None or (_number(v) and v >= 0), "expected a finite number >= 0 or null (off)")
INTERVAL = Rule(lambda v: v in ("epoch", "step"), "expected epoch or step")

#: key → rule; ``data.*`` keys are always present (``data/_base.yaml``), the others are checked when set
FIELDS: dict[str, Rule] = {
    "data.batch_size": POSITIVE,
    "data.inp_size": POSITIVE,
    "data.repeat": POSITIVE,
    "data.sample_q": POSITIVE_OR_NULL,
    "data.first_k": POSITIVE_OR_NULL,
    "data.val_first_k": POSITIVE_OR_NULL,
    "data.num_workers": NON_NEGATIVE,
    "data.scale_min": SCALE,
    "data.scale_max": SCALE,
    "model.encoder.n_colors": RGB,
    "model.head.out_dim": RGB,
    "model.scheduler_interval": INTERVAL,
    "trainer.max_epochs": LOOP_LIMIT,
    "trainer.max_steps": LOOP_LIMIT,
    "trainer.check_val_every_n_epoch": EVERY_N,
    "trainer.log_every_n_steps": POSITIVE,
    "trainer.val_check_interval": VAL_INTERVAL,
    "trainer.accumulate_grad_batches": POSITIVE,
    "trainer.num_sanity_val_steps": SANITY_STEPS,
    "trainer.min_epochs": NON_NEGATIVE_OR_NULL,
    "trainer.min_steps": NON_NEGATIVE_OR_NULL,
    "trainer.gradient_clip_val": CLIP,
}
_ALWAYS = ("data.",)
_MISSING = object()


def smallest_hr_crop(inp_size: int, scale_min: float) -> int:
    """The side of the smallest HR crop :func:`~liif_sr.data.sampling.random_scale_sample` draws (scale
    ``scale_min``, on images of at least that side)."""
    return round(inp_size * scale_min)


def least_inp_size(sample_q: int, scale_min: float, multiple: int = 1) -> int:
    """The smallest ``inp_size`` (a multiple of ``multiple``) whose smallest HR crop holds ``sample_q`` pixels."""
    inp = multiple
    while smallest_hr_crop(inp, scale_min) ** 2 < sample_q:
        inp += multiple
    return inp


def suggest_inp_size(inp_size: int, multiple: int, scale_min: float, sample_q: int | None) -> int:
    """A multiple of ``multiple`` near ``inp_size`` that meets every crop constraint (the lower one if it
    does, else the next one up), for the messages that propose a value."""
    low = inp_size // multiple * multiple
    least = least_inp_size(sample_q, scale_min, multiple) if sample_q else multiple
    return low if low >= least else max(least, -(-inp_size // multiple) * multiple)


def _sample_q_fits(cfg: DictConfig) -> str | None:
    data = cfg.data
    q, inp, smin = data.get("sample_q"), data.inp_size, data.scale_min
    side = smallest_hr_crop(inp, smin)
    if q is None or q <= side * side:
        return None
    return (
        f"data.sample_q={q} is more than the {side * side} pixels of the smallest HR crop ({side}x{side}: "
        f"data.inp_size={inp} at data.scale_min={smin:g}); use data.sample_q<={side * side} or "
        f"data.inp_size>={least_inp_size(q, smin)}"
    )


def _show(value: Any) -> str:
    """A value as the user wrote it (``2``, not ``2.0``: the schema stores scales as floats)."""
    return f"{value:g}" if isinstance(value, float) else repr(value)


def _scales_ordered(cfg: DictConfig) -> str | None:
    lo, hi = cfg.data.scale_min, cfg.data.scale_max
    return f"data.scale_max={_show(hi)} is below data.scale_min={_show(lo)}" if lo > hi else None


def _has_sources(cfg: DictConfig) -> str | None:
    if cfg.data.get("train_sources"):
        return None
    return "data.train_sources is empty: list at least one image, folder or skimage:NAME to train on"


def _val_scales(cfg: DictConfig) -> str | None:
    bad = [s for s in cfg.data.get("val_scales") or [] if not SCALE.holds(s)]
    return f"data.val_scales: {_show(bad[0])} is not a finite number >= 1" if bad else None


def _targets(group: Any) -> dict[str, str]:
    if not isinstance(group, DictConfig):
        return {}
    return {
        str(k): str(v.get("_target_"))
        for k, v in group.items()
        if isinstance(v, DictConfig) and "_target_" in v
    }


def _lr_monitor_logs(cfg: DictConfig) -> str | None:
    monitors = [k for k, t in _targets(cfg.get("callbacks")).items() if t.endswith("LearningRateMonitor")]
    if not monitors or _targets(cfg.get("logger")):
        return None
    return (
        f"callbacks.{monitors[0]} needs a logger (Lightning refuses it without one): "
        f"choose one (logger=csv) or drop it (callbacks.{monitors[0]}=null)"
    )


#: rules over several keys, in order; each returns the message of a violation or None
RELATIONS: tuple[Callable[[DictConfig], str | None], ...] = (
    _scales_ordered,
    _has_sources,
    _val_scales,
    _sample_q_fits,
    _lr_monitor_logs,
)


def check_values(cfg: DictConfig) -> None:
    """Refuse the first value of ``cfg`` that breaks :data:`FIELDS` or :data:`RELATIONS` (one line)."""
    for key, rule in FIELDS.items():
        value = OmegaConf.select(cfg, key, default=_MISSING)
        if value is _MISSING and not key.startswith(_ALWAYS):
            continue
        value = None if value is _MISSING else value
        if OmegaConf.is_config(value):
            value = OmegaConf.to_container(value, resolve=True)
        if not rule.holds(value):
            raise ConfigValueError(f"{key}={value!r}: {rule.expected}")
    for relation in RELATIONS:
        message = relation(cfg)
        if message:
            raise ConfigValueError(message)
