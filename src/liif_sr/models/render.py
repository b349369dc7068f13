"""The one render loop: (head state, query block) pairs → a (B, 3, H, W) image in [0, 1].

A *producer* yields :class:`Block`\\ s: a prepared head state and the output pixels it answers (a rectangle
of the output image with their mapped coordinates and cells). :func:`render` decodes each block in chunks of
``chunk`` queries, maps the prediction back from the normalised space (:func:`denormalise`, the one place),
clamps it and writes it into the output. Two producers feed it:

* :func:`whole_image` — one state for the whole image, every output pixel (:meth:`ImplicitSR.upscale`);
* :func:`liif_sr.inference.tiling.tile_blocks` — one state per LR tile, the output pixels the tile owns.

Precision is applied here, once for every producer and every head (:class:`~liif_sr.models.precision.PrecisionPlan`):
the producer runs (the encoder and the head's ``prepare``) in the plan's ``prepare`` context, each chunk's
``decode`` in its ``decode`` context (``bf16-decode``: bf16 autocast around ``decode`` only).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from liif_sr.coords import make_cell, make_coord
from liif_sr.models.heads.base import DecoderHead, HeadState
from liif_sr.models.precision import PrecisionPlan
from liif_sr.models.run_context import run_context, working_dtype
from liif_sr.models.upscale_options import UpscaleOptions


@dataclass(frozen=True)
class Block:
    """A head state and the output pixels ``rows x cols`` it answers.

    ``coord`` (Q, 2) holds their mapped coordinates row-major (Q = rows x cols); ``cell`` is (Q, 2), or
    (1, 2) when every query shares one cell.
    """

    state: HeadState
    coord: Tensor
    cell: Tensor
    rows: tuple[int, int]
    cols: tuple[int, int]


def denormalise(pred: Tensor) -> Tensor:
    """The head's normalised output space ((x - 0.5) / 0.5) → [0, 1] image values (unclamped)."""
    return pred * 0.5 + 0.5


def render(
    head: DecoderHead, blocks: Iterable[Block], like: Tensor, opts: UpscaleOptions, out_dtype: torch.dtype
) -> Tensor:
    """Decode every block in chunks of ``opts.chunk`` into a (B, 3, H, W) ``out_dtype`` image in [0, 1].

    ``like``: the (B, ...) input (batch and device). Runs without autograd; a half model under autocast to its
    dtype (:func:`~liif_sr.models.run_context.run_context`); ``opts.precision`` (``"auto"`` too) as
    :class:`~liif_sr.models.precision.PrecisionPlan` says. Predictions are mapped back and clamped in the
    model's working dtype, then cast to ``out_dtype``.
    """
    param = next(head.parameters())
    b, (out_h, out_w), chunk = int(like.shape[0]), opts.out_size, opts.chunk
    out = torch.empty(b, 3, out_h, out_w, device=like.device, dtype=out_dtype)
    parts = PrecisionPlan.of(opts.precision, param.device, head)
    with run_context(param, grad=False):
        for block in _produce(blocks, parts):
            (r0, r1), (c0, c1) = block.rows, block.cols
            n = block.coord.shape[0]
            shared = block.cell.shape[0] != n
            pred = torch.empty(b, n, 3, device=like.device, dtype=working_dtype(param))
            for start in range(0, n, chunk):
                c = block.coord[start : start + chunk].unsqueeze(0).expand(b, -1, -1)
                ce = block.cell if shared else block.cell[start : start + chunk]
                ce = ce.unsqueeze(0).expand(b, c.shape[1], 2)
                with parts.decoding():
                    pred[:, start : start + chunk] = head.decode(block.state, c, ce)
            pred = denormalise(pred).clamp_(0, 1)
            out[:, :, r0:r1, c0:c1] = pred.view(b, r1 - r0, c1 - c0, 3).permute(0, 3, 1, 2)
    return out


def _produce(blocks: Iterable[Block], parts: PrecisionPlan) -> Iterator[Block]:
    """``blocks``, each produced (encoder, ``prepare``: producers are generators) in ``parts.preparing()``."""
    it = iter(blocks)
    while True:
        with parts.preparing():
            block = next(it, None)
        if block is None:
            return
        yield block


def whole_image(model, lr: Tensor, opts: UpscaleOptions) -> Iterator[Block]:  # noqa: ANN001 (LIIF)
    """The untiled producer: the whole image prepared once, every output pixel in one block.

    ``opts`` are resolved for the model (``cell_clip`` not ``"auto"``); ``lr`` (B, 3, h, w) is checked.
    """
    from liif_sr.models.implicit_sr import clip_cell

    out_h, out_w = opts.out_size
    prepared = model._prepare(lr, opts.border)  # lr checked at the entry
    coord = make_coord((out_h, out_w), device=lr.device)
    cell = make_cell((out_h, out_w), coord.shape[0], device=lr.device)
    if opts.cell_clip is not None:
        cell = clip_cell(cell, (int(lr.shape[-2]), int(lr.shape[-1])), opts.cell_clip)
    coord, cell = prepared.frame.map(coord, cell)  # once for the whole grid, not per chunk
    work = working_dtype(next(model.parameters()))
    yield Block(prepared.head_state, coord.to(work), cell.to(work), (0, out_h), (0, out_w))
