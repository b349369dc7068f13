"""An independent, literal re-statement of the official LTE and MetaSR modules (docs/method.md: LTE head; MetaSR head; Official checkpoints).

Used only by tests, to build checkpoint dicts in the official layout and to compute the official
algorithm's output for parity checks. It follows the official structure step by step (module names
``encoder``/``coef``/``freq``/``phase``/``imnet``, ``gen_feat``/``query_rgb``, float32 ``make_coord``,
``grid_sample`` lookups, the area swap, the bilinear skip) rather than our code; ``.cuda()`` is dropped.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from official_liif import OfficialMLP, official_make_coord


class OfficialLTE(nn.Module):
    def __init__(self, encoder, hidden_list=(256, 256, 256), hidden_dim=256):
        super().__init__()
        self.encoder = encoder
        self.coef = nn.Conv2d(self.encoder.out_dim, hidden_dim, 3, padding=1)
        self.freq = nn.Conv2d(self.encoder.out_dim, hidden_dim, 3, padding=1)
        self.phase = nn.Linear(2, hidden_dim // 2, bias=False)
        self.imnet = OfficialMLP(hidden_dim, 3, list(hidden_list))

    def gen_feat(self, inp):
        self.inp = inp
        self.feat_coord = (
            official_make_coord(inp.shape[-2:], flatten=False)
            .permute(2, 0, 1)
            .unsqueeze(0)
            .expand(inp.shape[0], 2, *inp.shape[-2:])
        )
        self.feat = self.encoder(inp)
        self.coeff = self.coef(self.feat)
        self.freqq = self.freq(self.feat)
        return self.feat

    def query_rgb(self, coord, cell=None):
        feat, coef, freq = self.feat, self.coeff, self.freqq
        vx_lst, vy_lst, eps_shift = [-1, 1], [-1, 1], 1e-6
        rx = 2 / feat.shape[-2] / 2
        ry = 2 / feat.shape[-1] / 2
        feat_coord = self.feat_coord
        preds, areas = [], []
        for vx in vx_lst:
            for vy in vy_lst:
                coord_ = coord.clone()
                coord_[:, :, 0] += vx * rx + eps_shift
                coord_[:, :, 1] += vy * ry + eps_shift
                coord_.clamp_(-1 + 1e-6, 1 - 1e-6)
                grid = coord_.flip(-1).unsqueeze(1)
                q_coef = F.grid_sample(coef, grid, mode="nearest", align_corners=False)[:, :, 0, :].permute(
                    0, 2, 1
                )
                q_freq = F.grid_sample(freq, grid, mode="nearest", align_corners=False)[:, :, 0, :].permute(
                    0, 2, 1
                )
                q_coord = F.grid_sample(feat_coord, grid, mode="nearest", align_corners=False)[
                    :, :, 0, :
                ].permute(0, 2, 1)
                rel_coord = coord - q_coord
                rel_coord[:, :, 0] *= feat.shape[-2]
                rel_coord[:, :, 1] *= feat.shape[-1]
                rel_cell = cell.clone()
                rel_cell[:, :, 0] *= feat.shape[-2]
                rel_cell[:, :, 1] *= feat.shape[-1]
                bs, q = coord.shape[:2]
                q_freq = torch.stack(torch.split(q_freq, 2, dim=-1), dim=-1)
                q_freq = torch.mul(q_freq, rel_coord.unsqueeze(-1))
                q_freq = torch.sum(q_freq, dim=-2)
                q_freq += self.phase(rel_cell.view((bs * q, -1))).view(bs, q, -1)
                q_freq = torch.cat((torch.cos(np.pi * q_freq), torch.sin(np.pi * q_freq)), dim=-1)
                inp = torch.mul(q_coef, q_freq)
                preds.append(self.imnet(inp.contiguous().view(bs * q, -1)).view(bs, q, -1))
                areas.append(torch.abs(rel_coord[:, :, 0] * rel_coord[:, :, 1]) + 1e-9)
        tot_area = torch.stack(areas).sum(dim=0)
        areas[0], areas[3] = areas[3], areas[0]
        areas[1], areas[2] = areas[2], areas[1]
        ret = 0
        for pred, area in zip(preds, areas):
            ret = ret + pred * (area / tot_area).unsqueeze(-1)
        ret += F.grid_sample(
            self.inp, coord.flip(-1).unsqueeze(1), mode="bilinear", padding_mode="border", align_corners=False
        )[:, :, 0, :].permute(0, 2, 1)
        return ret

    def forward(self, inp, coord, cell):
        self.gen_feat(inp)
        return self.query_rgb(coord, cell)


class OfficialMetaSR(nn.Module):
    def __init__(self, encoder):
        super().__init__()
        self.encoder = encoder
        self.imnet = OfficialMLP(3, self.encoder.out_dim * 9 * 3, [256])

    def gen_feat(self, inp):
        self.feat = self.encoder(inp)
        return self.feat

    def query_rgb(self, coord, cell=None):
        feat = self.feat
        feat = F.unfold(feat, 3, padding=1).view(
            feat.shape[0], feat.shape[1] * 9, feat.shape[2], feat.shape[3]
        )
        feat_coord = official_make_coord(feat.shape[-2:], flatten=False)
        feat_coord[:, :, 0] -= (2 / feat.shape[-2]) / 2
        feat_coord[:, :, 1] -= (2 / feat.shape[-1]) / 2
        feat_coord = feat_coord.permute(2, 0, 1).unsqueeze(0).expand(feat.shape[0], 2, *feat.shape[-2:])
        coord_ = coord.clone()
        coord_[:, :, 0] -= cell[:, :, 0] / 2
        coord_[:, :, 1] -= cell[:, :, 1] / 2
        coord_q = (coord_ + 1e-6).clamp(-1 + 1e-6, 1 - 1e-6)
        grid = coord_q.flip(-1).unsqueeze(1)
        q_feat = F.grid_sample(feat, grid, mode="nearest", align_corners=False)[:, :, 0, :].permute(0, 2, 1)
        q_coord = F.grid_sample(feat_coord, grid, mode="nearest", align_corners=False)[:, :, 0, :].permute(
            0, 2, 1
        )
        rel_coord = coord_ - q_coord
        rel_coord[:, :, 0] *= feat.shape[-2] / 2
        rel_coord[:, :, 1] *= feat.shape[-1] / 2
        r_rev = cell[:, :, 0] * (feat.shape[-2] / 2)
        inp = torch.cat([rel_coord, r_rev.unsqueeze(-1)], dim=-1)
        bs, q = coord.shape[:2]
        pred = self.imnet(inp.view(bs * q, -1)).view(bs * q, feat.shape[1], 3)
        pred = torch.bmm(q_feat.contiguous().view(bs * q, 1, -1), pred)
        return pred.view(bs, q, 3)

    def forward(self, inp, coord, cell):
        self.gen_feat(inp)
        return self.query_rgb(coord, cell)


def official_head_checkpoint(model: nn.Module, name: str, encoder_name: str, encoder_args: dict) -> dict:
    """The dict the official train_liif.py of the LTE repository saves for ``lte``/``metasr`` (docs/method.md: Official checkpoints)."""
    args = {"encoder_spec": {"name": encoder_name, "args": {"no_upsampling": True, **encoder_args}}}
    if name == "lte":
        hidden_list = [m.out_features for m in model.imnet.layers if isinstance(m, nn.Linear)][:-1]
        args["imnet_spec"] = {"name": "mlp", "args": {"out_dim": 3, "hidden_list": hidden_list}}
        args["hidden_dim"] = model.coef.out_channels
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    return {
        "model": {"name": name, "args": args, "sd": model.state_dict()},
        "optimizer": {"name": "adam", "args": {"lr": 1e-4}, "sd": opt.state_dict()},
        "epoch": 3,
    }
