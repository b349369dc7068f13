"""Start-up checks of a training run: every value that cannot work is refused, one line each, before anything
is built or written.

Two levels:

* :func:`check_config`: the config values alone (data sizes and scales, the arguments of the data module,
  encoder and head against their type hints). ``train(cfg)`` runs it first, for API users.
* :func:`check_start`: :func:`check_config` plus what a start refers to: ``resume=<run dir>`` exists and
  holds ``checkpoints/last.ckpt``, ``ckpt_path`` exists, and the checkpoint's model is the requested one
  (the network is built on the ``meta`` device: no weights are allocated).

``liif-sr-train`` runs :func:`check_start` from its console entry (:func:`preflight_argv`) **before**
``@hydra.main`` runs: Hydra creates the run folder, writes ``.hydra/*.yaml`` and opens ``train.log``
before the task function starts, so a check inside the task is too late to leave a refused resume's
folder untouched. The entry composes the same config from the same overrides with Hydra's compose API;
under ``-m`` every combination of the comma sweeps is checked (up to :data:`MAX_SWEEP_JOBS`; the
sweeper's own search spaces, e.g. ``hparams_search=lr_optuna``, are checked at their base values).
"""

from __future__ import annotations

import collections.abc
import inspect
import math
import types
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from liif_sr.errors import UserError

#: at most this many jobs of a ``-m`` sweep are composed and checked before Hydra starts
MAX_SWEEP_JOBS = 256

_SKIP_FLAGS = ("help", "hydra_help", "version", "cfg", "info", "shell_completion", "experimental_rerun")


class ConfigValueError(UserError):
    """A training config value that cannot work (printed as one line, exit 2)."""


# ---------------------------------------------------------------------------------------------- values


