"""Start-up checks of a training run: every value that cannot work is refused, one line each, before anything
is built or written.

Two levels:

* :func:`check_config`: the config values alone: the value constraints (:mod:`~liif_sr.training.constraints`).
  Types are not checked here: the config groups have structured-config schemas (:mod:`liif_sr.conf.schema`),
  so Hydra refuses a wrong type while composing. ``train(cfg)`` runs it first, for API users.
* :func:`check_start`: :func:`check_config` plus what a start builds and refers to: the data module, network,
  optimizer, schedule and ``Trainer`` built without data or weights (:mod:`~liif_sr.training.dry_build`:
  torch and Lightning refuse their own values), ``resume=<run dir>`` / ``ckpt_path`` exist and hold the
  requested model, ``init_weights`` loads into it, and the data sources exist and are large enough
  (:mod:`liif_sr.data.source_check`).

``liif-sr-train`` runs :func:`check_start` from its console entry (:func:`preflight_argv`) **before**
``@hydra.main`` runs: Hydra creates the run folder, writes ``.hydra/*.yaml`` and opens ``train.log``
before the task function starts, so a check inside the task is too late to leave no folder behind. The
entry composes the same config from the same overrides with Hydra's compose API (a composition error,
e.g. a key the head does not have, is one line too); under ``-m`` every combination of the comma sweeps is
checked (up to :data:`MAX_SWEEP_JOBS`; the sweeper's own search spaces, e.g. ``hparams_search=lr_optuna``,
are checked at their base values) before the multirun folder exists.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from liif_sr.errors import UserError
from liif_sr.training.constraints import ConfigValueError, check_values
from liif_sr.training.dry_build import dry_build, first_line, requested_net_config
from liif_sr.training.hydra_cli import MAX_SWEEP_JOBS, parse_hydra_argv, sweep_jobs, type_error_message

__all__ = [
    "MAX_SWEEP_JOBS",
    "ConfigValueError",
    "check_config",
    "check_start",
    "preflight_argv",
    "requested_net_config",
]

_SKIP_FLAGS = ("help", "hydra_help", "version", "cfg", "info", "shell_completion", "experimental_rerun")


def check_config(cfg: DictConfig) -> None:
    """The config values alone: the value constraints (the types were checked by Hydra at composition,
    against the structured-config schemas of :mod:`liif_sr.conf.schema`)."""
    check_values(cfg)


# ------------------------------------------------------------------------------------------ references


def start_checkpoint(cfg: DictConfig) -> str | None:
    """The checkpoint a start continues (``resume``, ``ckpt_path`` file), refused if missing; ``last`` → None
    (its run folder is known only once Hydra runs; :func:`liif_sr.training.resume.resolve_ckpt_path`)."""
    from liif_sr.training.integrity import check_integrity
    from liif_sr.training.resume import is_sweep_dir

    resume = cfg.get("resume")
    if resume:
        run = Path(str(resume))
        if not run.is_dir():
            raise UserError(f"resume={resume}: no such run directory")
        if is_sweep_dir(run):  # each job's own checkpoint: checked by liif_sr.training.resume_plan
            return None
        from liif_sr.training.resume import resume_point

        last = resume_point(run, f"resume={resume}")
        if last is None:
            raise UserError(f"resume={resume}: no checkpoints/last.ckpt in that run directory")
        return str(last)
    ckpt = cfg.get("ckpt_path")
    if ckpt and ckpt != "last":
        if not Path(str(ckpt)).is_file():
            raise UserError(f"ckpt_path={ckpt}: file not found")
        check_integrity(ckpt, f"ckpt_path={ckpt}")
        return str(ckpt)
    return None


def planned_run_dir(cfg: DictConfig) -> Path | None:
    """The folder Hydra will run this job in, from ``cfg.hydra`` (composed with ``return_hydra_config``;
    ``hydra.job.num`` set for a multirun job); None when it cannot be known here."""
    hydra = cfg.get("hydra")
    if hydra is None:
        return None
    try:
        if hydra.get("mode") is not None and str(hydra.mode).endswith("MULTIRUN"):
            return Path(str(hydra.sweep.dir)) / str(hydra.sweep.subdir)
        return Path(str(hydra.run.dir))
    except Exception:  # noqa: BLE001 - an interpolation only Hydra's run can resolve
        return None


def check_last(cfg: DictConfig) -> None:
    """``ckpt_path=last`` (without ``resume``) continues the last.ckpt of the run folder Hydra will create:
    refused when that folder has none (a new run's timestamped folder never has)."""
    if cfg.get("resume") or cfg.get("ckpt_path") != "last":
        return
    run = planned_run_dir(cfg)
    if run is not None and not (run / "checkpoints" / "last.ckpt").is_file():
        raise UserError(
            f"ckpt_path=last: no checkpoints/last.ckpt in this run directory ({run}: a new run folder); "
            "use resume=<previous run dir> to continue a previous run"
        )


#: the model :func:`check_init_weights` loaded, handed to the run (``liif_sr.train.init_weights``)
INIT_WEIGHTS = "init-weights"


def check_init_weights(cfg: DictConfig, config: dict[str, Any]) -> None:
    """``init_weights`` (used only when nothing is continued) loads into the requested network. The loaded
    model is handed to the run (:func:`liif_sr.file_cache.hand_over`): the file is read once per process, also
    for the jobs of a sweep that start from it with the same network."""
    from liif_sr.checkpoints import load_model, resolve_checkpoint
    from liif_sr.errors import CheckpointError
    from liif_sr.file_cache import hand_over, take, version

    source = cfg.get("init_weights")
    if not source or cfg.get("resume") or cfg.get("ckpt_path"):
        return
    try:
        path = resolve_checkpoint(str(source))
        ver = version(path)
        model = take(INIT_WEIGHTS, path)  # an earlier job of this sweep loaded it
        if model is None or model.config != config:
            model = load_model(path, expect=config)
    except CheckpointError as exc:
        raise UserError(f"init_weights={source}: {exc}") from None
    hand_over(INIT_WEIGHTS, path, model, ver)


def check_start(cfg: DictConfig) -> None:
    """Everything a start needs, before anything is built or written (see the module docstring)."""
    from liif_sr.checkpoints import check_matches
    from liif_sr.data.source_check import check_data_sources
    from liif_sr.errors import CheckpointError

    check_config(cfg)
    if cfg.get("hydra") is not None and cfg.get("trainer") is not None:  # composed by preflight_argv
        from liif_sr.training.launch import check_launch_values

        multirun = str(cfg.hydra.get("mode")).endswith("MULTIRUN")
        check_launch_values(cfg, multirun, str(cfg.hydra.runtime.choices.get("hydra/launcher", "basic")))
    ckpt = start_checkpoint(cfg)
    check_last(cfg)
    run = planned_run_dir(cfg)
    config = dry_build(cfg, str(run) if run is not None else None)
    if ckpt:
        try:
            check_matches(ckpt, config)
        except CheckpointError as exc:
            if ": checkpoint has " not in str(exc):  # unreadable or damaged: its own message, no model advice
                raise
            raise CheckpointError(
                f"{exc}; pass the model options the run was trained with, or start a new run"
            ) from None
    check_init_weights(cfg, config)
    check_data_sources(OmegaConf.to_container(cfg.data, resolve=True))  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------ the entry


def preflight_argv(
    config_name: str, argv: Sequence[str], check: Callable[[DictConfig], None] = check_start
) -> None:
    """Compose ``conf/<config_name>.yaml`` from a command line as Hydra will, and ``check`` each job's config.

    Command lines this cannot read the same way Hydra does (``--help``, ``--cfg``, ``-cn``/``-cp``/``-cd``,
    a parse or composition error) are left to Hydra, which writes nothing for them either. Raises
    :class:`UserError` (the entry prints it as one line)."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    try:
        args = parse_hydra_argv(argv)
    except SystemExit:  # argparse's own usage error: Hydra prints it
        return
    if any(getattr(args, k, None) for k in _SKIP_FLAGS) or args.config_name or args.config_path:
        return
    if getattr(args, "config_dir", None):
        return
    if GlobalHydra.instance().is_initialized():
        return
    multirun = bool(args.multirun) or _config_multirun(config_name, list(args.overrides))
    try:
        jobs = sweep_jobs(list(args.overrides), multirun)
    except Exception:  # noqa: BLE001 - Hydra reports override syntax errors itself
        return
    for num, overrides in enumerate(jobs):
        try:
            with initialize_config_module("liif_sr.conf", version_base="1.3"):
                cfg = compose(config_name, overrides=overrides, return_hydra_config=True)
        except Exception as exc:  # noqa: BLE001 - Hydra would report it in several lines, exit 1
            job = f" (job {num}: {' '.join(overrides)})" if len(jobs) > 1 else ""
            raise UserError(f"{_composition_error(exc)}{job}") from None
        finally:
            GlobalHydra.instance().clear()
        if multirun:
            with open_dict(cfg):
                cfg.hydra.job.num = num
                cfg.hydra.mode = "MULTIRUN"
        check(cfg)


def _config_multirun(config_name: str, overrides: list[str]) -> bool:
    """Whether the config itself asks for a multirun (``hparams_search=...`` sets ``hydra.mode=MULTIRUN``):
    sweep overrides such as ``choice(...)`` then need no ``-m``. Composed without them; False when unknown."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
        if not any(o.is_sweep_override() for o in parsed):
            return False
        fixed = [o.input_line for o in parsed if not o.is_sweep_override() and o.input_line]
        with initialize_config_module("liif_sr.conf", version_base="1.3"):
            cfg = compose(config_name, overrides=fixed, return_hydra_config=True)
        return str(cfg.hydra.get("mode")).endswith("MULTIRUN")
    except Exception:  # noqa: BLE001 - composition errors are reported by the per-job compose
        return False
    finally:
        GlobalHydra.instance().clear()


def _composition_error(exc: BaseException) -> str:
    """Hydra's composition error in one line: its first line, plus the options it lists; a value of the
    wrong type (the schemas of :mod:`liif_sr.conf.schema`) → ``<override>: <what OmegaConf expected>``."""
    type_error = type_error_message(exc)
    if type_error:
        return type_error
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    if not lines:
        return first_line(exc)
    message = lines[0]
    raw = str(exc).splitlines()
    start = next((i for i, ln in enumerate(raw) if ln.startswith("Available options")), None)
    if start is not None:
        options = []
        for ln in raw[start + 1 :]:
            if not ln.startswith(("\t", " ")) or not ln.strip():
                break
            if not ln.strip().startswith("_"):  # the structured-config schemas (liif_sr.conf.schema)
                options.append(ln.strip())
        message += f" (available: {', '.join(options)})"
    elif message.startswith("Could not override") and len(lines) > 1:
        message += " " + lines[1]
    return message
