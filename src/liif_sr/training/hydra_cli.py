"""The command line as ``@hydra.main`` will read it, for the start-up checks that run before Hydra does.

The only module of liif-sr that touches a private Hydra API, and only one function of it:
:func:`parse_hydra_argv` calls ``hydra._internal.utils.get_args_parser``. Hydra has no public way to parse
its own command line (flags ``-m``, ``--cfg``, ``-cn``... and the overrides) without running the app, and
the console entries must read it exactly as ``@hydra.main`` will, **before** Hydra creates a run folder
(:func:`liif_sr.training.preflight.preflight_argv`). Re-implementing the flags would drift from Hydra's.

The jobs of a ``-m`` comma sweep are expanded with public API: the override grammar
(``hydra.core.override_parser.overrides_parser.OverridesParser``) and the basic sweeper found through
Hydra's plugin registry (``hydra.core.plugins.Plugins``), whose ``split_arguments`` is a public static method.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

#: at most this many jobs of a ``-m`` sweep are composed and checked before Hydra starts
MAX_SWEEP_JOBS = 256


def parse_hydra_argv(argv: Sequence[str]) -> argparse.Namespace:
    """Hydra's reading of ``argv`` (raises ``SystemExit`` on an argparse usage error, as Hydra would)."""
    from hydra._internal.utils import get_args_parser  # no public equivalent: see the module docstring

    return get_args_parser().parse_args(list(argv))


def _basic_sweeper() -> Any:
    from hydra.core.plugins import Plugins
    from hydra.plugins.sweeper import Sweeper

    return next(c for c in Plugins.instance().discover(Sweeper) if c.__name__ == "BasicSweeper")


def sweep_jobs(overrides: list[str], multirun: bool) -> list[list[str]]:
    """The override lists of the jobs Hydra will run: one, or each combination of a ``-m`` comma sweep
    (the first :data:`MAX_SWEEP_JOBS`); a sweep the basic sweeper cannot expand → its fixed part."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    if not multirun or not any(o.is_sweep_override() for o in parsed):
        return [overrides]
    try:
        jobs = _basic_sweeper().split_arguments(parsed, None)[0]
    except Exception:  # noqa: BLE001 - e.g. an interval sweep: check the fixed part
        return [[o.input_line for o in parsed if not o.is_sweep_override() and o.input_line]]
    return jobs[:MAX_SWEEP_JOBS]


def type_error_message(exc: BaseException) -> str | None:
    """``data.batch_size=abc: expected an integer (Value 'abc' of type 'str' could not be converted to
    Integer)`` from Hydra's "Error merging override" and OmegaConf's ``ValidationError`` behind it."""
    from omegaconf.errors import ValidationError

    cause = exc.__cause__
    if not isinstance(cause, ValidationError):
        return None
    reason = next((ln.strip() for ln in str(cause).splitlines() if ln.strip()), type(cause).__name__)
    key = getattr(cause, "full_key", None)
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    where = message.removeprefix("Error merging override ") if "override" in message else (key or message)
    if "=" not in where and key:
        where = f"{key} ({where})" if where and where != key else key
    expected = next((v for k, v in _EXPECTED.items() if k in reason), None)
    return f"{where}: {expected} ({reason})" if expected else f"{where}: {reason}"


#: OmegaConf's conversion messages → the project's wording
_EXPECTED = {
    "converted to Integer": "expected an integer",
    "converted to Float": "expected a number",
    "converted to Boolean": "expected true or false",
    "is not a valid bool": "expected true or false",
    "is not a ListConfig, list or tuple": "expected a list",
    "converted to String": "expected a string",
}
