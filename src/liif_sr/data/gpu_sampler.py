"""Random-scale training batches built on the training device (``data.sampler=device``).

:class:`DeviceSampler` keeps the uint8 HR images on the device (one flat buffer) and turns a batch of image
indices into the same batch :func:`~liif_sr.data.sampling.random_scale_sample` + ``default_collate`` would
give, in a fixed number of batched tensor ops and without any host-device synchronisation:

1. per sample a scale ``s ~ U(scale_min, scale_max)`` and a square HR crop of ``n = round(inp_size * s)``
   pixels (capped by the image size, as on the CPU path) at a uniform random position;
2. one gather of every crop into a ``(B, 3, N, N)`` tensor, ``N`` the largest possible crop (pixels beyond a
   sample's own ``n`` get zero weight below);
3. **PIL's bicubic resampling, bit for bit**: the per-size coefficient matrices of Pillow's
   ``ImagingResample`` (Keys a = -0.5, support stretched by the scale, renormalised at the borders, 22-bit
   fixed point) are precomputed once for every crop size; the two separable passes (horizontal first, each
   rounded and clipped to 8 bits like Pillow) are two float64 batched matrix products whose integer results
   are exact, so the LR equals ``Image.resize(BICUBIC)`` of the crop (``tests/data/test_gpu_sampler.py``);
4. the paper's three random flips, applied to the LR and, through the coordinates, to the HR;
5. ``sample_q`` HR pixels per sample without replacement (``topk`` of uniform keys over the valid
   pixels), their pixel-centre coordinates (the same float32 arithmetic as
   :func:`~liif_sr.coords.make_coord`) and cells ``2 / n``.

Random numbers come from the sampler's own generator on the device (``seed``), so a batch depends only on
the seed, the indices and the number of batches drawn before. Only ``downsampler="pil"`` (the paper's) is
implemented here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

__all__ = ["CropParams", "DeviceSampler", "pil_bicubic_matrix"]

_PRECISION_BITS = 22  # Pillow's Resample.c: 32 - 8 (bits per sample) - 2 (headroom)
_ONE = float(1 << _PRECISION_BITS)
_HALF = float(1 << (_PRECISION_BITS - 1))


def _pil_bicubic(x: np.ndarray) -> np.ndarray:
    """Pillow's ``bicubic_filter`` (a = -0.5), the same float64 expression order."""
    a = -0.5
    x = np.abs(x)
    near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1
    far = (((x - 5) * x + 8) * x - 4) * a
    return np.where(x < 1.0, near, np.where(x < 2.0, far, 0.0))


def pil_bicubic_matrix(in_size: int, out_size: int) -> np.ndarray:
    """Pillow's 8-bit bicubic resampling along one axis as a dense ``(out_size, in_size)`` matrix.

    Entries are Pillow's fixed-point integer coefficients (``precompute_coeffs`` then
    ``normalize_coeffs_8bpc``), stored as float64. One pass of ``Image.resize(BICUBIC)`` on 8-bit data is
    ``clip(floor((M @ x + 2**21) / 2**22), 0, 255)``.
    """
    if in_size < 1 or out_size < 1:
        raise ValueError(f"pil_bicubic_matrix: sizes must be positive, got {in_size} -> {out_size}")
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = 2.0 * filterscale
    ksize = int(math.ceil(support)) * 2 + 1
    center = (np.arange(out_size, dtype=np.float64) + 0.5) * scale
    xmin = np.maximum(np.trunc(center - support + 0.5).astype(np.int64), 0)
    xmax = np.minimum(np.trunc(center + support + 0.5).astype(np.int64), in_size) - xmin
    taps = np.arange(ksize)
    k = _pil_bicubic(((taps[None] + xmin[:, None]).astype(np.float64) - center[:, None] + 0.5) / filterscale)
    k = np.where(taps[None] < xmax[:, None], k, 0.0)
    total = np.add.accumulate(k, axis=1)[:, -1]  # sequential sum, as the C loop
    k = np.where(total[:, None] != 0.0, k / np.where(total == 0.0, 1.0, total)[:, None], k)
    fixed = np.where(k < 0, np.trunc(-0.5 + k * _ONE), np.trunc(0.5 + k * _ONE))
    dense = np.zeros((out_size, in_size), dtype=np.float64)
    rows = np.repeat(np.arange(out_size), ksize)
    cols = (xmin[:, None] + taps[None]).reshape(-1)
    keep = (taps[None] < xmax[:, None]).reshape(-1)
    dense[rows[keep], cols[keep]] = fixed.reshape(-1)[keep]
    return dense


class CropParams(NamedTuple):
    """The random choices of one batch; :meth:`DeviceSampler.draw` makes them, ``build`` applies them."""

    size: Tensor  # (B,) int64: HR crop side n
    x0: Tensor  # (B,) int64: first crop row in the image
    y0: Tensor  # (B,) int64: first crop column
    flips: Tensor  # (B, 3) bool: flip(-2), flip(-1), transpose(-2, -1), applied in this order
    row: Tensor  # (B, Q) int64: sampled pixel row in the flipped n x n crop
    col: Tensor  # (B, Q) int64: sampled pixel column


