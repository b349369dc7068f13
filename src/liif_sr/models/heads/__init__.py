"""Decoding heads: latent grid + coordinates → RGB (the :class:`DecoderHead` contract)."""

from liif_sr.models.heads.base import DecoderHead, HeadState
from liif_sr.models.heads.liif import LIIFHead
from liif_sr.models.heads.lmciaosr import LMCiaoSRHead
from liif_sr.models.heads.lmliif import LMLIIFHead
from liif_sr.models.heads.lmlte import LMLTEHead
from liif_sr.models.heads.lte import LTEHead
from liif_sr.models.heads.metasr import MetaSRHead

__all__ = [
    "DecoderHead",
    "HeadState",
    "LIIFHead",
    "LMCiaoSRHead",
    "LMLIIFHead",
    "LMLTEHead",
    "LTEHead",
    "MetaSRHead",
]
