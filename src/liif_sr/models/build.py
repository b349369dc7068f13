"""Build a model from plain data (a checkpoint's ``ImplicitSR.config``): registered classes only."""

from __future__ import annotations

from typing import Any

from liif_sr.errors import CheckpointError
from liif_sr.models.implicit_sr import ImplicitSR
from liif_sr.models.registry import UnknownComponentError, encoder_class, head_class


def build_model(config: dict[str, Any], head_mode: str = "fast") -> ImplicitSR:
    """Build a :class:`ImplicitSR` from :attr:`ImplicitSR.config` plain data.

    ``config["head"]`` names its head in ``"name"`` (default ``"liif"``: liif-sr files before 0.2 have no
    name); ``head_mode``: ``"fast"`` (optimised path) or ``"plain"`` (the head's reference algorithm).
    """
    if head_mode not in ("fast", "plain"):
        raise ValueError(f"build_model: head_mode must be 'fast' or 'plain', got {head_mode!r}")
    try:
        enc_cfg, head_cfg = dict(config["encoder"]), dict(config["head"])
        enc_name, head_name = enc_cfg["name"], head_cfg.pop("name", "liif")
    except (KeyError, TypeError) as exc:
        raise CheckpointError(f"model config is incomplete: missing {exc}") from None
    try:
        enc_cls, head_cls = encoder_class(enc_name), head_class(head_name)
    except UnknownComponentError as exc:
        raise CheckpointError(f"model config names {exc}") from None
    try:
        encoder = enc_cls(**enc_cfg.get("args", {}))
        head = head_cls(in_channels=encoder.out_dim, fast=head_mode == "fast", **head_cfg)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"model config has unexpected arguments: {exc}") from None
    return ImplicitSR(encoder, head)
