"""Tiled upscaling: bounded memory for large inputs, the same function as the untiled :meth:`ImplicitSR.upscale`.

The LR image is split into ``tile x tile`` tiles. Each tile is encoded from an LR crop that extends
``margin = encoder.receptive_radius + head.reach`` pixels past the tile on every side that is not an image
border, and decodes only the output pixels it *owns*, in the global coordinate frame. The proof below is for
the LIIF head (``reach = 2``); the LTE and MetaSR heads prove their ``reach`` in their module docs (also 2).

**Ownership.** Output pixel centre ``c`` (in [-1, 1]) lies at ``u = (c + 1) * n / 2`` in LR pixel units along
an axis of LR length ``n``; it is owned by the tile containing LR pixel ``p = clamp(floor(u), 0, n - 1)``.
Ownership is separable (rows x columns), so each tile owns a rectangle of output pixels.

**Margin proof (per axis; the tile holds LR rows ``r0 .. r1-1``; ranges below are closed).**

1. *Latents read by a query.* The head reads latent ``round(u - 1/2 + v/2 + d)`` for ensemble shift
   ``v = ±1`` (``d`` = the 1e-6 eps in LR units, ≪ 1/2), or ``round(u - 1/2)`` without ensemble, clamped to
   ``[0, n-1]``. For ``p <= u < p + 1`` these are in ``{p - 1, p, p + 1}``: queries owned by the tile read
   latents ``[r0 - 1, r1]``, at most one cell beyond the tile, and both ends are reached.
2. *3x3 unfold.* A latent read enters through the first layer's 3x3 convolution over the latent grid
   (:meth:`LIIFHead.latent_projection`, ``W_feat @ unfold(z)``), so latents ``[r0 - 2, r1 + 1]`` must equal
   the untiled ones. The projection is computed on exactly that window (a 1-pixel latent margin): its own
   zero padding only corrupts the window's outer ring, which is never read, except at the image border,
   where the untiled unfold pads with zeros as well.
3. *Encoder.* A latent depends on LR pixels within ``R = encoder.receptive_radius`` of it (verified in
   ``tests/inference/test_tiling.py`` by perturbing one pixel), so latents ``[r0 - 2, r1 + 1]`` equal the untiled ones
   when the crop holds the real LR pixels ``[r0 - 2 - R, r1 + 1 + R]``: ``R + 2`` pixels before the tile's
   first row and after its last row ``r1 - 1``. At the image border the crop simply stops: the encoder's
   zero padding, the unfold's zero padding and the clamp of shifted coordinates then act exactly as in the
   untiled model.

So ``R + 2`` is sufficient and, since both ends in step 1 are reached, necessary in general. Coordinates,
relative coordinates and cells are computed with the global latent size ``(h, w)``; only the final gather
subtracts the tile's offset: each tile is ``head.prepare(latent window, LR window, offset, (h, w))`` and
``head.decode`` of its owned queries (the :class:`~liif_sr.models.heads.base.DecoderHead` contract). The encoder never sees more than ``(tile + 2 margin)^2`` pixels and neither the
full latent nor the full projection is materialised; the output ``(B, 3, H, W)`` itself is.

**Float rounding.** Tiles compute the same sums over differently sized tensors, so convolutions and
products may add in another order: tiled and untiled float outputs differ by float rounding (≤ 1e-5 in
fp32; measured ~1e-7 for LIIF/LTE and ~1e-6 for MetaSR, whose per-latent 3x3 projection sums C·9 terms
into 771 channels). An 8-bit output value whose float lies within that of a rounding boundary can then come
out one level apart: MetaSR x6 on CPU, 16 of 680,400 values (a random 90x70 input, ``--tile 24``); the
issue's GPU run, 13 of 2.2M. Everything else is bit-identical; no value differs by more than one level.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn

from liif_sr.coords import make_cell, make_coord
from liif_sr.errors import UserError
from liif_sr.models.implicit_sr import ImplicitSR, border_px, clip_cell
from liif_sr.models.render import Block, render
from liif_sr.models.upscale_options import UpscaleOptions


class TilingUnsupportedError(UserError, ValueError):
    """The model cannot be tiled exactly (its encoder's receptive field spans the image)."""


def untileable(model: ImplicitSR) -> str | None:
    """The part of ``model`` that cannot be tiled exactly (``"its swinir encoder"``, ``"its lmciaosr head"``:
    an unbounded encoder receptive field or head ``reach``), or None when tiles compute the same function."""
    if model.encoder.receptive_radius is None:
        return f"its {model.encoder.name} encoder"
    if model.head.reach is None:
        return f"its {model.head.name} head"
    return None


def tile_margin(encoder: nn.Module, reach: int | None = 2, head_name: str = "this") -> int:
    """LR pixels of context each tile needs beyond its edges: ``receptive_radius + reach`` (see module doc).

    Raises :class:`TilingUnsupportedError` for encoders without a bounded receptive field (SwinIR) and heads
    without a bounded reach (``reach=None``: non-local heads such as LM-CiaoSR).
    """
    radius = encoder.receptive_radius
    if radius is None:
        raise TilingUnsupportedError(
            f"exact tiling needs an encoder with a bounded receptive field; {encoder.name}'s shifted-window "
            "attention spans the whole image, so tiles would change the output: run it untiled "
            "(drop --tile/--max-memory)"
        )
    if reach is None:
        raise TilingUnsupportedError(
            f"exact tiling needs a head with a bounded reach; the {head_name} head's non-local attention looks "
            "across the whole latent grid, so tiles would change the output: run it untiled "
            "(drop --tile/--max-memory)"
        )
    return int(radius) + int(reach)


def _owners(c: Tensor, n_lr: int, tile: int) -> Tensor:
    """Owning tile index of each output pixel centre ``c`` (one axis, non-decreasing)."""
    p = torch.floor((c + 1) * (n_lr / 2)).clamp(0, n_lr - 1).long()
    return torch.div(p, tile, rounding_mode="floor")


def _spans(owners: Tensor, n_tiles: int) -> list[tuple[int, int]]:
    """``[start, end)`` of the output pixels owned by each tile (empty spans allowed)."""
    bounds = torch.searchsorted(owners, torch.arange(n_tiles + 1, device=owners.device)).tolist()
    return [(bounds[t], bounds[t + 1]) for t in range(n_tiles)]


def tile_blocks(
    model: ImplicitSR, lr: Tensor, opts: UpscaleOptions, tile: tuple[int, int], margin: int | None = None
) -> Iterator[Block]:
    """The tiled producer: one :class:`~liif_sr.models.render.Block` per LR tile that owns output pixels.

    ``opts`` are checked and resolved for the model; ``tile`` = ``(ty, tx)`` >= 1; ``margin``: LR context per
    side, default :func:`tile_margin` (smaller is inexact; for tests), at least the head's ``reach``. With
    ``border="replicate"`` the padded image is the one that is tiled (its frame mapped as untiled).
    """
    ty, tx = tile
    m_exact = tile_margin(model.encoder, model.head.reach, model.head.name)  # refuses what cannot be tiled
    reach = int(model.head.reach)
    m = m_exact if margin is None else int(margin)
    if m < reach:
        raise ValueError(f"upscale_tiled: margin must be >= the head's reach {reach}, got {m}")
    (out_h, out_w), cell_clip = opts.out_size, opts.cell_clip
    _, _, lr_h, lr_w = lr.shape
    device = lr.device
    x, frame = model.inference_input(lr, opts.border)  # normalised and padded: the image that is tiled
    h, w = frame.padded
    # per-axis coordinates, mapped like the untiled path maps make_coord((H, W)) (elementwise: bit-identical)
    ys = make_coord((out_h, 1), flatten=False, device=device)[:, 0, 0]
    xs = make_coord((1, out_w), flatten=False, device=device)[0, :, 1]
    ys = frame.map(torch.stack([ys, ys], dim=-1))[0][:, 0]
    xs = frame.map(torch.stack([xs, xs], dim=-1))[0][:, 1]
    cell_one = make_cell((out_h, out_w), 1, device=device)
    if cell_clip is not None:
        cell_one = clip_cell(cell_one, (lr_h, lr_w), float(cell_clip))
    cell_one = frame.map(torch.zeros_like(cell_one), cell_one)[1]
    row_spans = _spans(_owners(ys, h, ty), math.ceil(h / ty))
    col_spans = _spans(_owners(xs, w, tx), math.ceil(w / tx))
    for i, (qy0, qy1) in enumerate(row_spans):
        if qy0 == qy1:
            continue
        r0, r1 = i * ty, min((i + 1) * ty, h)
        cy0, cy1 = max(r0 - m, 0), min(r1 + m, h)  # LR crop
        ly0, ly1 = max(r0 - reach, cy0), min(r1 + reach, cy1)  # latent window (global rows)
        for j, (qx0, qx1) in enumerate(col_spans):
            if qx0 == qx1:
                continue
            c0, c1 = j * tx, min((j + 1) * tx, w)
            cx0, cx1 = max(c0 - m, 0), min(c1 + m, w)
            lx0, lx1 = max(c0 - reach, cx0), min(c1 + reach, cx1)
            feat = model.encoder(x[:, :, cy0:cy1, cx0:cx1])
            feat = feat[:, :, ly0 - cy0 : ly1 - cy0, lx0 - cx0 : lx1 - cx0]
            state = model.head.prepare(feat, x[:, :, ly0:ly1, lx0:lx1], (ly0, lx0), (h, w))
            del feat
            coord = torch.stack(torch.meshgrid(ys[qy0:qy1], xs[qx0:qx1], indexing="ij"), dim=-1).view(-1, 2)
            yield Block(state, coord, cell_one, (qy0, qy1), (qx0, qx1))


@torch.no_grad()
def upscale_tiled(
    model: ImplicitSR,
    lr: Tensor,
    size: tuple[int, int],
    tile: int | tuple[int, int],
    margin: int | None = None,
    **options: Any,
) -> Tensor:
    """Like :meth:`ImplicitSR.upscale` (same output, ≤ 1e-5 in fp32) with the encoder run tile by tile.

    ``options``: ``chunk``, ``cell_clip``, ``border`` (:class:`UpscaleOptions`, checked once);
    :func:`tile_blocks` feeds the one render loop (:func:`liif_sr.models.render.render`). ``tile``: LR tile size
    (one int, or ``(ty, tx)``), >= 1; ``margin``: see :func:`tile_blocks`. Returns (B, 3, H, W) float32 in [0, 1].
    """
    ty, tx = (tile, tile) if isinstance(tile, int) else (int(tile[0]), int(tile[1]))
    if ty < 1 or tx < 1:
        raise ValueError(f"upscale_tiled: tile must be positive, got tile={tile}")
    opts = UpscaleOptions.create(size=size, **options).for_model(model)
    blocks = tile_blocks(model, lr, opts, (ty, tx), margin)
    return render(model.head, blocks, lr, opts, out_dtype=torch.float32)


# ---------------------------------------------------------------------------------------- memory budget
def auto_tile(
    h: int,
    w: int,
    max_memory_bytes: int,
    model: ImplicitSR,
    *,
    batch: int = 1,
    out_size: tuple[int, int] | None = None,
    min_tile: int = 16,
    **options: Any,
) -> int:
    """A tile size ``<= max(h, w)``, at least ``min_tile``, whose estimated peak memory fits the budget
    (:func:`liif_sr.inference.tile_policy.estimate_tile`; a helper for scripts). ``options``: e.g. ``chunk``
    (:class:`UpscaleOptions`). ValueError: the fixed costs alone exceed the budget."""
    from liif_sr.inference.tile_policy import estimate_tile

    opts = UpscaleOptions.create(size=out_size, max_memory=max_memory_bytes, **options)
    side = estimate_tile(model, (batch, 3, h, w), opts)
    return max(min_tile, min(side, max(h, w)))


def parse_bytes(text: str) -> int:
    """``"8G"``, ``"512M"``, ``"1.5GiB"``, ``"1000000"`` → bytes (binary units: K = 1024)."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kmgt]?)(i?b)?\s*", text.lower())
    if not match:
        raise ValueError(f"cannot parse a memory size from {text!r} (e.g. 8G, 512M)")
    value = float(match.group(1)) * 1024 ** " kmgt".index(match.group(2) or " ")
    if value < 1:
        raise ValueError(f"memory size must be positive, got {text!r}")
    return int(value)


def upscale_budgeted(model: ImplicitSR, lr: Tensor, size: tuple[int, int], **options: Any) -> Tensor:
    """:func:`~liif_sr.inference.upscale.upscale_tensor` (kept for scripts): tiled with ``tile`` (> 0), or with
    the tile :mod:`~liif_sr.inference.tile_policy` picks from ``max_memory``; untiled when it fits."""
    from liif_sr.inference.upscale import upscale_tensor

    return upscale_tensor(model, lr, size, **options)


def covers(tile: int, size: tuple[int, int], border: str) -> bool:
    """Whether one ``tile`` spans the whole (border-padded) ``size`` image: then it runs untiled (the same
    output), also with an encoder that cannot be tiled (SwinIR)."""
    ky, kx = border_px(size, border)
    return tile >= max(size[0] + 2 * ky, size[1] + 2 * kx)
