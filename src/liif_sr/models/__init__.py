"""Models: encoders, the LIIF head and the LIIF model."""

from liif_sr.models.encoders import RDN, EDSRBaseline
from liif_sr.models.heads import LIIFHead
from liif_sr.models.liif import LIIF
from liif_sr.models.registry import ENCODERS, build_model

__all__ = ["ENCODERS", "LIIF", "RDN", "EDSRBaseline", "LIIFHead", "build_model"]
