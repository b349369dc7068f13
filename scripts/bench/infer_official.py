"""``bench_infer.py``: the official code's inference, timed in the same run as ours with the same weights.

The official forwards are the test-only transcriptions ``tests/official_liif.py`` (LIIF, EDSR-baseline,
RDN), ``tests/official_lte.py`` (LTE, MetaSR) and ``tests/official_swinir.py`` (SwinIR). :func:`official_twin`
builds the official module matching one of the script's model configs and our model from its checkpoint dict
(through ``official_to_ours``, as ``load_model`` reads an official file): both compute the same function.
:func:`official_upscale` runs the official ``test.py`` flow: ``gen_feat`` once, then ``query_rgb`` over query
chunks of ``eval_bsize`` = 30000 (SwinIR: ``official_swinir_eval``'s flip padding and frame).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
from torch import nn

from liif_sr.models.build import build_model
from liif_sr.models.implicit_sr import ImplicitSR
from liif_sr.models.official import official_to_ours

TESTS = Path(__file__).resolve().parents[2] / "tests"
EVAL_BSIZE = 30000


def _import_official():
    if str(TESTS) not in sys.path:
        sys.path.insert(0, str(TESTS))
    import official_liif
    import official_lte
    import official_swinir

    return official_liif, official_lte, official_swinir


def official_twin(config: dict) -> tuple[nn.Module, ImplicitSR] | None:
    """(official module, our model with its weights) for a script model config, or None when the official code
    cannot express it (reduced sizes it has no argument for) or ``tests/`` is absent (an installed copy)."""
    try:
        liif, lte, swin = _import_official()
    except ImportError:
        return None
    enc, head = config["encoder"], config["head"]
    args = dict(enc.get("args", {}))
    torch.manual_seed(0)
    if enc["name"] == "edsr_baseline":
        encoder, enc_args = liif.OfficialEDSR(**args), dict(args)
    elif enc["name"] == "rdn" and not args:
        encoder, enc_args = liif.OfficialRDN(), {"G0": 64, "RDNkSize": 3, "RDNconfig": "B"}
    elif enc["name"] == "swinir" and not args:
        encoder, enc_args = swin.OfficialSwinIR(), {}
    else:
        return None
    extra = {k: v for k, v in head.items() if k != "name"}
    if head["name"] == "liif" and set(extra) <= {"hidden_list"}:
        hidden = extra.get("hidden_list", [256] * 4)
        model = liif.OfficialLIIF(encoder, hidden_list=hidden)
        ckpt = liif.official_checkpoint(model, enc["name"].replace("_", "-"), enc_args, hidden, {})
    elif head["name"] == "lte" and set(extra) <= {"hidden_list", "hidden_dim"}:
        model = lte.OfficialLTE(encoder, **extra)
        ckpt = lte.official_head_checkpoint(model, "lte", enc["name"].replace("_", "-"), enc_args)
    elif head["name"] == "metasr" and not extra:
        model = lte.OfficialMetaSR(encoder)
        ckpt = lte.official_head_checkpoint(model, "metasr", enc["name"].replace("_", "-"), enc_args)
    else:
        return None
    ours_config, sd = official_to_ours(ckpt["model"])
    ours = build_model(ours_config)
    ours.load_state_dict(sd, strict=True)
    return model.eval(), ours.eval()


def _sync() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


class DecodeClock:
    """Wall seconds and process CPU seconds spent in a method (``query_rgb``, ``head.decode``) of an object
    while installed (the process CPU time counts every thread: the decode's worker pool too). With CUDA in use,
    the device is synchronised before and after each call, so the call's kernels are counted in it (without
    that, a decode returns as soon as it has queued its work: the first GPU run gave "9000 % of the floor")."""

    def __init__(self, owner: object, method: str) -> None:
        self.owner, self.method, self.seconds, self.cpu_seconds = owner, method, 0.0, 0.0
        inner = getattr(owner, method)

        def timed(*args, **kwargs):
            _sync()
            t0, c0 = time.perf_counter(), time.process_time()
            try:
                return inner(*args, **kwargs)
            finally:
                _sync()
                self.seconds += time.perf_counter() - t0
                self.cpu_seconds += time.process_time() - c0

        setattr(owner, method, timed)

    def remove(self) -> None:
        delattr(self.owner, self.method)


def official_upscale(
    model: nn.Module, lr: torch.Tensor, out: tuple[int, int], cell_clip: float | None = None
) -> torch.Tensor:
    """The official ``test.py`` prediction of ``lr`` (B, 3, h, w) at ``out`` → (B, 3, H, W) in [0, 1]; the cell
    of scales above ``cell_clip`` is the cell at ``cell_clip`` (``scale_max`` of the LTE repository's test.py)."""
    liif, _, swin = _import_official()
    scale = out[0] / lr.shape[-2]
    clip = float("inf") if cell_clip is None else cell_clip
    if isinstance(model.encoder, swin.OfficialSwinIR) and out[0] % lr.shape[-2] == 0:
        return swin.official_swinir_eval(model, lr, out[0] // lr.shape[-2], scale_max=clip)
    b = lr.shape[0]
    coord = liif.official_make_coord(out).unsqueeze(0).expand(b, -1, -1)
    cell = torch.ones_like(coord)
    cell[..., 0] *= 2 / out[0]
    cell[..., 1] *= 2 / out[1]
    cell = cell * max(scale / clip, 1)
    pred = swin.batched_predict(model, (lr - 0.5) / 0.5, coord, cell, EVAL_BSIZE)
    pred = (pred * 0.5 + 0.5).clamp(0, 1)
    return pred.view(b, *out, 3).permute(0, 3, 1, 2)
