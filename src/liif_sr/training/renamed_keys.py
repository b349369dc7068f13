"""Config keys and group options renamed by issue 19 (one release, 0.2.x): old command lines keep working.

``model.fast.*`` (training speed) is now ``model.speed.*`` and ``trainer=gpu_fast`` is ``trainer=gpu_speed``
(``fast`` alone now means a head's factorised query path, ``model.head.fast``). :func:`upgrade_overrides`
rewrites the old spellings in a ``liif-sr-train`` command line — the user's and a resumed run's own overrides —
with one warning line each, before anything composes; ``conf/trainer/gpu_fast.yaml`` stays as an alias for
configs that name it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

log = logging.getLogger(__name__)

#: old override spelling (a regex on the key part, after any ``+``/``++``/``~`` prefix) → new spelling
RENAMED_KEYS: dict[str, str] = {
    r"model\.fast(?=[.=]|$)": "model.speed",
    r"trainer=gpu_fast$": "trainer=gpu_speed",
}


def upgrade_override(arg: str) -> str:
    """``arg`` with a renamed key or option replaced by its new name (a warning names both), else as given."""
    prefix = re.match(r"^(\+\+|\+|~)?", arg).group(0)  # type: ignore[union-attr]
    body = arg[len(prefix) :]
    key, eq, value = body.partition("=")
    for old, new in RENAMED_KEYS.items():
        if "=" in new:  # a group option: the whole "group=option" must match
            if re.fullmatch(old, body):
                log.warning("%s is deprecated (removed in 0.3): using %s", body, new)
                return prefix + new
        elif re.match(old, key):
            new_key = re.sub(old, new, key, count=1)
            log.warning("%s is deprecated (removed in 0.3): using %s", key, new_key)
            return prefix + new_key + eq + value
    return arg


def upgrade_overrides(argv: Sequence[str]) -> list[str]:
    """Every override of ``argv`` through :func:`upgrade_override` (flags such as ``-m`` pass unchanged)."""
    return [arg if arg.startswith("-") else upgrade_override(arg) for arg in argv]
