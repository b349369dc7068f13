"""The upscale options: one typed, frozen object, validated once at each entry.

Every way to upscale builds one :class:`UpscaleOptions` at its entry and hands it down unchanged:

* the Python API: :meth:`ImplicitSR.upscale` and :func:`liif_sr.inference.upscale.upscale_tensor` build it from
  their keywords (:meth:`UpscaleOptions.create`);
* ``liif-sr upscale``: :func:`liif_sr.inference.upscale_cli.options_from_args`, once per command;
* ``liif-sr-eval``: once per checkpoint row (``chunk``, ``cell_clip``, ``border`` of the eval config).

:meth:`create` checks every value (one-line :class:`~liif_sr.errors.InvalidArgumentError`);
:meth:`for_model` resolves what depends on the model (``cell_clip="auto"``, the tile floor) once per model.
Below the entries nothing checks an option again. Adding an option is one field here, its check in
:meth:`create`, and its use where it acts.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from liif_sr.errors import InvalidArgumentError
from liif_sr.models.checks import as_int, check_border, check_cell_clip, check_chunk, check_size
from liif_sr.models.precision import Precision, check_precision, resolve_precision

if TYPE_CHECKING:
    from liif_sr.models.implicit_sr import ImplicitSR

Border = Literal["none", "replicate"]
DEFAULT_CHUNK = 65536


@dataclass(frozen=True)
class UpscaleOptions:
    """How to render an image (everything but the image and the model).

    Attributes:
        size: output ``(H, W)``; None until known (the CLI's ``--scale`` gives it per image: :meth:`with_size`).
        chunk: queries decoded at once (memory is bounded by it for every head).
        cell_clip: ``"auto"`` (the head's paper protocol; resolved by :meth:`for_model`), None (off) or a
            number >= 1.
        border: ``"replicate"`` (default) or ``"none"`` (the papers' protocol).
        tile: LR tile size, 0 = untiled (``inference.tiling``; its floor: ``inference.tile_policy``).
        max_memory: a memory budget in bytes from which a tile is chosen (``inference.tile_policy``), or None.
        precision: ``auto`` (default: ``bf16-decode`` where the device has native bf16, else ``fp32``;
            resolved by :meth:`for_model`), ``fp32``, ``bf16-decode``, ``bf16`` or ``fp16``
            (:mod:`liif_sr.models.precision`; applied by the one render loop).
    """

    size: tuple[int, int] | None = None
    chunk: int = DEFAULT_CHUNK
    cell_clip: float | str | None = "auto"
    border: Border = "replicate"
    tile: int = 0
    max_memory: int | None = None
    precision: Precision = "auto"

    @classmethod
    def create(
        cls,
        size: object = None,
        chunk: object = DEFAULT_CHUNK,
        cell_clip: object = "auto",
        border: object = "replicate",
        tile: object = 0,
        max_memory: object = None,
        precision: object = "auto",
    ) -> UpscaleOptions:
        """Checked options (the one place each value is checked); raises :class:`InvalidArgumentError`
        whose ``option`` attribute names the field (the CLI names its flag)."""
        checks = {
            "size": lambda v: None if v is None else check_size(v),
            "chunk": check_chunk,
            "cell_clip": lambda v: v if v == "auto" else check_cell_clip(v),
            "border": check_border,
            "tile": _check_tile,
            "max_memory": _check_max_memory,
            "precision": check_precision,
        }
        given = {"size": size, "chunk": chunk, "cell_clip": cell_clip, "border": border, "tile": tile}
        given.update(max_memory=max_memory, precision=precision)
        values = {}
        for name, check in checks.items():
            try:
                values[name] = check(given[name])
            except InvalidArgumentError as exc:
                exc.option = name  # type: ignore[attr-defined]
                raise
        return cls(**values)

    def with_size(self, size: object) -> UpscaleOptions:
        """The same options for an output of ``size`` (checked)."""
        return dataclasses.replace(self, size=check_size(size))

    def for_model(self, model: ImplicitSR) -> UpscaleOptions:
        """What depends on the model, resolved once per model: ``cell_clip="auto"`` → the head's paper
        protocol (LTE: 4.0; LIIF, MetaSR: None); ``precision="auto"`` → ``bf16-decode`` or ``fp32`` for the
        model's device and head (:func:`~liif_sr.models.precision.resolve_precision`; ``fp16`` on a CPU refused).

        The tile's floor depends on the model too: :func:`liif_sr.inference.tile_policy.resolve_tile`."""
        cell_clip = model.head.paper_cell_clip if self.cell_clip == "auto" else self.cell_clip
        precision, _ = resolve_precision(self.precision, next(model.parameters()).device, model.head)
        return dataclasses.replace(self, cell_clip=cell_clip, precision=precision)

    @property
    def out_size(self) -> tuple[int, int]:
        """``size``, which must be set by now."""
        if self.size is None:
            raise InvalidArgumentError("upscale: no output size given")
        return self.size


def _check_tile(tile: object) -> int:
    value = as_int(tile, f"tile must be an integer >= 0 (0 = off), got {tile!r}")
    if value < 0:
        raise InvalidArgumentError(f"tile must be >= 0 (0 = off), got {value}")
    return value


def _check_max_memory(max_memory: object) -> int | None:
    if max_memory is None:
        return None
    value = as_int(max_memory, f"max_memory must be a number of bytes, got {max_memory!r}")
    if value < 1:
        raise InvalidArgumentError(f"max_memory must be positive (bytes), got {value}")
    return value
