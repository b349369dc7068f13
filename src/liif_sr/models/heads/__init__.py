"""Decoding heads: latent grid + coordinates → RGB."""

from liif_sr.models.heads.liif import LIIFHead

__all__ = ["LIIFHead"]
