"""The tile policy: the smallest useful tile, and the tile a memory budget allows — the one place for both.

:func:`resolve_tile` is what every path asks (``liif-sr upscale``, :func:`~liif_sr.inference.upscale.upscale_tensor`,
:func:`~liif_sr.inference.tiling.upscale_budgeted`): 0 (untiled) or the LR tile for one image.
"""

from __future__ import annotations

import math

from liif_sr.errors import UserError
from liif_sr.inference.tiling import TilingUnsupportedError, covers, tile_margin, untileable
from liif_sr.models.implicit_sr import ImplicitSR
from liif_sr.models.upscale_options import UpscaleOptions

# a tile smaller than this many encoder margins re-encodes more than (1 + 2/2)^2 = 4x the pixels
_MIN_TILE_MARGINS = 2
_MIN_TILE_ABS = 16


def min_tile(model: ImplicitSR) -> int:
    """Smallest useful tile: ``2 * margin`` LR pixels (at most 4x re-encoding), and at least 16."""
    margin = tile_margin(model.encoder, model.head.reach, model.head.name)
    return max(_MIN_TILE_ABS, _MIN_TILE_MARGINS * margin)


def raise_tile(model: ImplicitSR, tile: int) -> tuple[int, str | None]:
    """A checked ``tile`` (0 = off) raised to :func:`min_tile` if smaller: ``(tile, note or None)``.

    Tiling computes the same function (up to float rounding), so a larger tile changes memory and speed,
    not the result; a tile smaller than the encoder's margin would re-encode ``(2 * margin + tile)^2 /
    tile^2`` times the image. A model that cannot be tiled (a SwinIR encoder, an LM-CiaoSR head) keeps any
    tile here: one that covers the image runs untiled, a smaller one is refused when the image is seen.
    """
    if untileable(model) is not None or tile == 0:
        return tile, None
    floor = min_tile(model)
    if tile < floor:
        return floor, (
            f"tile {tile} is below this model's minimum of {floor} LR pixels (2x its encoder margin; "
            f"smaller tiles only re-encode more): using {floor}"
        )
    return tile, None


def estimate_tile(
    model: ImplicitSR, lr_shape: tuple[int, ...], opts: UpscaleOptions, dtype_bytes: int = 4
) -> int:
    """The largest tile side whose estimated peak memory fits ``opts.max_memory`` (unfloored; may be < 1).

    Per LR pixel of a tile crop: the encoder's activations (:meth:`Encoder.activation_bytes_per_pixel`), the
    latent window and the head's prepared state (:meth:`DecoderHead.state_bytes_per_latent`, counted twice
    for its working copy). Fixed: the (padded) normalised LR, the output image (if ``opts.size``) and the
    decoding working set of ``opts.chunk`` queries (:meth:`DecoderHead.decode_bytes_per_query`). An encoder
    or head that cannot be tiled (SwinIR, LM-CiaoSR): the estimate of one untiled run (no margin).

    Raises:
        ValueError: the fixed costs alone exceed the budget.
    """
    encoder, head = model.encoder, model.head
    batch, h, w = int(lr_shape[0]), int(lr_shape[-2]), int(lr_shape[-1])
    m = 0 if untileable(model) is not None else tile_margin(encoder, head.reach)
    per_px = (
        encoder.activation_bytes_per_pixel(dtype_bytes)
        + int(encoder.out_dim) * dtype_bytes
        + 2 * head.state_bytes_per_latent(dtype_bytes)
    ) * batch
    fixed = batch * opts.chunk * head.decode_bytes_per_query(dtype_bytes) + batch * 3 * h * w * 4 * 2
    if opts.size is not None:
        fixed += batch * 3 * opts.size[0] * opts.size[1] * 4
    avail = int(opts.max_memory or 0) - fixed
    if avail <= 0:
        raise ValueError(
            f"memory budget {opts.max_memory} B is below the fixed cost (~{fixed} B); lower --chunk"
        )
    return int(math.isqrt(avail // per_px)) - 2 * m


def budget_tile(model: ImplicitSR, lr_shape: tuple[int, ...], opts: UpscaleOptions) -> int:
    """The tile ``opts.max_memory`` allows for one image: 0 when it fits untiled; refused (one line) when only
    tiles below :func:`min_tile` fit, or when a model that cannot be tiled does not fit."""
    h, w = int(lr_shape[-2]), int(lr_shape[-1])
    try:
        tile = max(1, min(estimate_tile(model, lr_shape, opts), max(h, w)))
    except ValueError as exc:
        raise UserError(f"--max-memory: {exc}") from None
    if tile >= max(h, w):
        return 0
    part = untileable(model)
    if part is not None:
        raise TilingUnsupportedError(
            f"--max-memory {opts.max_memory} B: too small for a {h}x{w} input with this model untiled (room "
            f"for {tile}-pixel tiles), and {part} cannot be tiled: raise --max-memory"
        )
    floor = min_tile(model)
    if tile < min(floor, max(h, w)):
        raise UserError(
            f"--max-memory {opts.max_memory} B: too small for a {h}x{w} input with this model (it leaves room "
            f"for {tile}-pixel tiles; the minimum useful tile is {floor}): raise --max-memory or lower --batch/--chunk"
        )
    return max(tile, floor)


def resolve_tile(model: ImplicitSR, lr_shape: tuple[int, ...], opts: UpscaleOptions) -> int:
    """The LR tile for one image under ``opts`` (already raised to the floor): 0 = untiled (no tile, or a tile
    that covers the border-padded image — the same output), else ``opts.tile`` or the budget's tile."""
    tile = opts.tile
    if tile == 0 and opts.max_memory is not None:
        tile = budget_tile(model, lr_shape, opts)
    if tile <= 0 or covers(tile, (int(lr_shape[-2]), int(lr_shape[-1])), opts.border):
        return 0
    return tile
