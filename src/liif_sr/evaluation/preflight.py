"""Start-up checks of ``liif-sr-eval``: every value that cannot work is refused in one line **before** Hydra
creates the run folder ``logs/eval/runs/<time>/`` (issue 18, classes 2 and 4).

* :func:`check_options`: the config values alone (counts, scales, flags, choices, ``cell_clip``,
  ``head_mode``); :func:`~liif_sr.evaluation.runner.evaluate` runs it first, for API users;
* :func:`check_eval_start`: :func:`check_options` plus what the run refers to: the device exists, the
  benchmark sets are on disk (or ``skip_missing``), each checkpoint loads (on the CPU, ``head_mode`` applied);
* :func:`check_group_choices`: a config-group choice that does not exist (``benchmark=[bogus]``,
  ``logger=nope``) is one line instead of Hydra's multi-line error with exit 1; :func:`check_composes` does
  the same for any other override Hydra cannot apply (``bogus_key=1``);
* :func:`preflight`: the console entry's check, composing the config from the command line with Hydra's
  compose API as ``liif-sr-train`` does (:func:`liif_sr.training.preflight.preflight_argv`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from importlib import resources

from omegaconf import DictConfig, ListConfig, OmegaConf

from liif_sr.errors import UserError

DOWNSAMPLERS = ("pil", "matlab", "torch_antialias")
HEAD_MODES = ("fast", "plain")
_FLAGS = ("bicubic", "skip_missing", "ssim", "plot", "progress")


def _count(cfg: DictConfig, key: str, allow_none: bool) -> None:
    v = cfg.get(key)
    if v is None and allow_none:
        return
    if not isinstance(v, int) or isinstance(v, bool) or v < 1:
        null = " or null (all images)" if allow_none else ""
        raise UserError(f"{key}={v!r}: expected a positive integer{null}")


def _scales(cfg: DictConfig) -> None:
    from liif_sr.evaluation.benchmarks import normalize_scale

    scales = cfg.get("scales")
    if isinstance(scales, (ListConfig, list, tuple)) and len(scales) == 0:
        raise UserError("scales=[]: list at least one scale (or scales=null for each set's own)")
    for s in scales if isinstance(scales, (ListConfig, list, tuple)) else [] if scales is None else [scales]:
        try:
            normalize_scale(s)
        except UserError as exc:
            raise UserError(f"scales: {exc}") from None


def _cell_clip(cfg: DictConfig) -> None:
    from liif_sr.models.checks import check_cell_clip

    clip = cfg.get("cell_clip", "auto")
    if clip == "auto":
        return
    if isinstance(clip, str):
        raise UserError(f"cell_clip={clip!r}: expected auto, null (off) or a number >= 1 (e.g. 4)")
    try:
        check_cell_clip(clip)
    except UserError as exc:
        raise UserError(f"cell_clip={clip!r}: {exc}") from None


def check_options(cfg: DictConfig) -> None:
    """Refuse option values that would be used otherwise than meant (``first_k=0`` used to mean "all",
    ``cell_clip=off`` crashed after the evaluation had run)."""
    _count(cfg, "first_k", allow_none=True)
    _count(cfg, "chunk", allow_none=False)
    _scales(cfg)
    if cfg.get("border", "none") not in ("none", "replicate"):
        raise UserError(f"border={cfg.get('border')!r}: expected none or replicate")
    for key in _FLAGS:
        if not isinstance(cfg.get(key, True), bool):
            raise UserError(f"{key}={cfg.get(key)!r}: expected true or false")
    if cfg.get("downsampler", "pil") not in DOWNSAMPLERS:
        raise UserError(f"downsampler={cfg.get('downsampler')!r}: expected one of {', '.join(DOWNSAMPLERS)}")
    if cfg.get("generate_with") not in (None, *DOWNSAMPLERS):
        raise UserError(
            f"generate_with={cfg.get('generate_with')!r}: expected null or one of {', '.join(DOWNSAMPLERS)}"
        )
    if cfg.get("head_mode", "fast") not in HEAD_MODES:
        raise UserError(f"head_mode={cfg.get('head_mode')!r}: expected fast or plain")
    _cell_clip(cfg)


def check_eval_start(cfg: DictConfig) -> None:
    """Everything an evaluation needs, before anything is written (see the module docstring)."""
    from liif_sr.checkpoints import load_model, resolve_checkpoint
    from liif_sr.evaluation.runner import PRELOADED, checkpoint_files, checkpoint_names, load_specs
    from liif_sr.file_cache import hand_over, version
    from liif_sr.inference.devices import resolve_device

    check_options(cfg)
    resolve_device(cfg.get("device"), option="device=")
    load_specs(cfg, warn=False)
    checkpoint = cfg.get("checkpoint")
    checkpoint = OmegaConf.to_container(checkpoint) if OmegaConf.is_config(checkpoint) else checkpoint
    head_mode = cfg.get("head_mode", "fast")
    # loaded before the rows are named: a multirun job named from its weights then reads nothing more
    for resolved in dict.fromkeys(resolve_checkpoint(path) for path in checkpoint_files(checkpoint)):
        ver = version(resolved)
        model = load_model(resolved, device="cpu", head_mode=head_mode)
        hand_over(f"{PRELOADED}/{head_mode}", resolved, model, ver)  # the run takes it: the file is read once
    quiet = logging.getLogger("liif_sr.evaluate")
    quiet.disabled, was = True, quiet.disabled  # the run logs its warnings (e.g. jobs without weights) itself
    try:
        names = checkpoint_names(checkpoint)
    finally:
        quiet.disabled = was
    if not names and not cfg.get("bicubic", True):
        raise UserError("nothing to evaluate: give checkpoint=PATH or leave bicubic=true")


def _group_options(group: str) -> list[str] | None:
    """The options of config group ``group`` (``conf/<group>/*.yaml``), or None if it is no group."""
    folder = resources.files("liif_sr.conf").joinpath(group)
    if not folder.is_dir():
        return None
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def check_group_choices(argv: Sequence[str]) -> None:
    """Refuse a config-group choice that does not exist (``benchmark=[bogus]``) in one line."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    overrides = [a for a in argv if not a.startswith("-") and "=" in a]
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception:  # noqa: BLE001 - syntax errors are Hydra's to report
        return
    for o in parsed:
        group = o.key_or_group.lstrip("~+")
        if "/" in group or o.is_sweep_override() or o.package is not None:
            continue
        options = _group_options(group)
        value = o.value()
        if options is None or value is None:
            continue
        for name in value if isinstance(value, list) else [value]:
            if isinstance(name, str) and name not in options:
                raise UserError(
                    f"{o.input_line}: no {group} option {name!r} (choose from {', '.join(options)})"
                )


def check_composes(argv: Sequence[str]) -> None:
    """Compose ``eval.yaml`` with a plain command line (overrides only, no flags) as Hydra will; an override
    Hydra cannot apply (``bogus_key=1``, a syntax error) is one line instead of Hydra's multi-line report."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    if any(a.startswith("-") or "=" not in a for a in argv) or GlobalHydra.instance().is_initialized():
        return  # flags (-m, --cfg, -cn, ...): left to Hydra and to preflight_argv
    try:
        with initialize_config_module("liif_sr.conf", version_base="1.3"):
            compose("eval", overrides=list(argv))
    except Exception as exc:  # noqa: BLE001 - any composition error is the user's override
        from liif_sr.training.hydra_cli import type_error_message

        type_error = type_error_message(exc)  # a value of the wrong type (conf/schema.py EvalConfig)
        if type_error:
            raise UserError(type_error) from None
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        lines = [ln for ln in lines if not ln.startswith("Set the environment variable")][:3]
        raise UserError(f"cannot apply the overrides: {'; '.join(lines)}") from None
    finally:
        GlobalHydra.instance().clear()


def preflight(argv: Sequence[str]) -> None:
    """The check ``liif-sr-eval`` runs before Hydra creates the run folder (user errors: one line)."""
    from liif_sr.training.preflight import preflight_argv

    check_group_choices(argv)
    check_composes(argv)
    preflight_argv("eval", argv, check=check_eval_start)
