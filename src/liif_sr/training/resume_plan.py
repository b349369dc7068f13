"""The command line of a resume, decided before Hydra writes anything (``docs/resume.md``).

``liif-sr-train resume=R [changes]`` (``R`` a run folder) continues ``R`` with the overrides ``R`` was started
with (``R/.hydra/overrides.yaml``) plus the changes given now. ``liif-sr-train resume=S [changes]`` (``S`` a
multirun folder, with or without ``-m``) re-launches the sweep recorded in ``S/multirun.yaml`` into ``S``:
every job continues its own folder ``S/<n>``, finished jobs are left alone, jobs that never started start.

Refused in one line, before anything is written: ``-m`` with ``resume=<run folder>`` (every job would
continue that one run), a swept or interpolated ``resume``, a sweep whose job folders do not hold the jobs
of the recorded sweep, an Optuna (or any non-grid) sweep, changes that would make the checkpoint mean
something else (:mod:`liif_sr.training.resume_changes`), limits below what the run trained, a damaged
checkpoint, a folder another process is training in. A resume with nothing left to train prints why and
exits 0 without touching the folder.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from liif_sr.errors import UserError
from liif_sr.training import integrity, run_lock
from liif_sr.training.resume import (
    SWEEP_FILE,
    furthest_checkpoint,
    is_sweep_dir,
    keep_hydra_files,
    nothing_left,
    read_progress,
    resume_point,
)
from liif_sr.training.resume_changes import compose_train, merge_overrides, parse, refuse_changes

PROG = "liif-sr-train"
#: recorded keys a resume of one run replaces or drops (a trial of an Optuna sweep resumes as one run)
_DROP = ("resume", "ckpt_path", "hparams_search", "hydra/sweeper")
_SWEEP_KEYS = ("hparams_search", "hydra/sweeper")


def _say(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr)


def _key(override: Any) -> str:
    return override.key_or_group + (f"@{override.package}" if override.package else "")


def _recorded(lines: list[str] | None) -> list[str]:
    """Recorded task overrides without the ones a resume sets itself."""
    return [o.input_line for o in parse(list(lines or [])) if _key(o).lstrip("+~") not in _DROP]


def plan(argv: Sequence[str]) -> list[str]:
    """The command line Hydra should run for ``argv`` (unchanged unless it holds ``resume=``).

    The run (or sweep) folder stays locked for this process; a refusal releases it."""
    try:
        return _plan(list(argv))
    except BaseException:
        run_lock.release_all()
        raise


def _plan(argv: list[str]) -> list[str]:
    multirun = any(a in ("-m", "--multirun") for a in argv)
    if any(a.startswith("-") and a not in ("-m", "--multirun") for a in argv):
        return argv  # --help, --cfg, -cn ...: Hydra's own
    try:
        overrides = parse([a for a in argv if not a.startswith("-")])
    except Exception:  # noqa: BLE001 - Hydra reports syntax errors itself (nothing written)
        return argv
    # a sweep from the config too: hparams_search=..., hydra.mode=MULTIRUN, hydra/sweeper=...
    by_config = any(
        _key(o).lstrip("+") in _SWEEP_KEYS or o.input_line.replace(" ", "") == "hydra.mode=MULTIRUN"
        for o in overrides
    )
    resume = [o for o in overrides if _key(o).lstrip("+") == "resume"]
    if not resume:
        _refuse_one_checkpoint_for_many(overrides, multirun, by_config)
        return argv
    line = resume[-1]
    if line.is_sweep_override():
        raise UserError(
            f"{line.input_line}: resume cannot be swept; resume a whole sweep with resume=<multirun folder>"
        )
    value = line.value()
    if value in (None, ""):
        return argv
    if "${" in str(value):
        raise UserError(
            f"resume={value}: name the run folder (or multirun folder) to continue as a path; an "
            "interpolation cannot name a previous run"
        )
    target = Path(str(value))
    if not target.is_dir():
        raise UserError(f"resume={value}: no such run directory")
    changes = [o for o in overrides if o is not line and _key(o).lstrip("+") != "resume"]
    if is_sweep_dir(target):
        return _plan_sweep(target, str(value), changes)
    if multirun or by_config:
        raise UserError(
            f"a sweep (-m, hparams_search, hydra.mode=MULTIRUN) with resume={value}: every job of the sweep "
            "would continue that one run's checkpoint; "
            f"resume a whole sweep with resume=<its multirun folder>, one job with resume={value} (no -m)"
        )
    return _plan_run(target, str(value), changes)


def _refuse_one_checkpoint_for_many(overrides: list[Any], multirun: bool, by_config: bool) -> None:
    """A sweep of several jobs (``-m`` grid, an Optuna search) with one fixed ``ckpt_path``: every job would
    continue the same checkpoint (weights, optimizer state and LR: swept optimizer values would be ignored)."""
    from liif_sr.training.hydra_cli import sweep_jobs

    fixed = [o for o in overrides if _key(o).lstrip("+") == "ckpt_path" and not o.is_sweep_override()]
    if not (multirun or by_config) or not fixed or fixed[-1].value() in (None, "", "last"):
        return
    if by_config or len(sweep_jobs([o.input_line for o in overrides], True)) > 1:
        value = fixed[-1].value()
        raise UserError(
            f"a sweep with ckpt_path={value}: every job of the sweep would continue that one checkpoint (its weights, "
            f"optimizer state and LR; swept optimizer values would be ignored); start each job from its weights "
            f"with init_weights={value}, or resume a sweep with resume=<multirun folder>"
        )


# ------------------------------------------------------------------------------------------ one run


def _run_overrides(run: Path) -> list[str] | None:
    path = run / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return None
    try:
        lines = yaml.safe_load(path.read_text())
    except yaml.YAMLError:
        return None
    return [str(x) for x in lines] if isinstance(lines, list) else []


def _check_checkpoint(last: Path, cfg: Any, what: str) -> str | None:
    """Integrity and limits of the checkpoint a run continues under ``cfg``; why nothing is left (or None)."""
    integrity.check_integrity(last, what)
    done = read_progress(last)
    return None if done is None else nothing_left(cfg.trainer, done, what)


def _plan_run(run: Path, value: str, changes: list[Any]) -> list[str]:
    what = f"resume={value}"
    last = resume_point(run, what)
    if last is None:
        raise UserError(f"{what}: no checkpoints/last.ckpt in that run directory")
    run_lock.hold(run, what)
    if is_sweep_dir(run.parent):  # one job of a sweep: not while the whole sweep is being resumed
        run_lock.hold(run.parent, what, shared=True)
    # a job killed mid-write leaves temp files; a run with nothing left to train saves nothing to sweep them
    integrity.remove_stale_temps(run / "checkpoints")
    task = [o.input_line for o in changes if not o.is_hydra_override()]
    hydra = [o.input_line for o in changes if o.is_hydra_override()]
    recorded = _run_overrides(run)
    if recorded is None:  # a folder written without Hydra (the API): the command line as given
        cfg = compose_train(task, what)
        new = [*task, f"resume={value}", *hydra]
    else:
        base = _recorded(recorded)
        merged = merge_overrides(base, task)
        cfg = compose_train(merged, what)
        refuse_changes(compose_train(base, what), cfg, what, run)
        new = [*merged, f"resume={value}", *hydra]
    new.append("hydra.mode=RUN")  # one run, also when the run was a trial of a sweep
    why = _check_checkpoint(last, cfg, what)
    if why is not None:
        _say(f"{what}: {why}; nothing to do (raise the limit to train on)")
        raise SystemExit(0)
    return new


# ------------------------------------------------------------------------------------------ a sweep


def _values(lines: list[str]) -> dict[str, Any]:
    return {_key(o).lstrip("+"): o.value() for o in parse(lines)}


def _plan_sweep(sweep: Path, value: str, changes: list[Any]) -> list[str]:
    from liif_sr.training.hydra_cli import sweep_jobs

    what = f"resume={value}"
    if not (sweep / SWEEP_FILE).is_file():  # Optuna writes none: its trials are not recorded as a grid
        raise UserError(
            f"{what}: no {SWEEP_FILE} in that multirun folder (an Optuna sweep?): its trials cannot be "
            f"re-created job by job; resume one trial with resume={value}/<job number>, or start a new sweep"
        )
    try:
        recorded = yaml.safe_load((sweep / SWEEP_FILE).read_text())["hydra"]
        task, hydra = list(recorded["overrides"]["task"]), list(recorded["overrides"]["hydra"])
        sweeper = str((recorded.get("sweeper") or {}).get("_target_", ""))
        subdir = str((recorded.get("sweep") or {}).get("subdir", "${hydra.job.num}"))
    except (yaml.YAMLError, KeyError, TypeError) as exc:
        raise UserError(f"{what}: {sweep / SWEEP_FILE} is not a Hydra multirun record ({exc})") from None
    if not sweeper.endswith("BasicSweeper"):
        raise UserError(
            f"{what}: the sweep was run by {sweeper.rsplit('.', 1)[-1] or 'another sweeper'}, "
            "whose trials cannot be re-created job by job; resume one trial with "
            f"resume={value}/<job number>, or start a new sweep"
        )
    if subdir != "${hydra.job.num}":
        raise UserError(
            f"{what}: the sweep's job folders are named by hydra.sweep.subdir={subdir}; resume=<multirun "
            f"folder> needs the default (the job number); resume its jobs one by one with resume={value}/<folder>"
        )
    bad = [
        o.input_line
        for o in changes
        if o.is_sweep_override() or _key(o) in ("hparams_search", "hydra/sweeper")
    ]
    if bad:
        raise UserError(
            f"{what}: {bad[0]}: a resumed sweep keeps its recorded jobs; start a new sweep to change them"
        )
    run_lock.hold(sweep, what)
    base = _recorded(task)
    swept = {_key(o).lstrip("+") for o in parse(base) if o.is_sweep_override()}
    jobs = [_recorded(j) for j in sweep_jobs(base, True)]
    _check_job_folders(sweep, jobs, swept, what)
    new_task = [o.input_line for o in changes if not o.is_hydra_override()]
    states = []
    for n, job in enumerate(jobs):
        cfg = compose_train(merge_overrides(job, new_task), what)
        refuse_changes(compose_train(job, what), cfg, what, sweep / str(n))
        states.append(_job_state(sweep / str(n), cfg, f"{what} (job {n})"))
    if all(s.startswith("finished") for s in states):
        _say(f"{what}: all {len(jobs)} jobs are finished; nothing to do (raise the limit to train on)")
        raise SystemExit(0)
    _say(f"resuming the sweep {sweep}: " + "; ".join(f"job {n} {s}" for n, s in enumerate(states)))
    keep_hydra = [h for h in hydra if not h.startswith(("hydra.sweep.dir=", "hydra.mode="))]
    user_hydra = [o.input_line for o in changes if o.is_hydra_override()]
    return [
        "-m",
        *merge_overrides(base, new_task),
        f"resume={value}",
        *keep_hydra,
        f"hydra.sweep.dir={sweep}",
        *user_hydra,
    ]


def _check_job_folders(sweep: Path, jobs: list[list[str]], swept: set[str], what: str) -> None:
    """Each existing ``<sweep>/<n>`` must have run job ``n`` of the recorded sweep (no cross-over)."""
    folders = [p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit()]
    extra = sorted((p for p in folders if int(p.name) >= len(jobs)), key=lambda p: int(p.name))
    if extra:
        raise UserError(f"{what}: {extra[0]} is not one of the {len(jobs)} jobs recorded in {SWEEP_FILE}")
    for n, job in enumerate(jobs):
        folder = sweep / str(n)
        run_lock.probe(folder, what)  # a job resumed alone right now
        ran = _run_overrides(folder)
        if ran is None:
            if furthest_checkpoint(folder) is not None:
                raise UserError(
                    f"{what}: {folder} has a checkpoint but no .hydra/overrides.yaml: which job it ran is unknown"
                )
            continue
        want, have = _values(job), _values(_recorded(ran))
        for key in sorted(swept):
            if want.get(key) != have.get(key):
                raise UserError(
                    f"{what}: {folder} ran {key}={have.get(key)} but job {n} of the sweep is {key}={want.get(key)}; "
                    "the folders do not hold the recorded jobs"
                )


def _job_state(folder: Path, cfg: Any, what: str) -> str:
    from liif_sr.checkpoints import check_matches
    from liif_sr.training.preflight import requested_net_config

    last = resume_point(folder, what)
    if last is None:
        return "starts"
    why = _check_checkpoint(last, cfg, what)
    if why is not None:
        keep_hydra_files(folder)
        return f"{why} (left alone)"
    check_matches(last, requested_net_config(cfg))
    done = read_progress(last)
    return "continues" + (f" from epoch {done.epochs}, step {done.steps}" if done else "")
