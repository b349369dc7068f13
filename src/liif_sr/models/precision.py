"""Inference precision: which parts of a render run in reduced precision, and what ``"auto"`` picks (issue 21).

The values of :attr:`UpscaleOptions.precision <liif_sr.models.upscale_options.UpscaleOptions>` and of
``liif-sr upscale --precision``:

* ``fp32``: everything in float32 (what ``liif-sr-eval`` and training's validation use: the papers' protocol);
* ``bf16-decode``: the head's per-query decode (its MLP: nearly all of the FLOPs of a large output) under
  bfloat16 autocast; the encoder and the head's ``prepare`` stay float32. The same rule for every head,
  applied by the one render loop (:func:`liif_sr.models.render.render`);
* ``bf16`` / ``fp16``: the whole network (encoder, ``prepare``, decode) under autocast (``fp16``: CUDA only);
* ``auto`` (the default of :meth:`ImplicitSR.upscale <liif_sr.models.implicit_sr.ImplicitSR.upscale>` and
  ``liif-sr upscale``): ``bf16-decode`` where the device computes bfloat16 natively — a CPU with AVX512-BF16
  or AMX, a CUDA GPU of compute capability 8.0 or newer — and the head allows it (``DecoderHead.auto_bf16``:
  True unless measured otherwise; MetaSR: False), else ``fp32``.

Measured, not assumed: ``bf16-decode`` costs at most 0.01 dB of Y-PSNR against fp32 on Set5/Set14 ×2/×3/×4
for the LIIF and LTE heads (BENCHMARKS.md "Precision"; ``tests/models/test_precision_bound.py``); MetaSR's
reached -0.0101 dB at Set5 ×4 (so ``auto`` keeps it fp32); bf16 of the whole network does not hold the bound
either, so ``auto`` never picks it.

``LIIF_SR_NATIVE_BF16=0`` (or ``1``) overrides the hardware detection (``auto`` then resolves to ``fp32``, or
``bf16-decode``); the test suite sets ``0`` so that its fp32 comparisons do not depend on the machine.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from liif_sr.errors import InvalidArgumentError

Precision = Literal["auto", "fp32", "bf16-decode", "bf16", "fp16"]
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16-decode", "bf16", "fp16")
ENV_NATIVE_BF16 = "LIIF_SR_NATIVE_BF16"
_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
log = logging.getLogger(__name__)


def check_precision(precision: object) -> str:
    """``precision`` if it is one of :data:`PRECISIONS`, else a one-line :class:`InvalidArgumentError`."""
    if precision not in PRECISIONS:
        raise InvalidArgumentError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return str(precision)


@functools.cache
def _cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU feature flags of the first processor in ``cpuinfo`` (empty where there is none: not Linux)."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def native_bf16(device: torch.device) -> tuple[bool, str]:
    """Whether ``device`` computes bfloat16 natively, and why (the reason ``auto`` reports)."""
    forced = os.environ.get(ENV_NATIVE_BF16)
    if forced is not None:
        if forced not in ("0", "1"):
            raise InvalidArgumentError(f"{ENV_NATIVE_BF16} must be 0 or 1, got {forced!r}")
        return forced == "1", f"{ENV_NATIVE_BF16}={forced}"
    if device.type == "cpu":
        found = sorted(set(_CPU_FLAGS) & _cpu_flags())
        if found:
            return True, f"CPU with {'/'.join(found)}"
        return False, "CPU without AVX512-BF16/AMX"
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        return (major >= 8), f"CUDA sm{major}{minor}" + ("" if major >= 8 else " (bf16 needs sm80+)")
    return False, f"{device.type} device"


def resolve_precision(precision: str, device: torch.device, head: object = None) -> tuple[str, str]:
    """``(precision, note)``: ``"auto"`` → ``bf16-decode`` or ``fp32`` for ``device`` and ``head`` (a head whose
    ``auto_bf16`` is False keeps fp32; note: why); other values as given (``fp16`` on a CPU refused in one
    line). ``precision`` is checked by the entry."""
    if precision == "fp16" and device.type == "cpu":
        raise InvalidArgumentError(
            "precision fp16 needs a CUDA device (use bf16-decode, bf16 or fp32 on CPU)"
        )
    if precision != "auto":
        return precision, "as asked"
    native, why = native_bf16(device)
    if native and not getattr(head, "auto_bf16", True):
        why = f"{why}; the {getattr(head, 'name', type(head).__name__)} head keeps fp32 (auto_bf16 = False)"
        native = False
    resolved = "bf16-decode" if native else "fp32"
    _log_auto(resolved, why)
    return resolved, f"auto: {why}"


def precision_note(precision: str, device: torch.device, head: object = None) -> str:
    """Why ``precision`` resolves as it does on ``device`` for ``head`` (``"auto: CPU with avx512_bf16"``)."""
    return resolve_precision(precision, device, head)[1]


@functools.cache
def _log_auto(resolved: str, why: str) -> None:
    log.info("precision auto -> %s (%s); precision='fp32' for full precision", resolved, why)


@dataclass(frozen=True)
class PrecisionPlan:
    """The autocast dtype of each part of a render (None: float32).

    Attributes:
        prepare: the encoder and the head's ``prepare`` (the producers of :mod:`liif_sr.models.render`).
        decode: the head's ``decode`` of each chunk of queries.
        device_type: the autocast device type (``cpu``, ``cuda``).
    """

    prepare: torch.dtype | None
    decode: torch.dtype | None
    device_type: str

    @classmethod
    def of(cls, precision: str, device: torch.device, head: object = None) -> PrecisionPlan:
        """The plan of ``precision`` (``"auto"`` resolved here too, for ``head``) on ``device``."""
        resolved, _ = resolve_precision(precision, device, head)
        if resolved == "bf16-decode":
            return cls(None, torch.bfloat16, device.type)
        whole = _DTYPES.get(resolved)
        return cls(whole, whole, device.type)

    def preparing(self) -> contextlib.AbstractContextManager:
        """The context of the encoder and ``prepare`` (a no-op for float32: an outer autocast stays)."""
        return self._cast(self.prepare)

    def decoding(self) -> contextlib.AbstractContextManager:
        """The context of ``decode``."""
        return self._cast(self.decode)

    def _cast(self, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=dtype)
