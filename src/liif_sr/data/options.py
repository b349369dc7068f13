"""The data module's options as one typed object, and the schema of the ``data`` config group.

:class:`DataOptions` is what :class:`~liif_sr.data.datamodule.RandomScaleDataModule` takes (``RandomScaleDataModule(options)``
or, for Python users and ``instantiate(cfg.data)``, its fields as keywords). :class:`DataConfig` adds the
``_target_`` and is registered in Hydra's ``ConfigStore`` as ``data/_schema`` (:mod:`liif_sr.conf.schema`):
``data/_base.yaml`` starts from it, so OmegaConf refuses a value of the wrong type (``data.batch_size=abc``,
``data.inp_size=1.5``) or an unknown key while Hydra composes the config, in one line, before anything is
written. Value rules a type cannot express (positive, ordered scales, ``sample_q`` bound...) are in
:mod:`liif_sr.training.constraints`.

Kept free of torch and Lightning imports: Hydra imports it to compose every config.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, List, Optional  # noqa: UP035 - OmegaConf reads these annotations at run time

from liif_sr.errors import InvalidArgumentError

SAMPLERS = ("cpu", "device")
VAL_PROTOCOLS = ("div2k", "benchmark")


class DataOptionError(InvalidArgumentError):
    """A data option that cannot work (one line, exit 2; a ``ValueError`` too)."""


@dataclass
class DataOptions:
    """Options of :class:`~liif_sr.data.datamodule.RandomScaleDataModule` (see its docstring for each field)."""

    train_sources: List[str] = field(default_factory=list)  # noqa: UP006
    val_sources: List[str] = field(default_factory=list)  # noqa: UP006
    inp_size: int = 48
    scale_min: float = 1.0
    scale_max: float = 4.0
    sample_q: Optional[int] = 2304  # noqa: UP045
    augment: bool = True
    downsampler: str = "pil"
    repeat: int = 1
    batch_size: int = 16
    num_workers: int = 0
    val_scales: List[float] = field(default_factory=lambda: [2.0, 3.0, 4.0])  # noqa: UP006
    val_downsampler: str = "pil"
    val_first_k: Optional[int] = None  # noqa: UP045
    val_protocol: str = "div2k"
    cache: bool = True
    skip_bad_files: bool = False
    first_k: Optional[int] = None  # noqa: UP045
    pin_memory: bool = False
    dataset_name: Optional[str] = None  # noqa: UP045
    sampler: str = "cpu"

    def __post_init__(self) -> None:
        self.train_sources = [str(s) for s in self.train_sources]
        self.val_sources = [str(s) for s in self.val_sources]
        self.val_scales = [float(s) for s in self.val_scales]
        check_choices(self)

    @classmethod
    def from_mapping(cls, values: Any) -> DataOptions:
        """From a ``data`` config node or dict (its ``_target_`` and other ``_x_`` keys ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{str(k): v for k, v in dict(values).items() if str(k) in names})


def check_choices(options: DataOptions) -> None:
    """The data options whose values are a fixed set of words."""
    from liif_sr.data.resize import DOWNSAMPLE_METHODS  # torch: not imported while Hydra composes

    for key in ("downsampler", "val_downsampler"):
        value = getattr(options, key)
        if value not in DOWNSAMPLE_METHODS:
            raise DataOptionError(f"data.{key} must be one of {', '.join(DOWNSAMPLE_METHODS)}, got {value!r}")
    if options.sampler not in SAMPLERS:
        raise DataOptionError(f"data.sampler must be 'cpu' or 'device', got {options.sampler!r}")
    if options.val_protocol not in VAL_PROTOCOLS:
        raise DataOptionError(
            f"data.val_protocol must be 'div2k' or 'benchmark', got {options.val_protocol!r}"
        )


def check_batch_split(batch_size: int, world_size: int) -> int:
    """The per-device batch of a **global** ``batch_size`` over ``world_size`` devices; refused when it does
    not divide (the one place this is checked: the data module, at start with the planned ``Trainer`` and at
    setup with the real one)."""
    if batch_size % world_size:
        raise DataOptionError(
            f"data.batch_size={batch_size} (global) is not divisible by {world_size} devices "
            "(trainer.devices x trainer.num_nodes)"
        )
    return batch_size // world_size


@dataclass
class DataConfig(DataOptions):
    """Schema of the ``data`` config group: :class:`DataOptions` plus the class Hydra instantiates."""

    _target_: str = "liif_sr.data.datamodule.RandomScaleDataModule"

    def __post_init__(self) -> None:  # a schema holds values to check at composition only
        pass
