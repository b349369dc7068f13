"""``liif-sr-train -m ... dry_run=true``: check a launch without running or submitting anything.

Composes every job of the command line (each combination of its ``a,b`` / ``range()`` sweeps; a sweeper's
own search space, e.g. ``hparams_search=lr_optuna``, at its base values) as Hydra will, runs the start-up
checks of each (:func:`liif_sr.training.preflight.check_config`, :func:`liif_sr.training.launch.check_launch`),
and prints, per job, its overrides, run name, trainer set-up and — with a SLURM launcher
(``hydra/launcher=slurm``) — the ``sbatch`` options submitit would request. Nothing is written, nothing is
submitted, no cluster is needed; exit 0, or the one-line error of the first job that would be refused.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Sequence
from typing import Any

from omegaconf import DictConfig, OmegaConf

FLAG = "dry_run"
#: submitit launcher option → sbatch option (what ``hydra/launcher=slurm`` requests per job)
SBATCH = {
    "nodes": "--nodes", "tasks_per_node": "--ntasks-per-node", "gpus_per_node": "--gpus-per-node",
    "cpus_per_task": "--cpus-per-task", "timeout_min": "--time", "partition": "--partition",
    "account": "--account", "qos": "--qos", "constraint": "--constraint", "exclude": "--exclude",
    "gres": "--gres", "comment": "--comment", "name": "--job-name",
}  # fmt: skip


def dry_run_requested(argv: Sequence[str]) -> bool:
    """Whether the command line sets ``dry_run=true``."""
    return any(a.lstrip("+") in (f"{FLAG}=true", f"{FLAG}=True") for a in argv)


def expand_jobs(overrides: Sequence[str]) -> list[list[str]]:
    """The override lists of the jobs of ``-m overrides``: the cartesian product of its sweep overrides."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(list(overrides))
    choices = []
    for o in parsed:
        prefix = {"ADD": "+", "FORCE_ADD": "++", "DEL": "~"}.get(o.type.name, "")
        key = f"{prefix}{o.get_key_element()}"
        if o.is_sweep_override():
            choices.append([f"{key}={v}" for v in o.sweep_string_iterator()])
        else:
            choices.append([o.input_line])
    return [list(job) for job in itertools.product(*choices)]


def sbatch_options(launcher: DictConfig) -> list[str]:
    """The ``sbatch`` options of a submitit SLURM launcher config (``--signal`` from ``signal_delay_s``)."""
    conf = OmegaConf.to_container(launcher, resolve=True)
    options = [f"{flag}={conf[key]}" for key, flag in SBATCH.items() if conf.get(key) not in (None, "")]
    if conf.get("mem_gb"):
        options.append(f"--mem={conf['mem_gb']}G")
    if conf.get("signal_delay_s"):
        options.append(f"--signal=USR2@{conf['signal_delay_s']}")
    options += [f"--{k.replace('_', '-')}={v}" for k, v in (conf.get("additional_parameters") or {}).items()]
    return options


def _describe(num: int, overrides: list[str], cfg: DictConfig, swept: list[str]) -> list[str]:
    from liif_sr.training.run_name import RunIdentity, job_values

    choices = cfg.hydra.runtime.choices
    identity = RunIdentity(
        choices.get("model/encoder"), choices.get("model/head"), job_values(overrides, swept)
    )
    t = cfg.trainer
    lines = [
        f"job {num}: {' '.join(overrides) or '(no overrides)'}",
        f"  run name: {identity.name}",
        f"  trainer: strategy={t.get('strategy', 'auto')} accelerator={t.accelerator} devices={t.devices} "
        f"num_nodes={t.get('num_nodes', 1)} max_epochs={t.max_epochs} max_steps={t.max_steps} "
        f"max_time={t.max_time}; data.batch_size={cfg.data.batch_size} (global)",
    ]
    if str(cfg.hydra.launcher.get("_target_", "")).endswith("SlurmLauncher"):
        lines.append("  sbatch " + " ".join(sbatch_options(cfg.hydra.launcher)))
    return lines


def print_plan(argv: Sequence[str], config_name: str = "train", out: Any = None) -> int:
    """Compose and check every job of ``argv`` (``dry_run=true`` removed); print the plan; return the jobs."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import open_dict, read_write

    from liif_sr.training.launch import check_launch
    from liif_sr.training.preflight import check_config
    from liif_sr.training.run_name import swept_keys

    out = out or sys.stdout
    multirun = any(a in ("-m", "--multirun") for a in argv)
    overrides = [a for a in argv if not a.startswith("-") and not dry_run_requested([a])]
    jobs = expand_jobs(overrides) if multirun else [overrides]
    swept = swept_keys(overrides) if multirun else []
    lines: list[str] = []
    for num, job in enumerate(jobs):
        GlobalHydra.instance().clear()
        with initialize_config_module("liif_sr.conf", version_base="1.3"):
            cfg = compose(config_name, overrides=job, return_hydra_config=True)
        GlobalHydra.instance().clear()
        with read_write(cfg.hydra), open_dict(cfg.hydra):
            cfg.hydra.mode = RunMode.MULTIRUN if multirun else RunMode.RUN
            cfg.hydra.job.num = num
        HydraConfig().set_config(cfg)
        check_config(cfg)
        check_launch(cfg)
        if num == 0:
            folder = cfg.hydra.sweep.dir if multirun else cfg.hydra.run.dir
            launcher = cfg.hydra.runtime.choices.get("hydra/launcher", "basic")
            lines += [f"dry run: {len(jobs)} job(s), launcher {launcher}, into {folder}; nothing run, written "
                      "or submitted"]  # fmt: skip
        lines += _describe(num, job, cfg, swept)
    print("\n".join(lines), file=out)
    return len(jobs)
