"""The only name → class maps: our encoder names and the official LIIF checkpoint names.

Checkpoints store plain data (names and numbers), never ``_target_`` paths or pickled objects, so loading
one can only build these classes.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from liif_sr.errors import CheckpointError
from liif_sr.models.encoders import RDN, EDSRBaseline, SwinIR
from liif_sr.models.heads.liif import LIIFHead
from liif_sr.models.liif import LIIF

ENCODERS: dict[str, type[nn.Module]] = {"edsr_baseline": EDSRBaseline, "rdn": RDN, "swinir": SwinIR}


def encoder_name(encoder: nn.Module) -> str:
    for name, cls in ENCODERS.items():
        if type(encoder) is cls:
            return name
    raise TypeError(f"unknown encoder class {type(encoder).__name__}; known: {sorted(ENCODERS)}")


def build_model(config: dict[str, Any], head_mode: str = "fast") -> LIIF:
    """Build a :class:`LIIF` from :attr:`LIIF.config` plain data."""
    try:
        enc_cfg, head_cfg = config["encoder"], dict(config["head"])
        cls = ENCODERS[enc_cfg["name"]]
    except (KeyError, TypeError) as exc:
        raise CheckpointError(f"model config is incomplete or names an unknown encoder: {exc}") from None
    try:
        encoder = cls(**enc_cfg.get("args", {}))
        return LIIF(encoder, LIIFHead(in_channels=encoder.out_dim, mode=head_mode, **head_cfg))
    except TypeError as exc:
        raise CheckpointError(f"model config has unexpected arguments: {exc}") from None
