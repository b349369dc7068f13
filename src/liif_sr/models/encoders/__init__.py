"""Encoders: LR image → latent grid of the same spatial size."""

from liif_sr.models.encoders.edsr_baseline import EDSRBaseline
from liif_sr.models.encoders.rdn import RDN

__all__ = ["EDSRBaseline", "RDN"]
