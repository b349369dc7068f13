"""The Hydra plumbing shared by ``liif-sr-train`` and ``liif-sr-eval`` (and nothing else).

* :func:`register_resolvers`: ``${liif_sr.or:a,b}`` (``a`` unless null/empty, else ``b``; used by
  ``conf/hydra/default.yaml`` for ``resume=<run dir>`` → ``hydra.run.dir``) and ``${liif_sr.single_run:v}``
  (``v``, or null in a multirun job: the quickstart's ``max_time``), registered on import;
* :func:`instantiate_group`: the entries with a ``_target_`` of a config group (loggers, callbacks);
* :func:`finish_wandb`: close the W&B run of a job (each job of a multirun gets its own run);
* :func:`restored_logging`: the root logger as it was before Hydra configured it for a run (its console and
  ``<task>.log`` handlers closed), so that a console entry called in-process (tests, notebooks) leaves no
  handler on a stream or run folder that outlives it;
* :func:`hydra_entry`: the console entry of a task: user errors (:class:`~liif_sr.errors.UserError`)
  print one line ``<prog>: error: <message>`` and exit with their code (2; 3 for a diverged training),
  like ``liif-sr``, also when Hydra's ``instantiate`` wrapped them (:func:`user_cause`, e.g. an unregistered
  model class); ``HYDRA_FULL_ERROR=1`` re-raises them for the full traceback; after a multirun whose
  jobs recorded failures (:mod:`liif_sr.training.job_failure`), one line and the number of failed jobs as
  exit code (:mod:`liif_sr.sweep_status`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from liif_sr.errors import UserError, report_user_error
from liif_sr.sweep_status import exit_for_failures

FULL_ERROR_ENV = "HYDRA_FULL_ERROR"


def register_resolvers() -> None:
    """Register liif-sr's OmegaConf resolvers once (idempotent)."""
    if not OmegaConf.has_resolver("liif_sr.or"):
        OmegaConf.register_new_resolver("liif_sr.or", lambda a, b: b if a in (None, "") else a)
    if not OmegaConf.has_resolver("liif_sr.single_run"):
        OmegaConf.register_new_resolver("liif_sr.single_run", single_run_value)


def single_run_value(value: Any) -> Any:
    """``${liif_sr.single_run:v}``: ``v`` in a single run, null in a job of a multirun (``-m``, Optuna):
    the quickstart's time bound is for a first run on a slow machine, a sweep's budget is the user's."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        return None
    return value


register_resolvers()


def full_error() -> bool:
    """Whether ``HYDRA_FULL_ERROR=1`` asks for tracebacks instead of one-line user errors."""
    return os.environ.get(FULL_ERROR_ENV) == "1"


def instantiate_group(group: DictConfig | None) -> list[Any]:
    """Instantiate every entry with a ``_target_`` of a config group (plain lists/dicts passed in)."""
    from hydra.utils import instantiate

    if not group:
        return []
    return [
        instantiate(c, _convert_="all")
        for c in group.values()
        if isinstance(c, DictConfig) and "_target_" in c
    ]


def finish_wandb() -> None:
    """``wandb.finish()`` if this process has an open W&B run (wandb is not imported otherwise)."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish()


def user_cause(exc: BaseException) -> UserError | None:
    """``exc`` if it is a :class:`UserError`, or the one that Hydra's ``instantiate`` wrapped (an
    ``InstantiationException`` raised ``from`` it, e.g. an unregistered model class); else None."""
    from hydra.errors import InstantiationException

    while isinstance(exc, InstantiationException) and exc.__cause__ is not None:
        exc = exc.__cause__
    return exc if isinstance(exc, UserError) else None


@contextlib.contextmanager
def restored_logging() -> Iterator[None]:
    """Within the block Hydra may configure logging (``hydra.job_logging``: a console handler on the
    ``sys.stdout`` of that moment, a file handler on the run's ``<task>.log``); after it the root logger has
    its previous handlers and level again and the handlers added meanwhile are closed. Without this, an
    in-process call left them attached: later log lines went to the finished run's log file and to a stream
    its caller may have closed since (``Logging error ... I/O operation on closed file``)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        for handler in list(root.handlers):
            if handler not in handlers:
                root.removeHandler(handler)
                handler.close()
        for handler in handlers:
            if handler not in root.handlers:
                root.addHandler(handler)
        root.setLevel(level)


def hydra_entry(
    prog: str,
    config_name: str,
    task: Callable[[DictConfig], Any],
    module: str,
    preflight: Callable[[Sequence[str]], Sequence[str] | None] | None = None,
) -> Callable[[], None]:
    """The console entry for ``task`` on ``conf/<config_name>.yaml``; the task's return value goes to
    Hydra (sweepers optimise it). ``module`` (the entry module, e.g. ``liif_sr.train``) is what Hydra sees
    as the caller, so ``hydra.job.name`` stays the entry's name (``train``, ``evaluate``) also under
    ``python -m``. ``preflight(argv)`` runs before Hydra creates the run folder (its user errors are one
    line too, and nothing is written); a command line it returns is what Hydra runs (a resume's)."""

    def user_error(exc: UserError) -> SystemExit:
        return SystemExit(report_user_error(prog, exc))

    def run_task(cfg: DictConfig) -> Any:
        try:
            return task(cfg)
        except Exception as exc:  # Hydra would print a traceback report; a multirun stops here
            cause = user_cause(exc)
            if cause is None or full_error():
                raise
            raise user_error(cause) from None
        finally:
            finish_wandb()

    run_task.__module__ = module  # Hydra: job name and config_path ("conf" of the liif_sr package)
    _hydra_main = hydra.main(version_base="1.3", config_path="conf", config_name=config_name)(run_task)

    def main() -> None:
        with restored_logging():
            _main()

    def _main() -> None:
        try:
            if preflight is not None:
                argv = preflight(sys.argv[1:])
                if argv is not None:
                    sys.argv[1:] = list(argv)
            _hydra_main()
        except UserError as exc:  # raised outside the task (e.g. while Hydra launches it)
            if full_error():
                raise
            raise user_error(exc) from None
        except SystemExit:  # e.g. Optuna's "No trials are completed yet" when every trial failed
            exit_for_failures(prog, stopped=True)
            raise
        except KeyboardInterrupt:  # Ctrl-C outside training (training's own: liif_sr.training.interrupt)
            if full_error():
                raise
            print(f"{prog}: interrupted", file=sys.stderr)
            raise SystemExit(130) from None
        exit_for_failures(prog)  # a multirun with failed jobs: one line, exit code = their number

    main.__doc__ = f"Console entry ``{prog}``: Hydra overrides; user errors print one line."
    return main
