"""Decoding heads: latent grid + coordinates → RGB (the :class:`DecoderHead` contract)."""

from liif_sr.models.heads.base import DecoderHead, HeadState
from liif_sr.models.heads.liif import LIIFHead

__all__ = ["DecoderHead", "HeadState", "LIIFHead"]
