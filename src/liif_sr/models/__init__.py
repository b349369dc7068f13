"""Models: encoders, decoder heads (LIIF, LTE, MetaSR) and the LIIF model."""

from liif_sr.models.build import build_model
from liif_sr.models.encoders import RDN, EDSRBaseline, Encoder, SwinIR
from liif_sr.models.heads import DecoderHead, LIIFHead, LTEHead, MetaSRHead
from liif_sr.models.liif import LIIF
from liif_sr.models.registry import ENCODERS, HEADS, register_encoder, register_head
from liif_sr.models.upscale_options import UpscaleOptions

__all__ = [
    "ENCODERS",
    "HEADS",
    "LIIF",
    "RDN",
    "DecoderHead",
    "EDSRBaseline",
    "Encoder",
    "LIIFHead",
    "LTEHead",
    "MetaSRHead",
    "SwinIR",
    "UpscaleOptions",
    "build_model",
    "register_encoder",
    "register_head",
]
