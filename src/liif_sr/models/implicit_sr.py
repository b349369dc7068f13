"""The model: an :class:`~liif_sr.models.encoders.base.Encoder` (LR → latent grid) plus a
:class:`~liif_sr.models.heads.base.DecoderHead` (latent + coordinate → RGB: LIIF, LTE, MetaSR).

Two forward semantics:

* training (:meth:`ImplicitSR.forward`): the LR crop as given, no padding, as the papers' training code;
* inference (:meth:`ImplicitSR.query`, :meth:`ImplicitSR.upscale`): the LR may be padded first — by the encoder's own
  inference padding (SwinIR: the official evaluation's flip padding to the window multiple) and, with
  ``border="replicate"``, by :data:`BORDER_PX` replicated pixels on every side — and the padded latent is
  decoded with the coordinates mapped into the padded frame (:class:`~liif_sr.coords.Frame`).

``border="none"`` is the papers' protocol (the encoders' zero padding at the image border); it is what
``liif-sr-eval`` and training validation use and what the parity tests check against the official code.
``border="replicate"`` (the default of :meth:`upscale` and ``liif-sr upscale``) keeps flat borders flat and
tiny images (1 x 1, 1 x 500) in their colours; see ``docs/architecture.md`` for its effect on PSNR.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from liif_sr.coords import Frame
from liif_sr.errors import InvalidArgumentError
from liif_sr.models.checks import check_border, check_lr, check_query
from liif_sr.models.encoders.base import Encoder
from liif_sr.models.heads.base import DecoderHead, HeadState
from liif_sr.models.render import denormalise, render, whole_image
from liif_sr.models.run_context import check_device, run_context, wants_grad, working_dtype
from liif_sr.models.upscale_options import DEFAULT_CHUNK, Border, UpscaleOptions

HeadFactory = Callable[..., DecoderHead]
#: LR pixels replicated on every side with ``border="replicate"`` (flat 64x64 colour at x4: max error
#: 6.8 → 0.6 grey levels; 1x1 pixel at x30: mean error 45 → 0.3 levels; shipped model); at most the
#: image's size along an axis (:func:`border_px`)
BORDER_PX = 8


@dataclass
class Prepared:
    """:meth:`ImplicitSR.prepare`'s result: the head's state and the frame the queries are mapped into.

    ``owner`` (the model that made it), ``batch``, ``dtype`` (of ``lr``: the results' dtype) and ``grad``
    (whether the state keeps an autograd graph) let :meth:`ImplicitSR.decode` check and run its queries.
    """

    head_state: HeadState
    frame: Frame
    owner: Any = None
    batch: int = 1
    dtype: torch.dtype = torch.float32
    grad: bool = False


class ImplicitSR(nn.Module):
    """Local implicit image function model (any registered encoder and head).

    Images are float in [0, 1] at this API; internally the input is normalised to ``(x - 0.5) / 0.5``
    and the head predicts in that normalised space (as the papers' code does).

    Args:
        encoder: an :class:`Encoder` mapping ``(B, 3, h, w)`` → ``(B, out_dim, h, w)``.
        head: a :class:`DecoderHead`, or a factory (e.g. a Hydra ``_partial_``) called with
            ``in_channels=encoder.out_dim``.
    """

    def __init__(self, encoder: Encoder, head: DecoderHead | HeadFactory) -> None:
        super().__init__()
        from liif_sr.models.registry import (
            IncompatibleComponentsError,
            check_head_factory,
            check_registered,
            encoder_name,
        )

        encoder_name(encoder)  # an unregistered class is refused now, not at the first checkpoint save
        if not isinstance(head, nn.Module):
            check_head_factory(head, encoder)
            try:
                head = head(in_channels=encoder.out_dim)
            except (TypeError, ValueError) as exc:  # the head's own argument checks, one line
                raise IncompatibleComponentsError(
                    f"head cannot be built for encoder {encoder.name} (out_dim {encoder.out_dim}): {exc}"
                ) from None
        self.encoder, self.head = encoder, head
        check_registered(self.encoder, self.head)
        if self.head.in_channels != encoder.out_dim:
            raise IncompatibleComponentsError(
                f"ImplicitSR: head expects {self.head.in_channels} latent channels, encoder gives {encoder.out_dim}"
            )

    @property
    def config(self) -> dict[str, Any]:
        """Plain-data description (no code) from which :func:`liif_sr.models.build_model` rebuilds it."""
        return {
            "encoder": {"name": self.encoder.name, "args": dict(self.encoder.config)},
            "head": {"name": self.head.name, **self.head.config},
        }

    @property
    def name(self) -> str:
        """``<encoder>-<head>`` of the registry names, e.g. ``edsr_baseline-liif``."""
        from liif_sr.training.run_name import model_name  # stdlib-only module: the one spelling of the name

        return model_name(self.encoder.name, self.head.name)

    # ------------------------------------------------------------------ training
    def encode(self, lr: Tensor) -> Tensor:
        """``lr`` (B, 3, h, w) in [0, 1] → latent (B, C, h, w), without inference padding."""
        return self.encoder(normalise(lr))

    def forward(self, lr: Tensor, coord: Tensor, cell: Tensor | None = None) -> Tensor:
        """Training forward: (B, Q, 3) prediction in the normalised space ((x - 0.5) / 0.5).

        No inference padding (as the official training: SwinIR's 48x48 crops are window multiples).
        """
        x = normalise(lr)
        return self.head(self.encoder(x), coord, cell, lr=x)

    # ------------------------------------------------------------------ inference
    def inference_input(self, lr: Tensor, border: Border = "none") -> tuple[Tensor, Frame]:
        """Normalised, padded input ``(B, 3, h', w')`` of ``lr`` (B, 3, h, w) in [0, 1], and its frame.

        ``border`` is one of ``"none"``, ``"replicate"`` (checked by the callers' entries)."""
        x = normalise(lr)
        h, w = x.shape[-2:]
        ky, kx = border_px((int(h), int(w)), border)
        if ky or kx:
            x = F.pad(x, (kx, kx, ky, ky), mode="replicate")
        x = self.encoder.pad_input(x)
        return x, Frame(size=(h, w), padded=(int(x.shape[-2]), int(x.shape[-1])), top=ky, left=kx)

    def _param(self) -> Tensor:
        return next(self.parameters())

    def prepare(self, lr: Tensor, border: Border = "none") -> Prepared:
        """Encode ``lr`` (B, 3, h, w) in [0, 1] once; :meth:`decode` then answers any number of queries.

        Any floating dtype; without autograd unless ``lr`` requires grad (:mod:`~liif_sr.models.run_context`).
        """
        check_lr(lr)
        check_border(border)
        return self._prepare(lr, border)

    def _prepare(self, lr: Tensor, border: Border) -> Prepared:
        """:meth:`prepare` of a checked ``lr`` and ``border``."""
        param = self._param()
        check_device("lr", lr, param)
        grad = wants_grad(lr)
        with run_context(param, grad):
            x, frame = self.inference_input(lr.to(working_dtype(param)), border)
            state = self.head.prepare(self.encoder(x), x)
        return Prepared(state, frame, weakref.ref(self), int(lr.shape[0]), lr.dtype, grad)

    def decode(self, prepared: Prepared, coord: Tensor, cell: Tensor | None = None) -> Tensor:
        """(B, Q, 3) normalised prediction at ``coord``/``cell`` (B, Q, 2) of the unpadded image, in the
        dtype of the prepared ``lr``."""
        if not isinstance(prepared, Prepared) or prepared.owner is None or prepared.owner() is not self:
            raise InvalidArgumentError(
                "decode: the state was not prepared by this model (call this model's prepare(lr) first)"
            )
        check_query(coord, cell, prepared.batch)
        param = self._param()
        check_device("coord", coord, param)
        if cell is not None:
            check_device("cell", cell, param)
        work = working_dtype(param)
        with run_context(param, prepared.grad or wants_grad(coord, cell)):
            coord, cell = prepared.frame.map(coord.to(work), None if cell is None else cell.to(work))
            out = self.head.decode(prepared.head_state, coord, cell)
        return out.to(prepared.dtype)

    def query(self, lr: Tensor, coord: Tensor, cell: Tensor | None = None, border: Border = "none") -> Tensor:
        """RGB at ``coord`` (B, Q, 2) in [-1, 1] with ``cell`` (B, Q, 2): (B, Q, 3) in [0, 1] space, unclamped.

        ``border="none"`` (default): the papers' function (with the encoder's inference padding, e.g.
        SwinIR's evaluation protocol); ``"replicate"``: see the module doc. Any floating dtype (the result has
        ``lr``'s); no autograd graph is kept unless an input requires grad (:mod:`~liif_sr.models.run_context`).
        """
        return denormalise(self.decode(self.prepare(lr, border), coord, cell))

    def resolve_cell_clip(self, cell_clip: float | str | None) -> float | None:
        """``"auto"`` → the head's paper protocol (LTE: 4.0, LIIF/MetaSR: None); else as given."""
        return UpscaleOptions(cell_clip=cell_clip, precision="fp32").for_model(self).cell_clip

    def resolve_precision(self, precision: str = "auto") -> str:
        """``"auto"`` → what :meth:`upscale` runs on this model's device: ``"bf16-decode"`` (native bf16: the
        head's decode in bf16) or ``"fp32"`` (:mod:`~liif_sr.models.precision`); else as given."""
        return UpscaleOptions.create(precision=precision).for_model(self).precision

    @torch.no_grad()
    def upscale(
        self,
        lr: Tensor,
        size: tuple[int, int] | int,
        chunk: int = DEFAULT_CHUNK,
        cell_clip: float | str | None = "auto",
        border: Border = "replicate",
        precision: str = "auto",
    ) -> Tensor:
        """Render ``lr`` (B, 3, h, w) in [0, 1] at ``size = (H, W)``: (B, 3, H, W) clamped to [0, 1].

        The encoder runs once on the whole image; queries are decoded in chunks of ``chunk`` (memory is
        bounded by the chunk for every head). ``cell_clip``: ``"auto"`` = the head's paper test protocol
        (LTE: the x4 cell above x4; LIIF, MetaSR: off), a number (e.g. 4.0), or None (off).
        ``border``: ``"replicate"`` (default) or ``"none"`` (the papers' protocol). ``precision``: ``"auto"``
        (default: the head's decode in bf16 where the device has native bf16 — at most 0.01 dB from fp32,
        measured — else fp32; :meth:`resolve_precision` says which), ``"fp32"`` (exact), ``"bf16-decode"``,
        ``"bf16"`` (the whole network), ``"fp16"`` (CUDA). The keywords become one
        :class:`~liif_sr.models.upscale_options.UpscaleOptions` (checked once); :meth:`render` takes one.
        """
        check_lr(lr)
        opts = UpscaleOptions.create(
            size=size, chunk=chunk, cell_clip=cell_clip, border=border, precision=precision
        )
        return self.render(lr, opts.for_model(self))

    @torch.no_grad()
    def render(self, lr: Tensor, opts: UpscaleOptions) -> Tensor:
        """:meth:`upscale` with options already checked and resolved for this model (``opts.for_model``) and a
        checked ``lr``: the whole-image producer into the one render loop (:mod:`~liif_sr.models.render`)."""
        return render(self.head, whole_image(self, lr, opts), lr, opts, out_dtype=lr.dtype)


def border_px(size: tuple[int, int], border: str) -> tuple[int, int]:
    """Replicated LR pixels per side ``(rows, columns)`` for an image of ``size`` (h, w): :data:`BORDER_PX`,
    at most the image's own size along that axis — a 1 x 60000 strip gets one row above and below (3 rows
    encoded instead of 17: the encoder's cost is per encoded pixel); images of 8 pixels and more per axis get
    the full border. ``border="none"``: (0, 0)."""
    if border != "replicate":
        return 0, 0
    return min(BORDER_PX, size[0]), min(BORDER_PX, size[1])


def normalise(lr: Tensor) -> Tensor:
    """``lr`` (B, 3, h, w) in [0, 1] → the encoder's input space ``(lr - 0.5) / 0.5``."""
    if lr.dim() != 4 or lr.shape[1] != 3:
        raise ValueError(f"ImplicitSR: lr must be (B, 3, h, w), got {tuple(lr.shape)}")
    return (lr - 0.5) / 0.5


def clip_cell(cell: Tensor, lr_size: tuple[int, int], max_scale: float) -> Tensor:
    """LTE-style cell clipping: never use a cell smaller than the one of ×``max_scale`` (per axis)."""
    floor = torch.tensor([2.0 / (lr_size[0] * max_scale), 2.0 / (lr_size[1] * max_scale)], device=cell.device)
    return torch.maximum(cell, floor.to(cell.dtype))