def _hint_name(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        names = [_hint_name(a) for a in args if a is not type(None)]
        return " or ".join(names) + (" or null" if type(None) in args else "")
    if origin in (list, tuple, collections.abc.Sequence):
        inner = _hint_name(args[0]) if args else "values"
        return f"a list of {inner.removeprefix('an ').removeprefix('a ')}s"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(hint, str(hint))


def _conforms(value: Any, hint: Any) -> bool | None:
    """Whether ``value`` (plain YAML data) fits ``hint``; None where the hint is not one we can judge."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        results = [_conforms(value, a) for a in args]
        return (
            True if any(r is True for r in results) else (False if all(r is False for r in results) else None)
        )
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin in (list, tuple, collections.abc.Sequence):
        if not isinstance(value, list | tuple):
            return False
        if not args:
            return True
        inner = args[0]
        results = [_conforms(v, inner) for v in value]
        return not any(r is False for r in results)
    return None


def _target_hints(target: str) -> tuple[inspect.Signature, dict[str, Any], str] | None:
    from hydra.utils import get_object

    try:
        obj = get_object(target)
        sig = inspect.signature(obj)
        hints = typing.get_type_hints(obj.__init__ if inspect.isclass(obj) else obj)
    except Exception:  # noqa: BLE001 - a target we cannot inspect is left to instantiate
        return None
    return sig, hints, getattr(obj, "__name__", target)


def check_arguments(node: Any, where: str) -> None:
    """Check the keys of a ``_target_`` config node against its class's signature and type hints."""
    if not isinstance(node, DictConfig) or "_target_" not in node:
        return
    found = _target_hints(str(node._target_))
    if found is None:
        return
    sig, hints, name = found
    params = sig.parameters
    takes_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    try:
        values = OmegaConf.to_container(node, resolve=True)
    except Exception:  # noqa: BLE001 - an interpolation resolved only at run time (${hydra:...})
        return
    assert isinstance(values, dict)
    for key in node:
        key = str(key)
        if key.startswith("_") and key.endswith("_"):
            continue
        if key not in params:
            if takes_kwargs:
                continue
            known = ", ".join(k for k, p in params.items() if p.kind is not inspect.Parameter.VAR_KEYWORD)
            raise ConfigValueError(f"{where}.{key}: not an argument of {name} (arguments: {known})")
        hint, value = hints.get(key), values[key]
        if hint is None or (isinstance(value, dict) and "_target_" in value):
            continue
        if _conforms(value, hint) is False:
            raise ConfigValueError(f"{where}.{key}={value!r}: expected {_hint_name(hint)}")


def check_data(cfg: DictConfig) -> None:
    """The ranges of ``data.*`` (after the type check): sizes positive, 1 <= scale_min <= scale_max, ..."""
    data, trainer = cfg.data, cfg.get("trainer") or {}

    def positive(key: str, allow_none: bool = False) -> None:
        v = data.get(key)
        if v is None and allow_none:
            return
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ConfigValueError(f"data.{key}={v!r}: expected a positive integer")

    for key in ("batch_size", "inp_size", "repeat"):
        positive(key)
    for key in ("sample_q", "first_k", "val_first_k"):
        positive(key, allow_none=True)
    workers = data.get("num_workers", 0)
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 0:
        raise ConfigValueError(f"data.num_workers={workers!r}: expected an integer >= 0")
    lo, hi = data.get("scale_min"), data.get("scale_max")
    for key, v in (("scale_min", lo), ("scale_max", hi)):
        if not isinstance(v, int | float) or isinstance(v, bool) or not math.isfinite(v) or v < 1:
            raise ConfigValueError(f"data.{key}={v!r}: expected a finite number >= 1")
    if lo > hi:
        raise ConfigValueError(f"data.scale_max={hi!r} is below data.scale_min={lo!r}")
    sources = data.get("train_sources")
    if not sources:
        raise ConfigValueError(
            "data.train_sources is empty: list at least one image, folder or skimage:NAME to train on"
        )
    for s in data.get("val_scales") or []:
        if not isinstance(s, int | float) or isinstance(s, bool) or not math.isfinite(s) or s < 1:
            raise ConfigValueError(f"data.val_scales: {s!r} is not a finite number >= 1")
    devices, nodes = trainer.get("devices", 1), trainer.get("num_nodes", 1)
    if isinstance(devices, list | tuple) or hasattr(devices, "__len__") and not isinstance(devices, str):
        devices = len(devices)
    if isinstance(devices, int) and devices > 0 and isinstance(nodes, int) and nodes > 0:
        world = devices * nodes
        if data.batch_size % world:
            raise ConfigValueError(
                f"data.batch_size={data.batch_size} (global) is not divisible by {world} devices "
                "(trainer.devices x trainer.num_nodes)"
            )


def check_config(cfg: DictConfig) -> None:
    """The config values alone: argument types of data/encoder/head, then the data ranges."""
    check_arguments(cfg.data, "data")
    model = cfg.get("model")
    if model is not None:
        for part in ("encoder", "head"):
            check_arguments(model.get(part), f"model.{part}")
    check_data(cfg)


# ------------------------------------------------------------------------------------------ references


def start_checkpoint(cfg: DictConfig) -> str | None:
    """The checkpoint a start continues (``resume``, ``ckpt_path`` file), refused if missing; ``last`` → None
    (its run folder is known only once Hydra runs; :func:`liif_sr.training.resume.resolve_ckpt_path`)."""
    from liif_sr.training.integrity import verify
    from liif_sr.training.resume import is_sweep_dir

    resume = cfg.get("resume")
    if resume:
        run = Path(str(resume))
        if not run.is_dir():
            raise UserError(f"resume={resume}: no such run directory")
        if is_sweep_dir(run):  # each job's own checkpoint: checked by liif_sr.training.resume_plan
            return None
        last = run / "checkpoints" / "last.ckpt"
        if not last.is_file():
            raise UserError(f"resume={resume}: no checkpoints/last.ckpt in that run directory")
        verify(last, f"resume={resume}")
        return str(last)
    ckpt = cfg.get("ckpt_path")
    if ckpt and ckpt != "last":
        if not Path(str(ckpt)).is_file():
            raise UserError(f"ckpt_path={ckpt}: file not found")
        verify(ckpt, f"ckpt_path={ckpt}")
        return str(ckpt)
    return None


def requested_net_config(cfg: DictConfig) -> dict[str, Any]:
    """``net.config`` of the model ``cfg.model`` asks for, built on the meta device (no weights)."""
    import torch
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    from liif_sr.models.liif import LIIF

    def build() -> dict[str, Any]:
        encoder = instantiate(cfg.model.encoder, _convert_="all")
        head = instantiate(cfg.model.head, _convert_="all")
        net = LIIF(encoder, head)
        inp, multiple = (cfg.get("data") or {}).get("inp_size"), int(encoder.input_multiple)
        if isinstance(inp, int) and multiple > 1 and inp % multiple:
            raise ConfigValueError(
                f"data.inp_size={inp}: the {encoder.name} encoder needs training crops that are multiples "
                f"of {multiple} (e.g. data.inp_size={max(multiple, inp // multiple * multiple)})"
            )
        return net.config

    try:
        try:
            with torch.device("meta"):  # no weights allocated
                return build()
        except Exception:  # noqa: BLE001 - an encoder that computes buffers at init (SwinIR): build it on CPU
            return build()
    except (InstantiationException, ValueError, TypeError) as exc:
        cause = exc.__cause__ if isinstance(exc, InstantiationException) and exc.__cause__ else exc
        if isinstance(cause, UserError):  # already one line for the user (e.g. an unregistered encoder)
            raise cause from None
        raise ConfigValueError(
            f"model: cannot build the requested model: {str(cause).splitlines()[0]}"
        ) from None


def check_start(cfg: DictConfig) -> None:
    """Everything a start needs, before anything is built or written (see the module docstring)."""
    from liif_sr.checkpoints import check_matches
    from liif_sr.errors import CheckpointError

    check_config(cfg)
    ckpt = start_checkpoint(cfg)
    config = requested_net_config(cfg)
    if ckpt:
        try:
            check_matches(ckpt, config)
        except CheckpointError as exc:
            if ": checkpoint has " not in str(exc):  # unreadable or damaged: its own message, no model advice
                raise
            raise CheckpointError(
                f"{exc}; pass the model options the run was trained with, or start a new run"
            ) from None


# ------------------------------------------------------------------------------------------ the entry


def _jobs(overrides: list[str], multirun: bool) -> list[list[str]]:
    """The override lists of the jobs Hydra will run: one, or each combination of a ``-m`` comma sweep."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    if not multirun or not any(o.is_sweep_override() for o in parsed):
        return [overrides]
    try:
        jobs = BasicSweeper.split_arguments(parsed, None)[0]
    except Exception:  # noqa: BLE001 - a sweep the basic sweeper cannot expand: check the fixed part
        return [[o.input_line for o in parsed if not o.is_sweep_override() and o.input_line]]
    return jobs[:MAX_SWEEP_JOBS]


def preflight_argv(
    config_name: str, argv: Sequence[str], check: Callable[[DictConfig], None] = check_start
) -> None:
    """Compose ``conf/<config_name>.yaml`` from a command line as Hydra will, and ``check`` each job's config.

    Command lines this cannot read the same way Hydra does (``--help``, ``--cfg``, ``-cn``/``-cp``/``-cd``,
    a parse or composition error) are left to Hydra, which writes nothing for them either. Raises
    :class:`UserError` (the entry prints it as one line)."""
    from hydra import compose, initialize_config_module
    from hydra._internal.utils import get_args_parser
    from hydra.core.global_hydra import GlobalHydra

    try:
        args = get_args_parser().parse_args(list(argv))
    except SystemExit:  # argparse's own usage error: Hydra prints it
        return
    if any(getattr(args, k, None) for k in _SKIP_FLAGS) or args.config_name or args.config_path:
        return
    if getattr(args, "config_dir", None):
        return
    try:
        jobs = _jobs(list(args.overrides), bool(args.multirun))
    except Exception:  # noqa: BLE001 - Hydra reports override syntax errors itself
        return
    if GlobalHydra.instance().is_initialized():
        return
    for overrides in jobs:
        try:
            with initialize_config_module("liif_sr.conf", version_base="1.3"):
                cfg = compose(config_name, overrides=overrides)
        except Exception:  # noqa: BLE001 - composition errors are Hydra's to report (nothing written)
            return
        finally:
            GlobalHydra.instance().clear()
        check(cfg)
