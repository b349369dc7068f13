"""An independent, literal re-statement of the official LM-CiaoSR model (HeZongyao/LMF ``models/lmciaosr.py``,
``models/lmmlp.py``, ``models/arch_ciaosr/arch_csnln.py``; docs/method.md: LM-CiaoSR head).

Used only by tests, to build checkpoint dicts in the official layout and to compute the official forward for
parity checks. It follows the official structure step by step (module names ``cs_attn``, ``prenet_q``,
``hypernet_q``, ``imnet_q``/``k``/``v``; ``gen_feats``, ``query_latent``, ``query_rgb`` (training) and
``query_rgb_fast`` (evaluation) with its ``batched_query_rgb`` chunks; the per-image attention loop, the
48x48 blocks; ``grid_sample`` lookups; the quirks: the unfold read as (3, 3, 64), the key offset divided by
h twice, the cell from ``cell[:, :h*w]``, the bilinear skip in eval only) rather than our code. ``.cuda()``
is dropped; ``feat_coord`` is rebuilt every call (the official cache keeps a stale dtype).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from official_liif import OfficialMLP, official_make_coord


def _same_padding(images, ksizes, strides):
    _, _, rows, cols = images.size()
    out_rows = (rows + strides[0] - 1) // strides[0]
    out_cols = (cols + strides[1] - 1) // strides[1]
    padding_rows = max(0, (out_rows - 1) * strides[0] + ksizes[0] - rows)
    padding_cols = max(0, (out_cols - 1) * strides[1] + ksizes[1] - cols)
    top, left = int(padding_rows / 2.0), int(padding_cols / 2.0)
    return torch.nn.ZeroPad2d((left, padding_cols - left, top, padding_rows - top))(images)


def _extract_patches(images, ksizes, strides):
    images = _same_padding(images, ksizes, strides)
    return torch.nn.Unfold(kernel_size=ksizes, dilation=[1, 1], padding=0, stride=strides)(images)


def _reduce_sum(x, axis):
    for i in sorted(axis, reverse=True):
        x = torch.sum(x, dim=i, keepdim=True)
    return x


class _BasicBlock(nn.Sequential):
    def __init__(self, cin, cout):
        super().__init__(nn.Conv2d(cin, cout, 1, padding=0, bias=True), nn.PReLU())


class OfficialCrossScaleAttention(nn.Module):
    def __init__(self, channel=64, reduction=2, ksize=3, scale=(2,), stride=1, softmax_scale=10):
        super().__init__()
        self.ksize, self.stride, self.softmax_scale, self.scale = ksize, stride, softmax_scale, list(scale)
        self.register_buffer("escape_NaN", torch.FloatTensor([1e-4]))
        self.conv_match_1 = _BasicBlock(channel, channel // reduction)
        self.conv_match_2 = _BasicBlock(channel, channel // reduction)
        self.conv_assembly = _BasicBlock(channel, channel)
        self.down = nn.Conv2d(channel, channel, ksize, 2, 1)

    def forward(self, input):
        _, _, H, W = input.shape
        res_y = []
        for s in self.scale:
            mod_pad_h = s - H % s if H % s != 0 else 0
            mod_pad_w = s - W % s if W % s != 0 else 0
            input_pad = F.pad(input, (0, mod_pad_w, 0, mod_pad_h), "reflect")
            embed_w = self.conv_assembly(input_pad)
            match_input = self.conv_match_1(input_pad)
            shape_input = list(embed_w.size())
            input_groups = torch.split(match_input, 1, dim=0)
            kernel = s * self.ksize
            raw_w = _extract_patches(embed_w, [kernel, kernel], [self.stride * s, self.stride * s])
            raw_w = raw_w.view(shape_input[0], shape_input[1], kernel, kernel, -1)
            raw_w = raw_w.permute(0, 4, 1, 2, 3).contiguous()
            raw_w_groups = torch.split(raw_w, 1, dim=0)
            ref = F.interpolate(input_pad, scale_factor=1.0 / s, mode="bilinear", align_corners=False)
            ref = self.conv_match_2(ref)
            w = _extract_patches(ref, [self.ksize, self.ksize], [self.stride, self.stride])
            shape_ref = ref.shape
            w = w.view(shape_ref[0], shape_ref[1], self.ksize, self.ksize, -1)
            w = w.permute(0, 4, 1, 2, 3).contiguous()
            w_groups = torch.split(w, 1, dim=0)
            y = []
            for xi, wi, raw_wi in zip(input_groups, w_groups, raw_w_groups):
                wi = wi[0]
                max_wi = torch.max(torch.sqrt(_reduce_sum(torch.pow(wi, 2), axis=[1, 2, 3])), self.escape_NaN)
                wi_normed = wi / max_wi
                xi = _same_padding(xi, [self.ksize, self.ksize], [1, 1])
                yi = F.conv2d(xi, wi_normed, stride=1)
                yi = yi.view(1, shape_ref[2] * shape_ref[3], shape_input[2], shape_input[3])
                yi = F.softmax(yi * self.softmax_scale, dim=1)
                yi = F.conv_transpose2d(yi, raw_wi[0], stride=self.stride * s, padding=s)
                yi = self.down(yi)
                y.append(yi / 6.0)
            y = torch.cat(y, dim=0)[:, :, :H, :W]
            res_y.append(y)
        return torch.cat(res_y, dim=1)


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

    def forward(self, x, mod=None, coord=None):
        shape = x.shape[:-1]
        x = x.view(-1, x.shape[-1])
        if coord is None:
            mod = mod.view(-1, mod.shape[-1])
        mid_dim = self.mod_dim * self.hidden_depth // 2
        for idx, module in enumerate(self.layers):
            x = module(x)
            if idx == self.hidden_depth * 2 or idx % 2 == 1:
                continue
            start, end = (idx // 2) * self.hidden_dim, ((idx // 2) + 1) * self.hidden_dim
            if coord is not None:
                bs, q = coord.shape[:2]
                grid = coord.flip(-1).unsqueeze(1)
                sc = F.grid_sample(mod[:, start:end], grid, mode="nearest", align_corners=False)[:, :, 0, :]
                x *= sc.permute(0, 2, 1).contiguous().view(bs * q, -1) + 1.0
                sh = F.grid_sample(
                    mod[:, mid_dim + start : mid_dim + end], grid, mode="nearest", align_corners=False
                )[:, :, 0, :]
                x += sh.permute(0, 2, 1).contiguous().view(bs * q, -1)
            else:
                x *= mod[:, start:end] + 1.0
                x += mod[:, mid_dim + start : mid_dim + end]
        return x.view(*shape, -1)


class OfficialLMCiaoSR(nn.Module):
    """``lmciaosr`` with the repository's configuration (EDSR-baseline / RDN / SwinIR encoder, C = 64)."""

    def __init__(self, encoder, hidden_dim=16, hidden_depth=8):
        super().__init__()
        self.encoder = encoder
        c = encoder.out_dim
        self.cs_attn = OfficialCrossScaleAttention(channel=c, scale=[2])
        self.imnet_k = OfficialMLP(4 * c + 4, 4 * c, [256])
        self.imnet_v = OfficialMLP(4 * c + 4 + c, 4 * c + c, [256])
        self.mod_dim = 2 * hidden_dim * hidden_depth
        self.hypernet_q = OfficialMLP(4 * c + c, self.mod_dim + 2 * hidden_dim, [288])
        self.prenet_q = OfficialMLP(9 * c, 4 * c, [256])
        self.imnet_q = OfficialLMMLP(2 * hidden_dim + 2, 3, hidden_dim, hidden_depth)

    def gen_feats(self, inp):
        feat = self.encoder(inp)
        bs, in_c, in_h, in_w = feat.shape
        self.feat_coord = (
            official_make_coord(feat.shape[-2:], flatten=False)
            .to(feat)
            .permute(2, 0, 1)
            .unsqueeze(0)
            .expand(bs, 2, in_h, in_w)
        )
        crop_h, crop_w = 48, 48
        if in_h * in_w > crop_h * crop_w:
            self.non_local_feat = torch.zeros(bs, in_c, in_h, in_w).to(feat)
            for i in range(in_h // crop_h):
                for j in range(in_w // crop_w):
                    i1, i2 = i * crop_h, ((i + 1) * crop_h if i < in_h // crop_h - 1 else in_h)
                    j1, j2 = j * crop_w, ((j + 1) * crop_w if j < in_w // crop_w - 1 else in_w)
                    padding = 3 // 2
                    pad_i1 = padding if i1 - padding >= 0 else 0
                    pad_i2 = padding if i2 + padding <= in_h else 0
                    pad_j1 = padding if j1 - padding >= 0 else 0
                    pad_j2 = padding if j2 + padding <= in_w else 0
                    crop_feat = feat[:, :, i1 - pad_i1 : i2 + pad_i2, j1 - pad_j1 : j2 + pad_j2]
                    crop = self.cs_attn(crop_feat)
                    self.non_local_feat[:, :, i1:i2, j1:j2] = crop[
                        :, :, pad_i1 : crop.shape[-2] - pad_i2, pad_j1 : crop.shape[-1] - pad_j2
                    ]
        else:
            self.non_local_feat = self.cs_attn(feat)
        rich_feat = F.unfold(feat, 3, padding=1).view(bs, in_c * 9, in_h, in_w)
        return feat, rich_feat

    def query_latent(self, feat, scale):
        bs, c, h, w = feat.shape
        base_c, ur, er = 64, 3, 2
        feat_coord = self.feat_coord
        rx = 2 / feat.shape[-2] / 2
        ry = 2 / feat.shape[-1] / 2
        v_lst = [(i, j) for i in range(-1, 2, 2) for j in range(-1, 2, 2)]
        preds_k, preds_v = [], []
        for vx, vy in v_lst:
            t, l = round(vy / 2 + 0.5), round(vx / 2 + 0.5)  # noqa: E741 (official names)
            key = value = feat.view(bs, ur, ur, base_c, h, w)[:, t : t + er, l : l + er, :, :, :].contiguous()
            key = key.view(bs, er * er * base_c, h * w).permute(0, 2, 1)
            value = value.view(bs, er * er * base_c, h, w)
            value = torch.cat([value, self.non_local_feat], dim=1)
            value = value.view(bs, er * er * base_c + base_c, h * w).permute(0, 2, 1)
            coord_q = feat_coord.reshape(bs, feat_coord.shape[1], h * w).permute(0, 2, 1)
            coord_k = coord_q.clone()
            coord_k[:, :, 0] += vx * rx / feat.shape[-2]
            coord_k[:, :, 1] += vy * ry / feat.shape[-1]
            bs, q = coord_q.shape[:2]
            rel = coord_q - coord_k
            rel[:, :, 0] *= feat.shape[-2]
            rel[:, :, 1] *= feat.shape[-1]
            scale_ = scale[:, : feat.shape[-2] * feat.shape[-1], :].clone()
            scale_[:, :, 0] *= feat.shape[-2]
            scale_[:, :, 1] *= feat.shape[-1]
            weight_k = self.imnet_k(torch.cat([key, rel, scale_], dim=-1).view(bs * q, -1)).view(bs, q, -1)
            weight_v = self.imnet_v(torch.cat([value, rel, scale_], dim=-1).view(bs * q, -1)).view(bs, q, -1)
            preds_k.append((key * weight_k).view(bs, q, -1))
            preds_v.append((value * weight_v).view(bs, q, -1))
        preds_k = torch.stack(preds_k, dim=-1)
        preds_v = torch.stack(preds_v, dim=-2)
        query = feat.view(bs, c, h * w).permute(0, 2, 1).contiguous().view(bs * h * w, -1)
        query = self.prenet_q(query).view(bs, h * w, -1).unsqueeze(2)
        attn = query @ preds_k
        inp_q = attn.softmax(dim=-1) @ preds_v
        mod = self.hypernet_q(inp_q.view(bs * q, -1)).view(bs, h, w, -1).permute(0, 3, 1, 2)
        self.inp_q = mod[:, self.mod_dim :, :, :]
        return mod

    def _members(self, feat, coord):
        rx, ry = 2 / feat.shape[-2] / 2, 2 / feat.shape[-1] / 2
        out = []
        for vx in (-1, 1):
            for vy in (-1, 1):
                coord_ = coord.clone()
                coord_[:, :, 0] += vx * rx + 1e-6
                coord_[:, :, 1] += vy * ry + 1e-6
                coord_.clamp_(-1 + 1e-6, 1 - 1e-6)
                q_coords = F.grid_sample(
                    self.feat_coord, coord_.flip(-1).unsqueeze(1), mode="nearest", align_corners=False
                )[:, :, 0, :].permute(0, 2, 1)
                rel_coord = coord - q_coords
                rel_coord[:, :, 0] *= feat.shape[-2]
                rel_coord[:, :, 1] *= feat.shape[-1]
                out.append((coord_, rel_coord, torch.abs(rel_coord[:, :, 0] * rel_coord[:, :, 1]) + 1e-9))
        return out

    @staticmethod
    def _blend(preds, areas):
        tot_area = torch.stack(areas).sum(dim=0)
        areas = [areas[3], areas[2], areas[1], areas[0]]
        ret = 0
        for pred, area in zip(preds, areas):
            ret = ret + pred * (area / tot_area).unsqueeze(-1)
        return ret

    def query_rgb(self, feat, coord):
        """The training route: per member, the modulations sampled and passed per query."""
        bs, q = coord.shape[:2]
        preds, areas = [], []
        for coord_, rel_coord, area in self._members(feat, coord):
            inp = F.grid_sample(feat, coord_.flip(-1).unsqueeze(1), mode="nearest", align_corners=False)
            inp = torch.cat([inp[:, :, 0, :].permute(0, 2, 1).contiguous(), rel_coord], dim=-1).view(
                bs * q, -1
            )
            q_mod = F.grid_sample(self.mod, coord_.flip(-1).unsqueeze(1), mode="nearest", align_corners=False)
            q_mod = q_mod[:, :, 0, :].permute(0, 2, 1).contiguous().view(bs * q, -1)
            preds.append(self.imnet_q(inp, mod=q_mod).view(bs, q, -1))
            areas.append(area)
        return self._blend(preds, areas)

    def query_rgb_fast(self, feat, coord):
        """The evaluation route: all members in one pass, the modulations sampled layer by layer."""
        bs, q = coord.shape[:2]
        members = self._members(feat, coord)
        coords = torch.cat([m[0] for m in members], dim=1)
        rel_coords = torch.cat([m[1] for m in members], dim=1)
        inp = F.grid_sample(feat, coords.flip(-1).unsqueeze(1), mode="nearest", align_corners=False)
        inp = torch.cat([inp[:, :, 0, :].permute(0, 2, 1), rel_coords], dim=-1).view(bs * 4 * q, -1)
        preds = self.imnet_q(inp, mod=self.mod, coord=coords).view(bs, 4, q, -1).permute(1, 0, 2, 3)
        return self._blend(list(preds), [m[2] for m in members])

    def forward(self, inp, coord, cell, bsize=None):
        self.inp = inp
        bsize = bsize if bsize is not None else int(1280 * 720)
        bsize = math.ceil(coord.shape[1] / math.ceil(coord.shape[1] / bsize))
        _, rich_feat = self.gen_feats(inp)
        self.mod = self.query_latent(rich_feat, cell)
        if self.training:
            return self.query_rgb(self.inp_q, coord)
        preds = [
            self.query_rgb_fast(self.inp_q, coord[:, ql : ql + bsize])
            for ql in range(0, coord.shape[1], bsize)
        ]
        pred = torch.cat(preds, dim=1)
        return pred + F.grid_sample(
            inp, coord.flip(-1).unsqueeze(1), mode="bilinear", padding_mode="border", align_corners=False
        )[:, :, 0, :].permute(0, 2, 1)


def official_lmciaosr_checkpoint(model: OfficialLMCiaoSR, encoder_name: str, encoder_args: dict) -> dict:
    """The dict the LMF repository's ``train.py`` saves for ``train_*-lmciaosr.yaml``."""

    def mlp(out_dim, hidden):
        return {"name": "mlp", "args": {"out_dim": out_dim, "hidden_list": [hidden]}}

    d, depth = model.imnet_q.hidden_dim, model.imnet_q.hidden_depth
    args = {
        "encoder": {"name": encoder_name, "args": {"no_upsampling": True, **encoder_args}},
        "prenet_q": mlp(256, 256),
        "hypernet_q": mlp(288, 288),
        "imnet_q": {
            "name": "lmmlp",
            "args": {
                "out_dim": 3,
                "hidden_dim": d,
                "hidden_depth": depth,
                "mod_scale": True,
                "mod_shift": True,
            },
        },
        "imnet_k": mlp(256, 256),
        "imnet_v": mlp(256, 256),
        "local_size": 2,
        "feat_unfold": True,
        "non_local_attn": True,
        "multi_scale": [2],
        "softmax_scale": 1,
        "mod_input": True,
    }
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    return {
        "model": {"name": "lmciaosr", "args": args, "sd": model.state_dict()},
        "optimizer": {"name": "adam", "args": {"lr": 1e-4}, "sd": opt.state_dict()},
        "epoch": 3,
    }
