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
