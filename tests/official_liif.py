"""An independent, literal re-statement of the official LIIF modules (docs/method.md: Architecture; Official checkpoints).

Used only by tests, to build checkpoint files in the official layout and to compute the official
algorithm's output for parity checks. It follows the official structure step by step (module names,
MeanShift buffers, make_coord in float32, grid_sample lookups, area swap) rather than our code.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def official_make_coord(shape, flatten=True):
    seqs = []
    for n in shape:
        r = (1 - (-1)) / (2 * n)
        seqs.append(-1 + r + (2 * r) * torch.arange(n).float())
    ret = torch.stack(torch.meshgrid(*seqs, indexing="ij"), dim=-1)
    return ret.view(-1, ret.shape[-1]) if flatten else ret


class MeanShift(nn.Conv2d):
    def __init__(self, sign=-1):
        super().__init__(3, 3, kernel_size=1)
        mean = torch.tensor([0.4488, 0.4371, 0.4040])
        self.weight.data = torch.eye(3).view(3, 3, 1, 1)
        self.bias.data = sign * mean
        for p in self.parameters():
            p.requires_grad = False


class OfficialResBlock(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(n, n, 3, padding=1), nn.ReLU(True), nn.Conv2d(n, n, 3, padding=1))

    def forward(self, x):
        return self.body(x) + x


class OfficialEDSR(nn.Module):
    def __init__(self, n_resblocks=16, n_feats=64):
        super().__init__()
        self.sub_mean = MeanShift(-1)
        self.add_mean = MeanShift(1)
        self.head = nn.Sequential(nn.Conv2d(3, n_feats, 3, padding=1))
        self.body = nn.Sequential(
            *[OfficialResBlock(n_feats) for _ in range(n_resblocks)],
            nn.Conv2d(n_feats, n_feats, 3, padding=1),
        )
        self.out_dim = n_feats

    def forward(self, x):  # mean shift built but not applied, as in the official forward
        x = self.head(x)
        return self.body(x) + x


class _Conv(nn.Module):
    def __init__(self, cin, g):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(cin, g, 3, padding=1), nn.ReLU())

    def forward(self, x):
        return torch.cat((x, self.conv(x)), 1)


class _RDB(nn.Module):
    def __init__(self, g0, g, c):
        super().__init__()
        self.convs = nn.Sequential(*[_Conv(g0 + i * g, g) for i in range(c)])
        self.LFF = nn.Conv2d(g0 + c * g, g0, 1)

    def forward(self, x):
        return self.LFF(self.convs(x)) + x


class OfficialRDN(nn.Module):
    def __init__(self, G0=64, D=16, C=8, G=64):
        super().__init__()
        self.SFENet1 = nn.Conv2d(3, G0, 3, padding=1)
        self.SFENet2 = nn.Conv2d(G0, G0, 3, padding=1)
        self.RDBs = nn.ModuleList([_RDB(G0, G, C) for _ in range(D)])
        self.GFF = nn.Sequential(nn.Conv2d(D * G0, G0, 1), nn.Conv2d(G0, G0, 3, padding=1))
        self.out_dim = G0

    def forward(self, x):
        f1 = self.SFENet1(x)
        x = self.SFENet2(f1)
        outs = []
        for b in self.RDBs:
            x = b(x)
            outs.append(x)
        return self.GFF(torch.cat(outs, 1)) + f1


class OfficialMLP(nn.Module):
    def __init__(self, in_dim, out_dim, hidden_list):
        super().__init__()
        layers, last = [], in_dim
        for h in hidden_list:
            layers += [nn.Linear(last, h), nn.ReLU()]
            last = h
        layers.append(nn.Linear(last, out_dim))
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        shape = x.shape[:-1]
        return self.layers(x.view(-1, x.shape[-1])).view(*shape, -1)


class OfficialLIIF(nn.Module):
    def __init__(
        self,
        encoder,
        hidden_list=(256, 256, 256, 256),
        local_ensemble=True,
        feat_unfold=True,
        cell_decode=True,
    ):
        super().__init__()
        self.local_ensemble, self.feat_unfold, self.cell_decode = local_ensemble, feat_unfold, cell_decode
        self.encoder = encoder
        in_dim = encoder.out_dim * (9 if feat_unfold else 1) + 2 + (2 if cell_decode else 0)
        self.imnet = OfficialMLP(in_dim, 3, list(hidden_list))

    def gen_feat(self, inp):
        self.feat = self.encoder(inp)
        return self.feat

    def query_rgb(self, coord, cell=None):
        feat = self.feat
        if self.feat_unfold:
            feat = F.unfold(feat, 3, padding=1).view(
                feat.shape[0], feat.shape[1] * 9, feat.shape[2], feat.shape[3]
            )
        if self.local_ensemble:
            vx_lst, vy_lst, eps_shift = [-1, 1], [-1, 1], 1e-6
        else:
            vx_lst, vy_lst, eps_shift = [0], [0], 0
        rx = 2 / feat.shape[-2] / 2
        ry = 2 / feat.shape[-1] / 2
        feat_coord = official_make_coord(feat.shape[-2:], flatten=False).to(feat.device)
        feat_coord = feat_coord.permute(2, 0, 1).unsqueeze(0).expand(feat.shape[0], 2, *feat.shape[-2:])
        preds, areas = [], []
        for vx in vx_lst:
            for vy in vy_lst:
                coord_ = coord.clone()
                coord_[:, :, 0] += vx * rx + eps_shift
                coord_[:, :, 1] += vy * ry + eps_shift
                coord_.clamp_(-1 + 1e-6, 1 - 1e-6)
                q_feat = F.grid_sample(
                    feat, coord_.flip(-1).unsqueeze(1), mode="nearest", align_corners=False
                )[:, :, 0, :].permute(0, 2, 1)
                q_coord = F.grid_sample(
                    feat_coord, coord_.flip(-1).unsqueeze(1), mode="nearest", align_corners=False
                )[:, :, 0, :].permute(0, 2, 1)
                rel_coord = coord - q_coord
                rel_coord[:, :, 0] *= feat.shape[-2]
                rel_coord[:, :, 1] *= feat.shape[-1]
                inp = torch.cat([q_feat, rel_coord], dim=-1)
                if self.cell_decode:
                    rel_cell = cell.clone()
                    rel_cell[:, :, 0] *= feat.shape[-2]
                    rel_cell[:, :, 1] *= feat.shape[-1]
                    inp = torch.cat([inp, rel_cell], dim=-1)
                bs, q = coord.shape[:2]
                preds.append(self.imnet(inp.view(bs * q, -1)).view(bs, q, -1))
                areas.append(torch.abs(rel_coord[:, :, 0] * rel_coord[:, :, 1]) + 1e-9)
        tot_area = torch.stack(areas).sum(dim=0)
        if self.local_ensemble:
            areas[0], areas[3] = areas[3], areas[0]
            areas[1], areas[2] = areas[2], areas[1]
        ret = 0
        for pred, area in zip(preds, areas):
            ret = ret + pred * (area / tot_area).unsqueeze(-1)
        return ret

    def forward(self, inp, coord, cell):
        self.gen_feat(inp)
        return self.query_rgb(coord, cell)


def official_checkpoint(
    model: OfficialLIIF, encoder_name: str, encoder_args: dict, hidden_list, switches: dict
):
    """The dict the official train_liif.py saves (docs/method.md: Official checkpoints)."""
    spec = {
        "name": "liif",
        "args": {
            "encoder_spec": {"name": encoder_name, "args": {"no_upsampling": True, **encoder_args}},
            "imnet_spec": {"name": "mlp", "args": {"out_dim": 3, "hidden_list": list(hidden_list)}},
            **switches,
        },
        "sd": model.state_dict(),
    }
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    return {
        "model": spec,
        "optimizer": {"name": "adam", "args": {"lr": 1e-4}, "sd": opt.state_dict()},
        "epoch": 7,
    }
