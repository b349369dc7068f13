"""Deprecated module path (issue 19): the model class is :class:`liif_sr.models.implicit_sr.ImplicitSR`.

``from liif_sr.models.liif import LIIF`` keeps working for one release, with a :class:`DeprecationWarning`;
the head named LIIF is :class:`liif_sr.models.heads.liif.LIIFHead`.
"""

from __future__ import annotations

from typing import Any

from liif_sr.deprecated import renamed


def __getattr__(name: str) -> Any:
    if name == "LIIF":
        return renamed(__name__, name)
    # other names (clip_cell, border_px, ...): the same objects, with a warning
    from liif_sr.models import implicit_sr

    if not hasattr(implicit_sr, name):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import warnings

    warnings.warn(
        f"{__name__}.{name} is deprecated and will be removed in 0.3; use liif_sr.models.implicit_sr.{name}",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(implicit_sr, name)
