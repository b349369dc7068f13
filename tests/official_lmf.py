"""An independent, literal re-statement of the official LMF modules LM-LIIF and LM-LTE (HeZongyao/LMF,
``models/lmliif.py``, ``models/lmlte.py``, ``models/lmmlp.py``; docs/method.md: LM-LIIF / LM-LTE heads).

Used only by tests, to build checkpoint dicts in the official layout and to compute the official evaluation
route: ``model(inp, coord, cell)`` in eval mode (``gen_feats``, ``gen_modulations`` from ``cell[:, :h*w]``,
``batched_query_rgb`` → ``query_rgb_fast``). It follows the official steps (module names ``encoder``,
``hypernet``, ``imnet``, ``coef``/``freq``/``phase``/``imphase``, the per-layer ``grid_sample`` of the
modulations, the area swap) rather than our code; ``.cuda()`` is dropped, ``feat_coord`` is rebuilt per call
(the official cache by spatial shape is a quirk that keeps its dtype/device), CMSR is not transcribed.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from official_liif import OfficialMLP, official_make_coord


class OfficialLMMLP(nn.Module):
    def __init__(self, in_dim, out_dim, hidden_dim, hidden_depth):
        super().__init__()
        self.hidden_depth, self.hidden_dim = hidden_depth, hidden_dim
        self.mod_dim = 2 * hidden_dim
        layers, lastv = [], in_dim
        for _ in range(hidden_depth):
            layers += [nn.Linear(lastv, hidden_dim), nn.ReLU(inplace=True)]
            lastv = hidden_dim
        layers.append(nn.Linear(lastv, out_dim))
        self.layers = nn.Sequential(*layers)

    def forward(self, x, mod, coord):
        shape = x.shape[:-1]
        x = x.view(-1, x.shape[-1])
        mid_dim = self.mod_dim * self.hidden_depth // 2
        bs, q = coord.shape[:2]
        grid = coord.flip(-1).unsqueeze(1)
        for idx, module in enumerate(self.layers):
            x = module(x)
            if idx == self.hidden_depth * 2 or idx % 2 == 1:
                continue
            start, end = (idx // 2) * self.hidden_dim, ((idx // 2) + 1) * self.hidden_dim
            x *= (
                F.grid_sample(mod[:, start:end], grid, mode="nearest", align_corners=False)[:, :, 0, :]
                .permute(0, 2, 1)
                .contiguous()
                .view(bs * q, -1)
                + 1.0
            )
            x += (
                F.grid_sample(
                    mod[:, mid_dim + start : mid_dim + end], grid, mode="nearest", align_corners=False
                )[:, :, 0, :]
                .permute(0, 2, 1)
                .contiguous()
                .view(bs * q, -1)
            )
        return x.view(*shape, -1)


def _ensemble(feat_coord, coord, cell, h, w):
    """``preprocess_coord_cell`` / the loop of ``query_rgb_fast``: shifted coords, rel coords, rel cells, areas."""
    rx, ry = 2 / h / 2, 2 / w / 2
    coords, rel_coords, rel_cells, areas = [], [], [], []
    for vx in [-1, 1]:
        for vy in [-1, 1]:
            coord_ = coord.clone()
            coord_[:, :, 0] += vx * rx + 1e-6
            coord_[:, :, 1] += vy * ry + 1e-6
            coord_.clamp_(-1 + 1e-6, 1 - 1e-6)
            coords.append(coord_)
            q_coords = F.grid_sample(
                feat_coord, coord_.flip(-1).unsqueeze(1), mode="nearest", align_corners=False
            )[:, :, 0, :].permute(0, 2, 1)
            rel_coord = coord - q_coords
            rel_coord[:, :, 0] *= h
            rel_coord[:, :, 1] *= w
            rel_coords.append(rel_coord)
            rel_cell = cell.clone()
            rel_cell[:, :, 0] *= h
            rel_cell[:, :, 1] *= w
            rel_cells.append(rel_cell)
            areas.append(torch.abs(rel_coord[:, :, 0] * rel_coord[:, :, 1]) + 1e-9)
    return torch.cat(coords, 1), torch.cat(rel_coords, 1), torch.cat(rel_cells, 1), areas


def _merge(preds, areas):
    tot_area = torch.stack(areas).sum(dim=0)
    areas[0], areas[3] = areas[3], areas[0]
    areas[1], areas[2] = areas[2], areas[1]
    ret = 0
    for pred, area in zip(preds, areas):
        ret = ret + pred * (area / tot_area).unsqueeze(-1)
    return ret


def _feat_coord(feat):
    return (
        official_make_coord(feat.shape[-2:], flatten=False)
        .permute(2, 0, 1)
        .unsqueeze(0)
        .expand(feat.shape[0], 2, *feat.shape[-2:])
    )


def _batched(query, coord, cell):
    bsize = int(2160 * 3840 * 0.5)
    bsize = math.ceil(coord.shape[1] / math.ceil(coord.shape[1] / bsize))
    preds, ql, n = [], 0, coord.shape[1]
    while ql < n:
        qr = min(ql + bsize, n)
        preds.append(query(coord[:, ql:qr, :], cell[:, ql:qr, :]))
        ql = qr
    return torch.cat(preds, dim=1)


class OfficialLMLIIF(nn.Module):
    def __init__(self, encoder, hidden_depth=6, hidden_list=(208,)):
        super().__init__()
        self.encoder = encoder
        self.mod_dim = 2 * 16 * hidden_depth
        self.hypernet = OfficialMLP(encoder.out_dim * 9 + 2, self.mod_dim + 16, list(hidden_list))
        self.imnet = OfficialLMMLP(16 + 4, 3, 16, hidden_depth)

    def gen_modulations(self, feat, cell):
        bs, c, h, w = feat.shape
        initial_mod = feat.permute(0, 2, 3, 1).contiguous().view(bs, -1, c)
        rel_cell = cell.clone()[:, : h * w, :]
        rel_cell[:, :, 0] *= h
        rel_cell[:, :, 1] *= w
        mod = self.hypernet(torch.cat([initial_mod, rel_cell], dim=-1))
        return mod.view(bs, h, w, -1).permute(0, 3, 1, 2).contiguous()

    def query_rgb_fast(self, feat, mod, coord, cell):
        bs, q = coord.shape[:2]
        h, w = feat.shape[-2:]
        coords, rel_coords, rel_cells, areas = _ensemble(self.feat_coord, coord, cell, h, w)
        inp = F.grid_sample(feat, coords.flip(-1).unsqueeze(1), mode="nearest", align_corners=False)[
            :, :, 0, :
        ].permute(0, 2, 1)
        inp = torch.cat([inp, rel_coords, rel_cells], dim=-1).view(bs * 4 * q, -1)
        preds = self.imnet(inp, mod=mod, coord=coords).view(bs, 4, q, -1).permute(1, 0, 2, 3)
        return _merge(list(preds), areas)

    def forward(self, inp, coord, cell):
        feat = self.encoder(inp)
        self.feat_coord = _feat_coord(feat)
        rich = F.unfold(feat, 3, padding=1).view(feat.shape[0], feat.shape[1] * 9, *feat.shape[-2:])
        mod = self.gen_modulations(rich, cell)
        feat = mod[:, self.mod_dim :, :, :]
        return _batched(lambda c, ce: self.query_rgb_fast(feat, mod, c, ce), coord, cell)


class OfficialLMLTE(nn.Module):
    def __init__(self, encoder, hidden_dim=128, hidden_depth=8, hidden_list=(288,)):
        super().__init__()
        self.encoder = encoder
        self.coef = nn.Conv2d(encoder.out_dim, hidden_dim, 3, padding=1)
        self.freq = nn.Conv2d(encoder.out_dim, hidden_dim, 3, padding=1)
        self.phase = nn.Linear(2, hidden_dim // 2, bias=False)
        self.mod_dim = 2 * 16 * hidden_depth
        self.hypernet = OfficialMLP(hidden_dim, self.mod_dim + 32, list(hidden_list))
        self.imphase = nn.Linear(2, 8, bias=False)
        self.imnet = OfficialLMMLP(16, 3, 16, hidden_depth)

    def gen_modulations(self, coef, freq, cell):
        bs, h, w = coef.shape[0], coef.shape[-2], coef.shape[-1]
        coef = coef.permute(0, 2, 3, 1).contiguous().view(bs, -1, coef.shape[1])
        freq = freq.permute(0, 2, 3, 1).contiguous().view(bs, -1, freq.shape[1])
        freq = torch.stack(torch.split(freq, 2, dim=-1), dim=-1)
        freq = torch.sum(freq, dim=-2)
        rel_cell = cell.clone()[:, : h * w, :]
        rel_cell[:, :, 0] *= h
        rel_cell[:, :, 1] *= w
        # official: rel_cell.view(...), which raises for B > 1 unless Q == h*w (the slice is not contiguous;
        # training has Q = sample_q = 48² = h*w); reshape gives the values it gives item by item
        freq += self.phase(rel_cell.reshape((bs * h * w, -1))).view(bs, h * w, -1)
        freq = torch.cat((torch.cos(np.pi * freq), torch.sin(np.pi * freq)), dim=-1)
        mod = self.hypernet(torch.mul(coef, freq))
        return mod.view(bs, h, w, -1).permute(0, 3, 1, 2).contiguous()

    def query_rgb_fast(self, coef, freq, mod, coord, cell):
        bs, q = coord.shape[:2]
        h, w = mod.shape[-2:]
        coords, rel_coords, rel_cells, areas = _ensemble(self.feat_coord, coord, cell, h, w)
        grid = coords.flip(-1).unsqueeze(1)
        inp = F.grid_sample(freq, grid, mode="nearest", align_corners=False)[:, :, 0, :].permute(0, 2, 1)
        inp = torch.stack(torch.split(inp, 2, dim=-1), dim=-1)
        inp = torch.mul(inp, rel_coords.unsqueeze(-1))
        inp = torch.sum(inp, dim=-2)
        inp += self.imphase(rel_cells.view((bs * 4 * q, -1))).view(bs, 4 * q, -1)
        inp = torch.cat((torch.cos(np.pi * inp), torch.sin(np.pi * inp)), dim=-1)
        q_coef = F.grid_sample(coef, grid, mode="nearest", align_corners=False)[:, :, 0, :].permute(0, 2, 1)
        inp = torch.mul(q_coef, inp).contiguous().view(bs * 4 * q, -1)
        preds = self.imnet(inp, mod=mod, coord=coords).view(bs, 4 * q, -1)
        preds = preds.view(bs, 4, q, -1).permute(1, 0, 2, 3)
        ret = _merge(list(preds), areas)
        ret += (
            F.grid_sample(
                self.inp,
                coord.flip(-1).unsqueeze(1),
                mode="bilinear",
                padding_mode="border",
                align_corners=False,
            )[:, :, 0, :]
            .permute(0, 2, 1)
            .contiguous()
        )
        return ret

    def forward(self, inp, coord, cell):
        self.inp = inp
        feat = self.encoder(inp)
        self.feat_coord = _feat_coord(feat)
        coef, freq = self.coef(feat), self.freq(feat)
        mod = self.gen_modulations(coef, freq, cell)
        coef = mod[:, self.mod_dim : self.mod_dim + 16]
        freq = mod[:, self.mod_dim + 16 :]
        return _batched(lambda c, ce: self.query_rgb_fast(coef, freq, mod, c, ce), coord, cell)


def official_lmf_checkpoint(model: nn.Module, name: str, encoder_name: str, encoder_args: dict) -> dict:
    """The dict the official LMF train.py saves for ``lmliif``/``lmlte`` (configs/train-lmf/train_*-lm*.yaml)."""
    depth = model.imnet.hidden_depth
    hyper = [m.out_features for m in model.hypernet.layers if isinstance(m, nn.Linear)][:-1]
    args = {
        "encoder_spec": {"name": encoder_name, "args": {"no_upsampling": True, **encoder_args}},
        "imnet_spec": {
            "name": "lmmlp",
            "args": {
                "out_dim": 3,
                "hidden_dim": 16,
                "hidden_depth": depth,
                "mod_scale": True,
                "mod_shift": True,
            },
        },
        # the recipes' out_dim (208 / 288) is overridden by the official constructor
        "hypernet_spec": {
            "name": "mlp",
            "args": {"out_dim": 208 if name == "lmliif" else 288, "hidden_list": hyper},
        },
        "local_ensemble": True,
        "cell_decode": True,
        "mod_input": True,
    }
    if name == "lmliif":
        args["feat_unfold"] = True
    else:
        args["hidden_dim"] = model.coef.out_channels
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    return {
        "model": {"name": name, "args": args, "sd": model.state_dict()},
        "optimizer": {"name": "adam", "args": {"lr": 1e-4}, "sd": opt.state_dict()},
        "epoch": 3,
    }
