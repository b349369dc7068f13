"""The one device resolution of liif-sr (``liif-sr upscale --device``, ``liif-sr-eval device=``)."""

from __future__ import annotations

import torch

from liif_sr.errors import UserError


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(name: str | None, option: str = "--device") -> torch.device:
    """``auto`` (or empty) → CUDA when available, else CPU; ``cpu``, ``cuda``, ``cuda:N``, ``mps`` as given.

    ``auto`` never picks MPS (our metrics run in float32 there, not float64): ask for it with ``mps``.
    A device that this machine lacks, or any other name, is a :class:`UserError` naming ``option``.
    """
    if name in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    given = f"{option}{name}" if option.endswith("=") else f"{option} {name}"
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        device = None
    if device is None or device.type not in ("cpu", "cuda", "mps"):
        raise UserError(f"{option.rstrip('=')} must be auto, cpu, cuda[:N] or mps, got {name!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"{given}: no CUDA device is available (install a CUDA build of torch)")
    if device.type == "mps" and not _mps_available():
        raise UserError(f"{given}: MPS is not available on this machine")
    return device
