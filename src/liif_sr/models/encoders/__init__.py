"""Encoders: LR image → latent grid of the same spatial size (contract: :class:`Encoder`)."""

from liif_sr.models.encoders.base import Encoder
from liif_sr.models.encoders.edsr_baseline import EDSRBaseline
from liif_sr.models.encoders.rdn import RDN
from liif_sr.models.encoders.swinir import SwinIR

__all__ = ["RDN", "EDSRBaseline", "Encoder", "SwinIR"]
