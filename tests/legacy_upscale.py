"""A frozen copy of the two render loops as they were before issue 19 (commit 711e648): the untiled
``ImplicitSR.upscale`` and ``inference.tiling.upscale_tiled``, plus ``upscale_tensor``'s routing. Used only by
``tests/test_upscale_road.py`` to show that the one render loop gives bit-identical outputs. Do not edit."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from liif_sr.coords import make_cell, make_coord
from liif_sr.models.implicit_sr import clip_cell
from liif_sr.models.run_context import run_context, working_dtype


def _spans(owners: Tensor, n_tiles: int) -> list[tuple[int, int]]:
    bounds = torch.searchsorted(owners, torch.arange(n_tiles + 1, device=owners.device)).tolist()
    return [(bounds[t], bounds[t + 1]) for t in range(n_tiles)]


def _owners(c: Tensor, n_lr: int, tile: int) -> Tensor:
    p = torch.floor((c + 1) * (n_lr / 2)).clamp(0, n_lr - 1).long()
    return torch.div(p, tile, rounding_mode="floor")


@torch.no_grad()
def legacy_upscale(model, lr: Tensor, size, chunk=65536, cell_clip="auto", border="replicate") -> Tensor:
    cell_clip = model.head.paper_cell_clip if cell_clip == "auto" else cell_clip
    out_h, out_w = size
    b, _, h, w = lr.shape
    param = next(model.parameters())
    with run_context(param, False):
        x, frame = model.inference_input(lr.to(working_dtype(param)), border)
        state = model.head.prepare(model.encoder(x), x)
    coord = make_coord((out_h, out_w), device=lr.device)
    cell = make_cell((out_h, out_w), coord.shape[0], device=lr.device)
    if cell_clip is not None:
        cell = clip_cell(cell, (h, w), cell_clip)
    coord, cell = frame.map(coord, cell)
    work = working_dtype(param)
    coord, cell = coord.to(work), cell.to(work)
    out = torch.empty(b, out_h * out_w, 3, device=lr.device, dtype=work)
    with run_context(param, grad=False):
        for start in range(0, coord.shape[0], chunk):
            c = coord[start : start + chunk].unsqueeze(0).expand(b, -1, -1)
            ce = cell[start : start + chunk].unsqueeze(0).expand(b, -1, -1)
            out[:, start : start + chunk] = model.head.decode(state, c, ce)
    out = (out * 0.5 + 0.5).clamp_(0, 1)
    return out.view(b, out_h, out_w, 3).permute(0, 3, 1, 2).to(lr.dtype).contiguous()


@torch.no_grad()
def legacy_upscale_tiled(model, lr, size, tile, chunk=65536, cell_clip="auto", border="replicate") -> Tensor:
    out_h, out_w = int(size[0]), int(size[1])
    ty, tx = (tile, tile) if isinstance(tile, int) else (int(tile[0]), int(tile[1]))
    reach = int(model.head.reach)
    m = int(model.encoder.receptive_radius) + reach
    cell_clip = model.head.paper_cell_clip if cell_clip == "auto" else cell_clip
    b, _, lr_h, lr_w = lr.shape
    device = lr.device
    x, frame = model.inference_input(lr, border)
    h, w = frame.padded
    ys = make_coord((out_h, 1), flatten=False, device=device)[:, 0, 0]
    xs = make_coord((1, out_w), flatten=False, device=device)[0, :, 1]
    ys = frame.map(torch.stack([ys, ys], dim=-1))[0][:, 0]
    xs = frame.map(torch.stack([xs, xs], dim=-1))[0][:, 1]
    cell_one = make_cell((out_h, out_w), 1, device=device)
    if cell_clip is not None:
        cell_one = clip_cell(cell_one, (lr_h, lr_w), cell_clip)
    cell_one = frame.map(torch.zeros_like(cell_one), cell_one)[1]
    row_spans = _spans(_owners(ys, h, ty), math.ceil(h / ty))
    col_spans = _spans(_owners(xs, w, tx), math.ceil(w / tx))
    out = torch.empty(b, 3, out_h, out_w, device=device, dtype=torch.float32)
    for i, (qy0, qy1) in enumerate(row_spans):
        if qy0 == qy1:
            continue
        r0, r1 = i * ty, min((i + 1) * ty, h)
        cy0, cy1 = max(r0 - m, 0), min(r1 + m, h)
        ly0, ly1 = max(r0 - reach, cy0), min(r1 + reach, cy1)
        for j, (qx0, qx1) in enumerate(col_spans):
            if qx0 == qx1:
                continue
            c0, c1 = j * tx, min((j + 1) * tx, w)
            cx0, cx1 = max(c0 - m, 0), min(c1 + m, w)
            lx0, lx1 = max(c0 - reach, cx0), min(c1 + reach, cx1)
            feat = model.encoder(x[:, :, cy0:cy1, cx0:cx1])
            feat = feat[:, :, ly0 - cy0 : ly1 - cy0, lx0 - cx0 : lx1 - cx0]
            state = model.head.prepare(feat, x[:, :, ly0:ly1, lx0:lx1], (ly0, lx0), (h, w))
            coord = torch.stack(torch.meshgrid(ys[qy0:qy1], xs[qx0:qx1], indexing="ij"), dim=-1).view(-1, 2)
            n_q = coord.shape[0]
            pred = torch.empty(b, n_q, 3, device=device, dtype=torch.float32)
            for st in range(0, n_q, chunk):
                c = coord[st : st + chunk].unsqueeze(0).expand(b, -1, -1)
                ce = cell_one.expand(b, c.shape[1], 2)
                pred[:, st : st + chunk] = model.head.decode(state, c, ce).float()
            pred = (pred * 0.5 + 0.5).clamp_(0, 1)
            out[:, :, qy0:qy1, qx0:qx1] = pred.view(b, qy1 - qy0, qx1 - qx0, 3).permute(0, 3, 1, 2)
    return out
