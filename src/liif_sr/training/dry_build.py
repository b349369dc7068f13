"""Build, at start, what a training run builds, without data, weights or files, so that the libraries refuse
their own values before Hydra creates a run folder: the data module (its options), the network on the
``meta`` device (its sizes, the encoder's crop multiple), the optimizer and LR schedule on a dummy parameter
(torch's ``Invalid learning rate``), the Lightning ``Trainer`` (precision, accelerator, devices, limits) and
the callbacks (their own arguments).

Each failure is one line naming the config group: ``trainer: Precision 'banana' is invalid ...``.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from typing import Any

from omegaconf import DictConfig

from liif_sr.errors import UserError
from liif_sr.training.constraints import ConfigValueError, suggest_inp_size


def first_line(exc: BaseException) -> str:
    """The first line of what an exception says (the cause of a Hydra ``InstantiationException``)."""
    from hydra.errors import InstantiationException

    while isinstance(exc, InstantiationException) and exc.__cause__ is not None:
        exc = exc.__cause__
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[0] if lines else type(exc).__name__


def _refuse(where: str, exc: BaseException) -> UserError:
    from hydra.errors import InstantiationException

    cause = exc
    while isinstance(cause, InstantiationException) and cause.__cause__ is not None:
        cause = cause.__cause__
    if isinstance(cause, UserError):  # already one line for the user (e.g. an unregistered encoder)
        return cause
    return ConfigValueError(f"{where}: {first_line(exc)}")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Lightning's start-up chatter ("GPU available: ...") and warnings belong to the real start."""
    loggers = [logging.getLogger(n) for n in ("lightning", "lightning.pytorch", "lightning.fabric")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def requested_net_config(cfg: DictConfig) -> dict[str, Any]:
    """``net.config`` of the model ``cfg.model`` asks for, built on the meta device (no weights)."""
    import torch
    from hydra.utils import instantiate

    from liif_sr.models.implicit_sr import ImplicitSR

    def build() -> dict[str, Any]:
        encoder = instantiate(cfg.model.encoder, _convert_="all")
        head = instantiate(cfg.model.head, _convert_="all")
        net = ImplicitSR(encoder, head)
        data = cfg.get("data") or {}
        inp, multiple = data.get("inp_size"), int(encoder.input_multiple)
        if isinstance(inp, int) and multiple > 1 and inp % multiple:
            good = suggest_inp_size(inp, multiple, float(data.get("scale_min", 1)), data.get("sample_q"))
            raise ConfigValueError(
                f"data.inp_size={inp}: the {encoder.name} encoder needs training crops that are multiples "
                f"of {multiple} (e.g. data.inp_size={good})"
            )
        return net.config

    try:
        try:
            with torch.device("meta"):  # no weights allocated
                return build()
        except ConfigValueError:
            raise
        except Exception:  # noqa: BLE001 - an encoder that computes buffers at init (SwinIR): build it on CPU
            return build()
    except ConfigValueError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever the classes refuse: one line
        error = _refuse("model", exc)
        if isinstance(error, ConfigValueError):
            error = ConfigValueError(f"model: cannot build the requested model: {first_line(exc)}")
        raise error from None


def check_optimizer(cfg: DictConfig) -> None:
    """The optimizer and LR schedule factories, called on one dummy parameter (torch checks their values)."""
    import torch
    from hydra.utils import instantiate

    model = cfg.get("model") or {}
    if model.get("optimizer") is None:
        return
    param = torch.nn.Parameter(torch.zeros(1))
    try:
        optimizer = instantiate(model.optimizer, _convert_="all")(params=[param])
    except Exception as exc:  # noqa: BLE001
        raise _refuse("model.optimizer", exc) from None
    if model.get("scheduler") is None:
        return
    try:
        instantiate(model.scheduler, _convert_="all")(optimizer=optimizer)
    except Exception as exc:  # noqa: BLE001
        raise _refuse("model.scheduler", exc) from None


def check_trainer(cfg: DictConfig) -> None:
    """A ``Trainer`` from ``cfg.trainer`` (no logger, callbacks or run folder): Lightning checks its values."""
    from hydra.utils import instantiate

    from liif_sr.training.checkpoint_io import trainer_plugins

    if cfg.get("trainer") is None:
        return
    try:
        with _quiet():
            plugins = trainer_plugins(cfg.trainer)
            trainer = instantiate(
                cfg.trainer,
                default_root_dir=None,
                logger=False,
                callbacks=[],
                enable_checkpointing=False,
                plugins=plugins,
            )
    except Exception as exc:  # noqa: BLE001
        raise _refuse("trainer", exc) from None
    if cfg.get("data") is not None:  # the global batch over the planned devices (the data module's check)
        from liif_sr.data.options import check_batch_split

        check_batch_split(int(cfg.data.batch_size), trainer.world_size)


def check_datamodule(cfg: DictConfig) -> None:
    """The data module's own option checks (``data.sampler``, ``data.val_protocol``); nothing is read."""
    from hydra.utils import instantiate

    try:
        instantiate(cfg.data, _convert_="all")
    except Exception as exc:  # noqa: BLE001
        raise _refuse("data", exc) from None


def check_callbacks(cfg: DictConfig, run_dir: str | None = None) -> None:
    """Each callback of ``cfg.callbacks`` built from its config (no trainer; nothing is written): the classes
    refuse their own values (``ModelCheckpoint``: ``every_n_train_steps`` together with ``every_n_epochs``).
    ``paths.output_dir`` (Hydra's, unknown before it runs) reads as ``run_dir``."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf, open_dict

    if not cfg.get("callbacks"):
        return
    cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    with open_dict(cfg):
        cfg.paths = {
            **(OmegaConf.to_container(cfg.paths) if cfg.get("paths") else {}),
            "output_dir": run_dir or ".",
        }
    for name, node in cfg.callbacks.items():
        if not isinstance(node, DictConfig) or "_target_" not in node:
            continue
        try:
            with _quiet():
                instantiate(node, _convert_="all")
        except Exception as exc:  # noqa: BLE001
            raise _refuse(f"callbacks.{name}", exc) from None


def dry_build(cfg: DictConfig, run_dir: str | None = None) -> dict[str, Any]:
    """Everything above; returns the requested ``net.config`` (for checkpoint comparisons)."""
    check_datamodule(cfg)
    config = requested_net_config(cfg)
    check_optimizer(cfg)
    check_trainer(cfg)
    check_callbacks(cfg, run_dir)
    return config
