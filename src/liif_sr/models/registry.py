"""The only name → class maps: encoders and decoder heads (a leaf module: it imports no model code).

Checkpoints store plain data (names and numbers), never ``_target_`` paths or pickled objects, so loading
one can only build these classes. A new encoder or head is one module plus one entry here (and one
``conf/model/{encoder,head}/*.yaml``); :class:`~liif_sr.models.liif.LIIF` refuses any other class when it is
built (not at the first checkpoint save).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from torch import nn

from liif_sr.errors import UserError
from liif_sr.models.encoders import RDN, EDSRBaseline, SwinIR
from liif_sr.models.encoders.base import Encoder
from liif_sr.models.heads.base import DecoderHead
from liif_sr.models.heads.liif import LIIFHead
from liif_sr.models.heads.lte import LTEHead
from liif_sr.models.heads.metasr import MetaSRHead

ENCODERS: dict[str, type[Encoder]] = {cls.name: cls for cls in (EDSRBaseline, RDN, SwinIR)}
HEADS: dict[str, type[DecoderHead]] = {cls.name: cls for cls in (LIIFHead, LTEHead, MetaSRHead)}


class UnknownComponentError(UserError, ValueError):
    """An encoder or head that is not in the registry (by name or by class)."""


def encoder_class(name: str) -> type[Encoder]:
    """The encoder class registered as ``name``."""
    try:
        return ENCODERS[name]
    except (KeyError, TypeError):
        raise UnknownComponentError(f"unknown encoder {name!r}; known: {', '.join(ENCODERS)}") from None


def head_class(name: str) -> type[DecoderHead]:
    """The head class registered as ``name``."""
    try:
        return HEADS[name]
    except (KeyError, TypeError):
        raise UnknownComponentError(f"unknown head {name!r}; known: {', '.join(HEADS)}") from None


class IncompatibleComponentsError(UserError, ValueError):
    """A registered encoder and head that cannot work together (e.g. latent channels that differ)."""


def _check_class(cls: type, table: dict[str, type], kind: str) -> str:
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or table.get(name) is not cls:
        raise UnknownComponentError(
            f"{kind} class {cls.__module__}.{cls.__qualname__} is not registered "
            f"(known {kind}s: {', '.join(table)}); add it to liif_sr.models.registry"
        )
    return name


def _check(module: nn.Module, table: dict[str, type], kind: str) -> str:
    return _check_class(type(module), table, kind)


def encoder_name(encoder: nn.Module) -> str:
    """The registry name of ``encoder`` (its class must be registered exactly)."""
    return _check(encoder, ENCODERS, "encoder")


def check_registered(encoder: nn.Module, head: nn.Module) -> None:
    """Refuse an encoder or head whose class is not registered (a checkpoint could not name it)."""
    _check(encoder, ENCODERS, "encoder")
    _check(head, HEADS, "head")


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
