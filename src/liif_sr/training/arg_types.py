"""Argument types of ``_target_`` config nodes (data module, encoder, head) against their classes' ``__init__``
type hints: a key the class does not take, or a value of the wrong type, is one line before anything is built.

Issue #19 asks to replace this with Hydra structured configs; it is kept in its own module until then.
"""

from __future__ import annotations

import collections.abc
import inspect
import types
import typing
from typing import Any

from omegaconf import DictConfig, OmegaConf

from liif_sr.training.constraints import ConfigValueError


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
