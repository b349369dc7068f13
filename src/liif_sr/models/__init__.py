"""Models: encoders, decoder heads (LIIF, LTE, MetaSR, LM-LIIF, LM-LTE, LM-CiaoSR) and the model that joins them (:class:`ImplicitSR`)."""

from typing import Any

from liif_sr.models.build import build_model
from liif_sr.models.encoders import RDN, EDSRBaseline, Encoder, SwinIR
from liif_sr.models.heads import (
    DecoderHead,
    LIIFHead,
    LMCiaoSRHead,
    LMLIIFHead,
    LMLTEHead,
    LTEHead,
    MetaSRHead,
)
from liif_sr.models.implicit_sr import ImplicitSR
from liif_sr.models.registry import ENCODERS, HEADS, register_encoder, register_head
from liif_sr.models.upscale_options import UpscaleOptions

__all__ = [
    "ENCODERS",
    "HEADS",
    "RDN",
    "DecoderHead",
    "EDSRBaseline",
    "Encoder",
    "ImplicitSR",
    "LIIFHead",
    "LMLIIFHead",
    "LMLTEHead",
    "LMCiaoSRHead",
    "LTEHead",
    "MetaSRHead",
    "SwinIR",
    "UpscaleOptions",
    "build_model",
    "register_encoder",
    "register_head",
]


def __getattr__(name: str) -> Any:
    from liif_sr.deprecated import renamed  # old names (LIIF): one release with a DeprecationWarning

    return renamed(__name__, name)
