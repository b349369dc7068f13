"""The name → class maps of encoders and decoder heads, filled by decorators next to each class.

Checkpoints store plain data (names and numbers), never ``_target_`` paths or pickled objects; loading one
builds the classes registered under its names. A component registers itself where it is defined::

    from liif_sr.models import DecoderHead, register_head

    @register_head("mine")
    class MyHead(DecoderHead): ...

The built-in components (``models/encoders/``, ``models/heads/``) register when those packages are imported,
which every lookup here does first; a user's component registers when the user's module is imported (also
by a Hydra ``_target_``). :class:`~liif_sr.models.implicit_sr.ImplicitSR` refuses a class that is not registered when it is
built (a checkpoint could not name it), and loading a checkpoint that names an unknown component says which
module to import. This module imports no model code at import time (the packages import it).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

from liif_sr.errors import UserError

C = TypeVar("C", bound=type)

ENCODERS: dict[str, type] = {}
HEADS: dict[str, type] = {}


class UnknownComponentError(UserError, ValueError):
    """An encoder or head that is not in the registry (by name or by class)."""


class IncompatibleComponentsError(UserError, ValueError):
    """A registered encoder and head that cannot work together (e.g. latent channels that differ)."""


def _register(table: dict[str, type], kind: str, name: str | None) -> Callable[[C], C]:
    def decorate(cls: C) -> C:
        key = name if name is not None else getattr(cls, "name", None)
        if not isinstance(key, str) or not key or "-" in key:
            raise ValueError(f"register_{kind}: {cls.__qualname__} needs a name without '-' (got {key!r})")
        old = table.get(key)
        same = old is not None and (old.__module__, old.__qualname__) == (cls.__module__, cls.__qualname__)
        if old is not None and old is not cls and not same:  # a re-imported module may register again
            raise ValueError(
                f"register_{kind}: {key!r} is already {old.__module__}.{old.__qualname__}; choose another name"
            )
        cls.name = key
        table[key] = cls
        return cls

    return decorate


def register_encoder(name: str | None = None) -> Callable[[C], C]:
    """Class decorator: register an :class:`~liif_sr.models.encoders.base.Encoder` subclass under ``name``
    (default: its ``name`` attribute), the name its checkpoints store."""
    return _register(ENCODERS, "encoder", name)


def register_head(name: str | None = None) -> Callable[[C], C]:
    """Class decorator: register a :class:`~liif_sr.models.heads.base.DecoderHead` subclass under ``name``
    (default: its ``name`` attribute), the name its checkpoints store."""
    return _register(HEADS, "head", name)


@functools.cache
def _load_builtins() -> None:
    import liif_sr.models.encoders  # noqa: F401  (registers edsr_baseline, rdn, swinir)
    import liif_sr.models.heads  # noqa: F401  (registers the package heads)


def encoders() -> dict[str, type]:
    """Every registered encoder (the built-in ones and those of modules imported so far)."""
    _load_builtins()
    return ENCODERS


def heads() -> dict[str, type]:
    """Every registered head (the built-in ones and those of modules imported so far)."""
    _load_builtins()
    return HEADS


def known(table: dict[str, type]) -> str:
    """The registered names of ``table`` for messages: sorted by name (not by import order, which depends on
    what a session imported first)."""
    return ", ".join(sorted(table))


def _lookup(table: dict[str, type], kind: str, name: object) -> type:
    _load_builtins()
    try:
        return table[name]  # type: ignore[index]
    except (KeyError, TypeError):
        raise UnknownComponentError(
            f"unknown {kind} {name!r}; known: {known(table)}; if it is your own, import the module that "
            f"registers it (@register_{kind}) before loading"
        ) from None


def encoder_class(name: str) -> type:
    """The encoder class registered as ``name``."""
    return _lookup(ENCODERS, "encoder", name)


def head_class(name: str) -> type:
    """The head class registered as ``name``."""
    return _lookup(HEADS, "head", name)


def _check_class(cls: type, table: dict[str, type], kind: str) -> str:
    _load_builtins()
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or table.get(name) is not cls:
        raise UnknownComponentError(
            f"{kind} class {cls.__module__}.{cls.__qualname__} is not registered "
            f'(known {kind}s: {known(table)}); decorate it with @liif_sr.models.register_{kind}("<name>")'
        )
    return name


def encoder_name(encoder: nn.Module) -> str:
    """The registry name of ``encoder`` (its class must be registered exactly)."""
    return _check_class(type(encoder), ENCODERS, "encoder")


def check_registered(encoder: nn.Module, head: nn.Module) -> None:
    """Refuse an encoder or head whose class is not registered (a checkpoint could not name it)."""
    _check_class(type(encoder), ENCODERS, "encoder")
    _check_class(type(head), HEADS, "head")


def check_head_factory(factory: Callable[..., Any], encoder: nn.Module) -> None:
    """Before a head factory (a class, or a ``functools.partial`` of one, e.g. Hydra's ``_partial_``) is called
    for ``encoder``: its class must be registered and a preset ``in_channels`` must be the encoder's ``out_dim``."""
    func, keywords = factory, {}
    while isinstance(func, functools.partial):
        keywords = {**func.keywords, **keywords}
        func = func.func
    if isinstance(func, type):
        _check_class(func, HEADS, "head")
    preset = keywords.get("in_channels")
    if preset is not None and preset != getattr(encoder, "out_dim", None):
        raise IncompatibleComponentsError(
            f"head in_channels={preset} does not match the encoder's out_dim={encoder.out_dim} "
            "(leave model.head.in_channels unset: the head takes the encoder's out_dim)"
        )
