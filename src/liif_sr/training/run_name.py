"""The one name of a training run: ``<encoder>-<head>`` of its configs, plus the values a sweep job varies.

* the model name is ``<encoder>-<head>`` of the Hydra choices ``model/encoder`` / ``model/head``
  (``edsr_baseline_small-lte``, ``rdn-liif``): the *config* names, so ``rdn`` and ``rdn_small`` differ;
  outside Hydra, the registry names of the network;
* a job of a sweep adds the values of the overrides the sweep varies: ``edsr_baseline_small-liif lr=0.0005``
  (a grid's ``a,b`` overrides, from ``<sweep>/multirun.yaml``; Optuna's ``hydra.sweeper.params``); swept
  encoders and heads are already in the model name.

:func:`run_identity` (training, from the live Hydra config) and :func:`folder_identity` (evaluation, from a
job folder's ``.hydra/hydra.yaml``) both call :func:`identity_from_hydra`: W&B run names, ``summary.json``
and the rows of ``liif-sr-eval checkpoint=<multirun>`` are the same string.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MULTIRUN_FILE = "multirun.yaml"
_IN_MODEL_NAME = {"model/encoder", "model/head"}


def model_name(encoder: str, head: str) -> str:
    """``<encoder>-<head>``: the one spelling of a model's name (run names, ``ImplicitSR.name``, eval rows)."""
    return f"{encoder}-{head}"


@dataclass(frozen=True)
class RunIdentity:
    """``encoder``/``head`` config names and the swept ``{override key: value}`` of a run."""

    encoder: str | None
    head: str | None
    swept: dict[str, str] = field(default_factory=dict)

    @property
    def model(self) -> str | None:
        """``<encoder>-<head>``, or None when either is unknown."""
        return model_name(self.encoder, self.head) if self.encoder and self.head else None

    @property
    def name(self) -> str | None:
        """The model name and the swept values: ``edsr_baseline_small-liif lr=0.0005 gamma=0.5``."""
        labels = _short_labels(self.swept)
        parts = [p for p in (self.model, *labels) if p]
        return " ".join(parts) or None

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "model": self.model, "encoder": self.encoder, "head": self.head,
                "swept": dict(self.swept)}  # fmt: skip


def _short_labels(swept: Mapping[str, str]) -> list[str]:
    """``key=value`` with the key's last component (``model.optimizer.lr`` → ``lr``) unless two keys share it."""
    shorts = [key.split(".")[-1].split("/")[-1].lstrip("+~") for key in swept]
    return [
        f"{short if shorts.count(short) == 1 else key.lstrip('+~')}={_short_value(value)}"
        for short, (key, value) in zip(shorts, swept.items())
    ]


def _short_value(value: str) -> str:
    """Floats with 3 significant digits (Optuna proposes ``0.0003127831...``); anything else as written."""
    try:
        number = float(value)
    except ValueError:
        return value
    if number.is_integer() and "e" not in value.lower() and "." not in value:
        return value
    return f"{number:.3g}"


def _parse(overrides: Sequence[str]) -> list[Any]:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create().parse_overrides([str(o) for o in overrides])


def swept_keys(sweep_overrides: Sequence[str], sweeper_params: Mapping[str, Any] | None = None) -> list[str]:
    """The keys a sweep varies: its sweep overrides (``a,b``, ``range(..)``, ``choice(..)``) and the
    sweeper's ``params`` (Optuna's search space, a grid given in ``hydra.sweeper.params``)."""
    keys = [o.get_key_element() for o in _parse(sweep_overrides) if o.is_sweep_override()]
    keys += [str(k) for k in (sweeper_params or {})]
    return [k for k in dict.fromkeys(keys) if k.lstrip("+~") not in _IN_MODEL_NAME]


def job_values(job_overrides: Sequence[str], keys: Sequence[str]) -> dict[str, str]:
    """``{key: value}`` of ``job_overrides`` for ``keys`` (in the order of ``keys``)."""
    values = {o.get_key_element(): o.get_value_element_as_str() for o in _parse(job_overrides)}
    bare = {k.lstrip("+~"): v for k, v in values.items()}
    return {k: bare[k.lstrip("+~")] for k in keys if k.lstrip("+~") in bare}


def _sweep_overrides(sweep_dir: Path | None) -> list[str]:
    """The task overrides a multirun was launched with (``<sweep>/multirun.yaml``), or []."""
    from omegaconf import OmegaConf

    file = sweep_dir / MULTIRUN_FILE if sweep_dir else None
    if file is None or not file.is_file():
        return []
    try:
        return list(OmegaConf.select(OmegaConf.load(file), "hydra.overrides.task") or [])
    except Exception:  # an unreadable multirun.yaml only costs the swept values in the name
        return []


def identity_from_hydra(hydra_cfg: Any, net: Any = None, sweep_dir: Path | None = None) -> RunIdentity:
    """The identity of a run from its Hydra config (``HydraConfig.get()`` or ``.hydra/hydra.yaml``'s
    ``hydra`` node); ``net`` supplies registry names when the choices are missing; ``sweep_dir`` overrides
    ``hydra.sweep.dir`` (a moved multirun folder)."""
    from omegaconf import OmegaConf

    def get(key: str) -> Any:
        if hydra_cfg is None:
            return None
        return OmegaConf.select(hydra_cfg, key, default=None, throw_on_resolution_failure=False)

    choices = get("runtime.choices") or {}
    encoder = choices.get("model/encoder") or (net.encoder.name if net is not None else None)
    head = choices.get("model/head") or (net.head.name if net is not None else None)
    swept: dict[str, str] = {}
    if str(get("mode")) in ("RunMode.MULTIRUN", "MULTIRUN"):
        if sweep_dir is None and get("sweep.dir"):
            sweep_dir = Path(str(get("sweep.dir")))
        params = get("sweeper.params")
        params = OmegaConf.to_container(params) if OmegaConf.is_config(params) else params
        keys = swept_keys(_sweep_overrides(sweep_dir), params)
        swept = job_values(list(get("overrides.task") or []), keys)
    return RunIdentity(encoder, head, swept)


def run_identity(net: Any = None) -> RunIdentity:
    """The identity of the running Hydra job (registry names of ``net`` outside Hydra)."""
    from hydra.core.hydra_config import HydraConfig

    return identity_from_hydra(HydraConfig.get() if HydraConfig.initialized() else None, net)


def folder_identity(run_dir: str | Path) -> RunIdentity | None:
    """The identity of a finished (or failed) run folder from its ``.hydra/hydra.yaml``, or None."""
    from omegaconf import OmegaConf

    run_dir = Path(run_dir)
    file = run_dir / ".hydra" / "hydra.yaml"
    if not file.is_file():
        return None
    try:
        hydra_cfg = OmegaConf.load(file).get("hydra")
    except Exception:
        return None
    multirun = run_dir.parent if (run_dir.parent / MULTIRUN_FILE).is_file() else None
    return identity_from_hydra(hydra_cfg, sweep_dir=multirun)
