"""Models: encoders, decoder heads (LIIF, LTE, MetaSR) and the LIIF model."""

from liif_sr.models.encoders import RDN, EDSRBaseline
from liif_sr.models.heads import DecoderHead, LIIFHead, LTEHead, MetaSRHead
from liif_sr.models.liif import LIIF
from liif_sr.models.registry import ENCODERS, HEADS, build_model

__all__ = [
    "ENCODERS",
    "HEADS",
    "LIIF",
    "RDN",
    "DecoderHead",
    "EDSRBaseline",
    "LIIFHead",
    "LTEHead",
    "MetaSRHead",
    "build_model",
]
