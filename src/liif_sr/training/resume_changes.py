"""What a resume may change: the run's recorded overrides + the changes given now, and the values that must not
differ from the run's own (``docs/resume.md``).

A checkpoint was trained with one data pipeline, model, loss and optimizer; continuing it with other values
would give a run that is neither the old one nor a new one (``val/psnr`` measured at other scales, another
batch size). A resume may change only how long and where it trains and what it logs
(:data:`MAY_CHANGE`); model differences are left to the checkpoint check, which names them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from liif_sr.errors import UserError

#: keys (and key prefixes ending in ".") a resume may change
MAY_CHANGE = (
    "trainer.",
    "logger.",
    "callbacks.",
    "paths.",
    "tags",
    "export_weights",
    "optimized_metric",
    "data.num_workers",
    "data.pin_memory",
    "data.persistent_workers",
    "data.sampler",
    "resume",
    "ckpt_path",
    "init_weights",
)
#: ... except these, which change what a training step does
MUST_KEEP = (
    "trainer.accumulate_grad_batches",
    "trainer.gradient_clip_val",
    "trainer.gradient_clip_algorithm",
)
#: left to the checkpoint check (it names the difference of the model)
_MODEL = ("model.encoder.", "model.head.")


def parse(lines: list[str]) -> list[Any]:
    """Hydra's parsed overrides of ``lines``."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create().parse_overrides(list(lines))


def _key(o: Any) -> str:
    return o.key_or_group + (f"@{o.package}" if o.package else "")


def merge_overrides(recorded: list[str], changes: list[str]) -> list[str]:
    """``recorded`` with each key given in ``changes`` replaced in place (keeping a recorded ``+``), new
    keys appended, ``~key`` removing the recorded one."""
    from hydra.core.override_parser.types import OverrideType

    out = {_key(o).lstrip("+~"): o.input_line for o in parse(recorded)}
    prefix = {
        _key(o).lstrip("+~"): o.input_line[: len(o.input_line) - len(o.input_line.lstrip("+~"))]
        for o in parse(recorded)
    }
    for o in parse(changes):
        key = _key(o).lstrip("+~")
        if o.type == OverrideType.DEL:
            out.pop(key, None)
            continue
        if key in out:
            out[key] = prefix[key] + o.input_line.lstrip("+~")
        else:
            out[key] = o.input_line
    return list(out.values())


def compose_train(overrides: list[str], what: str) -> DictConfig:
    """``conf/train.yaml`` composed from ``overrides`` (one-line :class:`UserError` if it does not compose)."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    try:
        with initialize_config_module("liif_sr.conf", version_base="1.3"):
            return compose("train", overrides=list(overrides))
    except Exception as exc:  # noqa: BLE001 - a composition error, said in one line
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"{what}: the run's overrides with yours do not compose: {first}") from None
    finally:
        GlobalHydra.instance().clear()


def _leaves(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for k, v in node.items():
            out.update(_leaves(v, f"{prefix}{k}."))
        return out if node else {prefix[:-1]: {}}
    return {prefix[:-1]: node}


def _may_change(key: str) -> bool:
    if key.startswith(_MODEL):
        return True
    if key in MUST_KEEP:
        return False
    return any(key == k or (k.endswith(".") and key.startswith(k)) for k in MAY_CHANGE)


def changed(before: DictConfig, after: DictConfig) -> dict[str, tuple[Any, Any]]:
    """``key → (before, after)`` of every leaf value that differs (interpolations compared as written)."""
    a = _leaves(OmegaConf.to_container(before, resolve=False))
    b = _leaves(OmegaConf.to_container(after, resolve=False))
    return {k: (a.get(k), b.get(k)) for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)}


def _show(value: Any, inner: bool = False) -> str:
    """A value as written (``[2, 3]``, not ``[2.0, 3.0]``: the schemas store scales as floats)."""
    if isinstance(value, float) and value.is_integer():
        return f"{value:g}"
    if isinstance(value, list):
        return "[" + ", ".join(_show(v, inner=True) for v in value) + "]"
    return repr(value) if inner else str(value)


def refuse_changes(before: DictConfig, after: DictConfig, what: str, run: Path) -> None:
    """Refuse (one line) changes outside :data:`MAY_CHANGE` between the run's config and the resume's."""
    bad = {k: v for k, v in changed(before, after).items() if not _may_change(k)}
    if not bad:
        return
    shown = ", ".join(
        f"{k}={_show(new)} (the run has {_show(old)})" for k, (old, new) in list(bad.items())[:3]
    )
    more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
    raise UserError(
        f"{what}: {shown}{more} would continue the checkpoint with other training values than {run} was "
        "trained with; a resume may change only trainer limits/devices, loggers, callbacks and paths "
        f"(start a new run from it with ckpt_path={run}/checkpoints/last.ckpt)"
    )


def refuse_api_changes(cfg: DictConfig) -> None:
    """``train(cfg)`` (the Python API) with ``resume=<run>`` of a run started by ``liif-sr-train``: the same
    refusals as the command line, against the run's recorded ``<run>/.hydra/config.yaml`` (a run trained
    through the API records none: it continues as given). Under ``liif-sr-train`` Hydra has already
    recorded the checked configuration: nothing differs."""
    resume = cfg.get("resume")
    if not resume or not isinstance(resume, str):
        return
    recorded = Path(resume) / ".hydra" / "config.yaml"
    if not recorded.is_file():  # a whole sweep's folder, or a run without a recorded config
        return
    before = OmegaConf.load(recorded)
    after = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    if isinstance(before, DictConfig):
        refuse_changes(before, after, f"resume={resume}", Path(resume))