def _fixed_point_round(x: Tensor) -> Tensor:
    """Pillow's ``clip8((acc + 2**21) >> 22)`` on exact float64 integer accumulators."""
    return torch.floor((x + _HALF) * (1.0 / _ONE)).clamp_(0, 255)


class DeviceSampler:
    """Build whole random-scale training batches on ``device`` from uint8 HR images kept there.

    Args:
        images: HR images, uint8 ``(3, H, W)`` with ``min(H, W) >= inp_size`` (any device; copied once).
        inp_size, scale_min, scale_max, sample_q, augment: as :func:`liif_sr.data.sampling.random_scale_sample`.
        downsampler: only ``"pil"`` (bit-exact Pillow bicubic).
        device: where the images live and the batches are built.
        seed: seed of the sampler's generator (use a different one per DDP rank).
        max_bytes: refuse image sets larger than this on the device (``None``: no limit).
    """

    def __init__(
        self,
        images: Sequence[Tensor],
        inp_size: int = 48,
        scale_min: float = 1.0,
        scale_max: float = 4.0,
        sample_q: int | None = 2304,
        augment: bool = True,
        downsampler: str = "pil",
        device: torch.device | str = "cpu",
        seed: int = 0,
        max_bytes: int | None = None,
    ) -> None:
        if downsampler != "pil":
            raise ValueError(
                f"DeviceSampler implements downsampler='pil' only, got {downsampler!r} (use data.sampler=cpu)"
            )
        if sample_q is None:
            raise ValueError(
                "DeviceSampler needs a fixed sample_q (every sample of a batch has sample_q pixels)"
            )
        if not images:
            raise ValueError("DeviceSampler: no images")
        if not 0 < scale_min <= scale_max:
            raise ValueError(f"DeviceSampler: need 0 < scale_min <= scale_max, got {scale_min}, {scale_max}")
        for i, img in enumerate(images):
            if img.dtype != torch.uint8 or img.dim() != 3 or img.shape[0] != 3:
                raise ValueError(
                    f"DeviceSampler: image {i} must be uint8 (3, H, W), got {img.dtype} {tuple(img.shape)}"
                )
            if min(img.shape[1:]) < inp_size:
                raise ValueError(
                    f"DeviceSampler: image {i} {tuple(img.shape[1:])} is smaller than {inp_size}"
                )
        self.device = torch.device(device)
        self.inp_size, self.sample_q, self.augment = int(inp_size), int(sample_q), bool(augment)
        self.scale_min, self.scale_max = float(scale_min), float(scale_max)
        sizes = torch.tensor([tuple(img.shape[1:]) for img in images], dtype=torch.int64)
        numel = 3 * sizes[:, 0] * sizes[:, 1]
        total = int(numel.sum())
        if max_bytes is not None and total > max_bytes:
            raise ValueError(
                f"DeviceSampler: the images take {total / 2**30:.1f} GiB, over max_bytes={max_bytes / 2**30:.1f} GiB"
            )
        # crop sizes: round() as Python's (half to even), capped by the smallest side as the CPU path
        self.n_max = min(round(inp_size * scale_max), int(sizes.min(dim=1).values.max()))
        self.n_min = max(1, min(inp_size, round(inp_size * scale_min)))
        if self.sample_q > self.n_min**2:
            raise ValueError(
                f"DeviceSampler: sample_q={sample_q} > {self.n_min}² pixels of the smallest crop"
            )

        self.buffer = torch.empty(total, dtype=torch.uint8, device=self.device)
        offsets = torch.cumsum(numel, 0) - numel
        for img, off, n in zip(images, offsets.tolist(), numel.tolist(), strict=True):
            self.buffer[off : off + n].copy_(img.reshape(-1))
        self.heights = sizes[:, 0].to(self.device)
        self.widths = sizes[:, 1].to(self.device)
        self.offsets = offsets.to(self.device)
        # (sizes, inp, N) float64 fixed-point weights, zero past each size's own n input pixels
        table = np.zeros((self.n_max - self.n_min + 1, inp_size, self.n_max), dtype=np.float64)
        for i, n in enumerate(range(self.n_min, self.n_max + 1)):
            table[i, :, :n] = pil_bicubic_matrix(n, inp_size)
        self.table = torch.from_numpy(table).to(self.device)
        self.arange = torch.arange(self.n_max, device=self.device)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(int(seed))

    def __len__(self) -> int:
        return int(self.heights.shape[0])

    @property
    def nbytes(self) -> int:
        """Device memory held (images and resampling tables)."""
        return self.buffer.numel() + self.table.numel() * 8

    def _rand(self, *shape: int, dtype: torch.dtype = torch.float32) -> Tensor:
        return torch.rand(*shape, generator=self.generator, device=self.device, dtype=dtype)

    @torch.no_grad()
    def __call__(self, index: Tensor) -> dict[str, Tensor]:
        """A training batch for image ``index`` (B,) (int64, any device; moved to the sampler's device).

        Returns:
            ``inp`` (B, 3, inp, inp), ``coord`` (B, Q, 2), ``cell`` (B, Q, 2), ``gt`` (B, Q, 3), all float32
            on the device, values as the CPU path (``inp``/``gt`` in [0, 1], 8-bit levels).
        """
        index = index.to(self.device, torch.int64, non_blocking=True)
        with torch.autocast(self.device.type, enabled=False):
            return self.build(index, self.draw(index))

    def draw(self, index: Tensor) -> CropParams:
        """The random choices of one batch (all on the device, no synchronisation)."""
        b, inp = index.shape[0], self.inp_size
        h, w = self.heights[index], self.widths[index]
        # scale and crop size, as random_scale_sample: n = min(round(inp * s), H, W)
        s = self.scale_min + (self.scale_max - self.scale_min) * self._rand(b, dtype=torch.float64)
        n = torch.minimum(torch.round(inp * s).long(), torch.minimum(h, w)).clamp_(self.n_min, self.n_max)
        x0 = (self._rand(b, dtype=torch.float64) * (h - n + 1)).long().clamp_max_(h - n)
        y0 = (self._rand(b, dtype=torch.float64) * (w - n + 1)).long().clamp_max_(w - n)
        if self.augment:
            flips = self._rand(b, 3) < 0.5
        else:
            flips = torch.zeros(b, 3, dtype=torch.bool, device=self.device)
        # sample_q of the n x n pixels without replacement: the q smallest of uniform keys
        big = self.n_max
        valid = (self.arange[None, :, None] < n[:, None, None]) & (
            self.arange[None, None, :] < n[:, None, None]
        )
        keys = self._rand(b, big * big).masked_fill_(~valid.view(b, -1), 2.0)
        pos = keys.topk(self.sample_q, dim=1, largest=False, sorted=False).indices
        return CropParams(n, x0, y0, flips, pos // big, pos % big)

    def build(self, index: Tensor, p: CropParams) -> dict[str, Tensor]:
        """The batch for given random choices: crop, Pillow bicubic, flips, pixel samples."""
        b, big, q = index.shape[0], self.n_max, self.sample_q
        h, w, off = self.heights[index], self.widths[index], self.offsets[index]
        n = p.size
        # one gather of every crop (rows/cols past the image edge are clamped; they get zero weight)
        rows = torch.minimum(p.x0[:, None] + self.arange, h[:, None] - 1)  # (B, N)
        cols = torch.minimum(p.y0[:, None] + self.arange, w[:, None] - 1)
        chan = torch.arange(3, device=self.device)[None, :, None, None] * (h * w)[:, None, None, None]
        flat = off[:, None, None, None] + chan + rows[:, None, :, None] * w[:, None, None, None]
        crop = self.buffer[flat + cols[:, None, None, :]]  # (B, 3, N, N) uint8

        # Pillow bicubic: horizontal pass, round to 8 bits, vertical pass, round (exact in float64)
        m = self.table[n - self.n_min].unsqueeze(1)  # (B, 1, inp, N)
        tmp = _fixed_point_round(torch.matmul(crop.double(), m.transpose(-1, -2)))  # (B, 3, N, inp)
        lr = _fixed_point_round(torch.matmul(m, tmp)).float()  # (B, 3, inp, inp), exact 8-bit levels

        hflip, vflip, dflip = p.flips.unbind(1)
        lr = torch.where(hflip[:, None, None, None], lr.flip(-2), lr)
        lr = torch.where(vflip[:, None, None, None], lr.flip(-1), lr)
        lr = torch.where(dflip[:, None, None, None], lr.transpose(-2, -1), lr)

        # pixel-centre coordinates with make_coord's float32 arithmetic: (-1 + 1/n) + (2/n) * i
        inv = 1.0 / n.double()
        start, step = (inv - 1.0).float()[:, None], (2.0 * inv).float()[:, None]
        coord = torch.stack((start + step * p.row.float(), start + step * p.col.float()), dim=-1)
        cell = (2.0 * inv).float()[:, None, None].expand(b, q, 2).contiguous()
        # source pixel in the unflipped crop: undo the transpose, then the two flips
        i = torch.where(dflip[:, None], p.col, p.row)
        j = torch.where(dflip[:, None], p.row, p.col)
        j = torch.where(vflip[:, None], n[:, None] - 1 - j, j)
        i = torch.where(hflip[:, None], n[:, None] - 1 - i, i)
        src = (i * big + j)[:, None, :].expand(b, 3, q)
        gt = crop.view(b, 3, big * big).gather(2, src).transpose(1, 2)  # (B, Q, 3) uint8
        return {"inp": lr.div_(255).contiguous(), "coord": coord, "cell": cell, "gt": gt.float() / 255}
