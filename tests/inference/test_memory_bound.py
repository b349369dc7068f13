"""Inference memory is bounded by the query chunk for every head (issue #12 item 9).

``ImplicitSR.upscale`` prepares the head's state once per image (its size follows the latent grid) and decodes the
output in chunks: no head ever sees more than ``chunk`` queries at once, whatever the output size.
"""

from __future__ import annotations

import pytest
import torch

from liif_sr.models import (
    EDSRBaseline,
    ImplicitSR,
    LIIFHead,
    LMCiaoSRHead,
    LMLIIFHead,
    LMLTEHead,
    LTEHead,
    MetaSRHead,
)

HEADS = {
    "liif": lambda c: LIIFHead(c, hidden_list=[16, 16]),
    "lte": lambda c: LTEHead(c, hidden_dim=16, hidden_list=[16, 16]),
    "metasr": lambda c: MetaSRHead(c, hidden_list=[16]),
    "lmliif": lambda c: LMLIIFHead(c, hidden_list=[16], hidden_depth=2),
    "lmlte": lambda c: LMLTEHead(c, latent_dim=16, hidden_list=[16], hidden_depth=2),
    "lmciaosr": lambda c: LMCiaoSRHead(c, attn_hidden=[16], hidden_list=[16], hidden_depth=2),
}


@pytest.mark.parametrize("head", sorted(HEADS))
@pytest.mark.parametrize("fast", [True, False])
def test_decode_sees_at_most_chunk_queries(head, fast):
    torch.manual_seed(0)
    h = HEADS[head](8)
    h.fast = fast
    model = ImplicitSR(EDSRBaseline(n_resblocks=1, n_feats=8), h).eval()
    seen: list[int] = []
    decode = model.head.decode

    def spy(state, coord, cell=None):
        seen.append(coord.shape[1])
        return decode(state, coord, cell)

    model.head.decode = spy  # type: ignore[method-assign]
    out = model.upscale(torch.rand(1, 3, 9, 7), (61, 47), chunk=500)
    assert out.shape == (1, 3, 61, 47)
    assert max(seen) <= 500 and sum(seen) == 61 * 47
