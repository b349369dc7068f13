"""The only name → class maps: our encoder and head names (and the official LIIF checkpoint names).

Checkpoints store plain data (names and numbers), never ``_target_`` paths or pickled objects, so loading
one can only build these classes.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from liif_sr.errors import CheckpointError
from liif_sr.models.encoders import RDN, EDSRBaseline, SwinIR
from liif_sr.models.heads.base import DecoderHead
from liif_sr.models.heads.liif import LIIFHead
from liif_sr.models.heads.lte import LTEHead
from liif_sr.models.heads.metasr import MetaSRHead
from liif_sr.models.liif import LIIF

ENCODERS: dict[str, type[nn.Module]] = {"edsr_baseline": EDSRBaseline, "rdn": RDN, "swinir": SwinIR}
HEADS: dict[str, type[DecoderHead]] = {cls.name: cls for cls in (LIIFHead, LTEHead, MetaSRHead)}


def encoder_name(encoder: nn.Module) -> str:
    for name, cls in ENCODERS.items():
        if type(encoder) is cls:
            return name
    raise TypeError(f"unknown encoder class {type(encoder).__name__}; known: {sorted(ENCODERS)}")


def build_model(config: dict[str, Any], head_mode: str = "fast") -> LIIF:
    """Build a :class:`LIIF` from :attr:`LIIF.config` plain data.

    ``config["head"]`` names its head class in ``"name"`` (default ``"liif"``, for older files);
    ``head_mode``: ``"fast"`` or ``"plain"`` (the head's reference path).
    """
    if head_mode not in ("fast", "plain"):
        raise ValueError(f"build_model: head_mode must be 'fast' or 'plain', got {head_mode!r}")
    try:
        enc_cfg, head_cfg = config["encoder"], dict(config["head"])
        cls = ENCODERS[enc_cfg["name"]]
        head_cls = HEADS[head_cfg.pop("name", "liif")]
    except (KeyError, TypeError) as exc:
        raise CheckpointError(
            f"model config is incomplete or names an unknown encoder or head: {exc}"
        ) from None
    try:
        encoder = cls(**enc_cfg.get("args", {}))
        head = head_cls(in_channels=encoder.out_dim, fast=head_mode == "fast", **head_cfg)
        return LIIF(encoder, head)
    except TypeError as exc:
        raise CheckpointError(f"model config has unexpected arguments: {exc}") from None
