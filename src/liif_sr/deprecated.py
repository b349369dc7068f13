"""Old public names kept for one release (0.2.x) after the renames of issue 19: each warns once per use.

=====================================================  =======================================================
old                                                    new
=====================================================  =======================================================
``liif_sr.LIIF``, ``liif_sr.models.LIIF``              :class:`liif_sr.models.implicit_sr.ImplicitSR`
``liif_sr.models.liif`` (module)                       :mod:`liif_sr.models.implicit_sr`
``liif_sr.training.module.LIIFModule``                 :class:`liif_sr.training.module.SRTrainingModule`
``liif_sr.data.datamodule.LIIFDataModule``             :class:`liif_sr.data.datamodule.RandomScaleDataModule`
=====================================================  =======================================================
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

#: (module the old name was read from, old name) → (module of the new object, new name)
RENAMED: dict[tuple[str, str], tuple[str, str]] = {
    ("liif_sr", "LIIF"): ("liif_sr.models.implicit_sr", "ImplicitSR"),
    ("liif_sr.models", "LIIF"): ("liif_sr.models.implicit_sr", "ImplicitSR"),
    ("liif_sr.models.liif", "LIIF"): ("liif_sr.models.implicit_sr", "ImplicitSR"),
    ("liif_sr.training.module", "LIIFModule"): ("liif_sr.training.module", "SRTrainingModule"),
    ("liif_sr.data.datamodule", "LIIFDataModule"): ("liif_sr.data.datamodule", "RandomScaleDataModule"),
}


def renamed(module: str, name: str) -> Any:
    """The object now behind the old ``module.name``, with a :class:`DeprecationWarning` naming the new path.

    Raises:
        AttributeError: ``name`` was never a public name of ``module`` (the module's ordinary error).
    """
    if (module, name) not in RENAMED:
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    new_module, new_name = RENAMED[(module, name)]
    warnings.warn(
        f"{module}.{name} is deprecated and will be removed in 0.3; use {new_module}.{new_name}",
        DeprecationWarning,
        stacklevel=3,
    )
    return getattr(importlib.import_module(new_module), new_name)
