"""Pixel-centre coordinates and cells, the LIIF convention.

For an axis of length ``n`` the pixel centres are ``-1 + 1/n + (2/n) i`` for ``i = 0..n-1``
(``align_corners=False`` on [-1, 1]); coordinate tuples are ``(row, col)``, i.e. ``(y, x)``.
A *cell* is the size of one output pixel in the same units: ``(2/H, 2/W)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


def make_coord(
    shape: tuple[int, int],
    flatten: bool = True,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Pixel-centre coordinates of an ``H x W`` grid.

    Args:
        shape: ``(H, W)``, both ≥ 1.
        flatten: return ``(H*W, 2)`` (row-major) instead of ``(H, W, 2)``.

    Returns:
        ``(H*W, 2)`` or ``(H, W, 2)`` in (-1, 1), last dim ``(y, x)``.
    """
    h, w = (int(s) for s in shape)
    if h < 1 or w < 1:
        raise ValueError(f"make_coord: shape must be positive, got {shape}")
    axes = []
    for n in (h, w):
        # float32 arithmetic in the official order, so coordinates (and nearest-latent ties) are bit-identical
        r = 2.0 / (2 * n)
        axes.append(-1.0 + r + (2 * r) * torch.arange(n, device=device).float())
    grid = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).to(dtype)
    return grid.reshape(-1, 2) if flatten else grid


def make_cell(
    shape: tuple[int, int],
    n: int,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Cells ``(2/H, 2/W)`` for ``n`` queries of an ``H x W`` output: ``(n, 2)``."""
    h, w = shape
    cell = torch.tensor([2.0 / h, 2.0 / w], device=device, dtype=dtype)
    return cell.expand(n, 2).clone()


@dataclass(frozen=True)
class Frame:
    """Where an ``h x w`` image sits inside the padded ``h' x w'`` grid a model decodes.

    ``top``/``left``: padded rows/columns before the image; ``size``: the image's ``(h, w)``;
    ``padded``: ``(h', w')``. The identity frame (nothing padded) maps every coordinate to itself.
    """

    size: tuple[int, int]
    padded: tuple[int, int]
    top: int = 0
    left: int = 0

    @property
    def identity(self) -> bool:
        return self.size == self.padded

    def map(self, coord: Tensor, cell: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """Coordinates and cells of the image → of the padded grid (a point keeps its pixel position).

        Per axis ``c' = (c + 1) * h / h' - 1 + 2 * top / h'`` and ``cell' = cell * h / h'``; the identity
        frame returns its inputs unchanged (bit for bit).
        """
        if self.identity:
            return coord, cell
        ratio = (self.size[0] / self.padded[0], self.size[1] / self.padded[1])
        shift = (2 * self.top / self.padded[0], 2 * self.left / self.padded[1])
        return to_padded_frame(coord, cell, ratio, shift)


def to_padded_frame(
    coord: Tensor,
    cell: Tensor | None,
    ratio: tuple[float, float],
    shift: tuple[float, float] = (0.0, 0.0),
) -> tuple[Tensor, Tensor | None]:
    """Map coordinates of an ``h x w`` image into the frame of its padded ``h' x w'`` version.

    Per axis ``c' = (c + 1) * r - 1 + s`` and ``cell' = cell * r`` with ``ratio = (h / h', w / w')`` and
    ``shift = (2 top / h', 2 left / w')`` (zero when the image sits at the top-left): a point keeps its
    pixel position.

    Args:
        coord: ``(..., 2)`` in the ``(y, x)`` order; cell: ``(..., 2)`` or None.
        ratio: ``(h / h', w / w')``, each in (0, 1].
        shift: ``(2 top / h', 2 left / w')``, each in [0, 2).

    Returns:
        ``(coord', cell')`` of the same shapes.
    """
    if not all(0.0 < r <= 1.0 for r in ratio):
        raise ValueError(f"to_padded_frame: ratio must be in (0, 1], got {ratio}")
    if not all(0.0 <= s < 2.0 for s in shift):
        raise ValueError(f"to_padded_frame: shift must be in [0, 2), got {shift}")
    r = torch.tensor(ratio, dtype=coord.dtype, device=coord.device)
    coord = (coord + 1) * r - 1
    if any(shift):
        coord = coord + torch.tensor(shift, dtype=coord.dtype, device=coord.device)
    return coord, None if cell is None else cell * r.to(cell.dtype)
