"""The MetaSR kernel alone, timed (``metasr_rows.py``, ``metasr_order.py``): one decode of a grid on a table."""

from __future__ import annotations

import time

import torch
from torch import Tensor, nn

from bench.floor import stream_rate
from liif_sr.coords import make_coord


def grid(latent: int, scale: float) -> tuple[int, Tensor, Tensor]:
    """``round(latent · scale)`` and that square output's (1, Q, 2) coordinates and cells."""
    size = round(latent * scale)
    coord = make_coord((size, size)).unsqueeze(0).contiguous()
    return size, coord, torch.full_like(coord, 2 / size)


def decode_ns(
    lib,
    table: Tensor,
    first: nn.Linear,
    latent: int,
    coord: Tensor,
    cell: Tensor,
    flush_bytes: int,
    chunk: int = 0,
) -> tuple[float, Tensor]:
    """Process-CPU nanoseconds per query of one ``metasr_decode`` of the ``latent``² table's grid (in ``chunk``-query
    calls, 0: one call) after streaming ``flush_bytes`` (the table out of the caches), and the (Q, 3) output."""
    w1t, b1 = first.weight.detach().t().contiguous(), first.bias.detach().contiguous()
    q = coord.shape[1]
    step = chunk or q
    out = torch.empty(q, 3)
    stream_rate(flush_bytes)
    start = time.process_time()
    for r0 in range(0, q, step):
        code = lib.metasr_decode(
            coord.data_ptr(), cell.data_ptr(), q, latent, latent, 0, 0, latent, latent, 1, table.data_ptr(),
            table.stride(0), w1t.data_ptr(), b1.data_ptr(), first.out_features, 3, out.data_ptr(), r0,
            min(q, r0 + step),
        )  # fmt: skip
        assert code == 0, code
    return (time.process_time() - start) * 1e9 / q, out
