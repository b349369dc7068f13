"""The decoder contract every head implements (LIIF, LTE, MetaSR, ...).

A head turns an encoder's latent grid into RGB at continuous coordinates in two steps:

* :meth:`DecoderHead.prepare` — once per image (or per tile): everything that depends only on the latent
  grid and the LR image (per-latent projections, convolutions, the normalised LR for a global skip).
* :meth:`DecoderHead.decode` — once per query chunk: ``(B, Q, 2)`` coordinates and cells → ``(B, Q, 3)``.

A state may describe a *window* of the latent grid (exact tiling): the window's offset and the full grid's
size travel in the state, so that ``decode`` computes every coordinate in the global frame (bit for bit as
on the whole grid) and only its gathers are local. Callers (the model, tiling, validation, evaluation, the
CLI) use only this contract: ``name``, ``in_channels``, ``config``, ``reach``, ``paper_cell_clip``,
:meth:`state_bytes_per_latent`, :meth:`prepare`, :meth:`decode`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

from torch import Tensor, nn


@dataclass
class HeadState:
    """What :meth:`DecoderHead.prepare` computed for one latent window; heads subclass it.

    Attributes:
        offset: global latent index ``(oy, ox)`` of the window's top-left latent.
        full_size: the whole latent grid's ``(h, w)`` (the coordinate frame of the queries).
        size: the window's ``(th, tw)``.
    """

    offset: tuple[int, int]
    full_size: tuple[int, int]
    size: tuple[int, int]


def window_of(feat: Tensor, offset: tuple[int, int] | None, full_size: tuple[int, int] | None) -> tuple:
    """``(offset, full_size, size)`` of a latent window ``feat`` (B, C, th, tw); defaults: the whole grid."""
    size = (int(feat.shape[-2]), int(feat.shape[-1]))
    offset = (0, 0) if offset is None else (int(offset[0]), int(offset[1]))
    full = size if full_size is None else (int(full_size[0]), int(full_size[1]))
    if offset[0] < 0 or offset[1] < 0 or offset[0] + size[0] > full[0] or offset[1] + size[1] > full[1]:
        raise ValueError(f"latent window at {offset} of size {size} does not fit the grid {full}")
    return offset, full, size


def cpu_inference(head: nn.Module) -> bool:
    """Whether the head's inference decode runs on the CPU (its parameters there, eval mode): its memory
    estimates (:meth:`DecoderHead.state_bytes_per_latent`, :meth:`DecoderHead.decode_bytes_per_query`) then
    describe the CPU inference paths (C kernels, cache-sized blocks) rather than the GPU whole-chunk form."""
    param = next(head.parameters(), None)
    return not head.training and (param is None or param.device.type == "cpu")


class DecoderHead(nn.Module, ABC):
    """Base class of decoder heads.

    Class attributes:
        name: registry name (``"liif"``, ``"lte"``, ``"metasr"``), stored in checkpoints; set by
            :func:`~liif_sr.models.registry.register_head`. Official checkpoint formats live in
            :mod:`liif_sr.models.official_heads`, not here.
        reach: latent pixels beyond a query's own LR pixel that its output may depend on (ensemble
            neighbours plus the head's own convolution/unfold radius); tiling keeps that many latents of
            context around each tile. None: unbounded (a non-local head, e.g. LM-CiaoSR's attention looks
            across the whole latent grid): tiles would change the output, so tiling refuses the head.
        paper_cell_clip: the cell clipping of the head's paper test protocol (LTE: 4.0, i.e. the x4 cell
            for larger scales), or None. Applied by evaluation and upscaling by default, never by ``decode``.
        auto_bf16: whether ``precision="auto"`` may run ``decode`` in bf16 on hardware with native bf16
            (:mod:`liif_sr.models.precision`). False by default: a head opts in (True) only once its bf16
            decode was measured to cost at most 0.01 dB of Y-PSNR against fp32 (BENCHMARKS.md "Precision":
            LIIF, LTE). MetaSR (measured over the bound) and the LM heads (not measured: no trained weights
            here) keep fp32 under ``auto``.

    Instance attributes:
        in_channels: latent channels the head expects (the encoder's ``out_dim``).
        config: plain data; ``type(head)(in_channels=..., **config)`` rebuilds the head.
        fast: True for the optimised path (default), False for the step-by-step reference algorithm.
    """

    name: ClassVar[str]
    reach: ClassVar[int | None] = 2
    paper_cell_clip: ClassVar[float | None] = None
    auto_bf16: ClassVar[bool] = False

    in_channels: int
    config: dict[str, Any]
    fast: bool

    @abstractmethod
    def prepare(
        self,
        feat: Tensor,
        lr: Tensor | None = None,
        offset: tuple[int, int] | None = None,
        full_size: tuple[int, int] | None = None,
    ) -> HeadState:
        """Per-image work for ``feat`` (B, C, th, tw) and the normalised LR ``lr`` (B, 3, th, tw) in [-1, 1].

        ``offset``/``full_size`` place the window in the whole latent grid (default: it is the whole grid).
        ``lr`` covers the same pixels as ``feat``; heads that do not use it accept None.
        """

    @abstractmethod
    def decode(self, state: HeadState, coord: Tensor, cell: Tensor | None = None) -> Tensor:
        """``coord`` (B, Q, 2) in [-1, 1] (global frame, (y, x)) and ``cell`` (B, Q, 2) →
        (B, Q, 3) in the normalised output space ((x - 0.5) / 0.5)."""

    # ------------------------------------------------------------------ budgets
    def state_bytes_per_latent(self, dtype_bytes: int = 4) -> int:
        """Bytes of prepared state per latent pixel (for memory budgets), including what the first decode
        caches in the state on the path that will run (:func:`cpu_inference`, kernel availability)."""
        return self.in_channels * dtype_bytes

    def decode_bytes_per_query(self, dtype_bytes: int = 4) -> int:
        """Peak working bytes per decoded query of a chunk (for choosing query chunks under a memory budget),
        on the path that will run (:func:`cpu_inference`, kernel availability); CPU block paths add a
        constant ~1 MiB per worker thread, not counted."""
        return 4 * 256 * 3 * dtype_bytes

    def forward(
        self, feat: Tensor, coord: Tensor, cell: Tensor | None = None, lr: Tensor | None = None
    ) -> Tensor:
        """``decode(prepare(feat, lr), coord, cell)``: (B, Q, 3) in the normalised space."""
        return self.decode(self.prepare(feat, lr), coord, cell)
