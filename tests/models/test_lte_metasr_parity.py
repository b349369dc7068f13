"""LTE and MetaSR heads: parity with the official algorithms (≤ 1e-5 relative, fp32 CPU), fast vs
reference, windowed (tiled) decoding, parameter counts, official keys, registry and configs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from helpers import one_thread
from official_helpers import (
    assert_window_decode_equals_full,
    forbid_host_sync,
    grid,
    official_encoder,
    perturb,
    rel,
)
from official_liif import OfficialEDSR
from official_lte import OfficialLTE, OfficialMetaSR, official_head_checkpoint

from liif_sr.inference.tiling import upscale_tiled
from liif_sr.models import EDSRBaseline, ImplicitSR, LTEHead, MetaSRHead, build_model
from liif_sr.models.heads.lte import bilinear_border
from liif_sr.models.official import official_to_ours
from liif_sr.models.official_heads import OFFICIAL_HEADS, head_from_official

OFFICIAL = {"lte": OfficialLTE, "metasr": OfficialMetaSR}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with one_thread():
        yield


def _official(head: str, encoder: str) -> tuple[torch.nn.Module, dict]:
    torch.manual_seed(0)
    enc, enc_args = official_encoder(encoder)
    ref = OFFICIAL[head](enc).eval()
    perturb(ref, seed=None)  # non-trivial weights, also in the biases
    return ref, official_head_checkpoint(ref, head, encoder, enc_args)


def _ours(ckpt: dict, fast: bool = True) -> ImplicitSR:
    """Our model from an official checkpoint dict, through the generic converter of ``load_model``."""
    config, sd = official_to_ours(ckpt["model"])
    model = build_model(config, head_mode="fast" if fast else "plain")
    model.load_state_dict(sd, strict=True)
    return model.eval()


@pytest.mark.parametrize("encoder", ["edsr-baseline", "rdn"])
@pytest.mark.parametrize("head", ["lte", "metasr"])
def test_official_parity(head, encoder):
    """Random queries and pixel grids (x2, x3 x5 with ties on latent lines, x2.3), non-square, batch 2."""
    ref, ckpt = _official(head, encoder)
    fast, plain = _ours(ckpt, fast=True), _ours(ckpt, fast=False)
    gen = torch.Generator().manual_seed(1)
    lr = torch.rand(2, 3, 9, 13, generator=gen)
    queries = [
        (torch.rand(2, 500, 2, generator=gen) * 2 - 1, torch.rand(2, 500, 2, generator=gen) * 0.3 + 0.01)
    ]
    queries += [grid(h, w, 2) for h, w in [(18, 26), (27, 65), (21, 30)]]
    errors = {}
    with torch.no_grad():  # encode once per model (RDN is the slow part), then query like ImplicitSR.query
        x = (lr - 0.5) / 0.5
        ref.gen_feat(x)
        states = [m.head.prepare(m.encode(lr), x) for m in (fast, plain)]
        for i, (coord, cell) in enumerate(queries):
            want = ref.query_rgb(coord, cell) * 0.5 + 0.5
            got_fast, got_plain = (
                m.head.decode(st, coord, cell) * 0.5 + 0.5 for m, st in zip((fast, plain), states)
            )
            errors[i] = (rel(got_fast, want), rel(got_plain, want), rel(got_fast, got_plain))
        assert torch.equal(fast.query(lr, coord, cell), got_fast)  # the model's own query path
    print(f"{head}/{encoder} (fast, reference, fast-vs-reference) max relative:", errors)
    assert max(max(e) for e in errors.values()) <= 1e-5, errors


@pytest.mark.parametrize("head", ["lte", "metasr"])
def test_upscale_matches_official(head):
    ref, ckpt = _official(head, "edsr-baseline")
    model = _ours(ckpt)
    lr = torch.rand(1, 3, 10, 7, generator=torch.Generator().manual_seed(2))
    coord, cell = grid(30, 35, 1)
    with torch.no_grad():
        want = (ref((lr - 0.5) / 0.5, coord, cell) * 0.5 + 0.5).clamp(0, 1)
    got = model.upscale(lr, (30, 35), chunk=100, cell_clip=None, border="none")
    assert (got - want.view(1, 30, 35, 3).permute(0, 3, 1, 2)).abs().max().item() <= 1e-5


def test_bilinear_skip_matches_grid_sample_on_windows():
    gen = torch.Generator().manual_seed(3)
    lr = torch.rand(2, 3, 11, 8, generator=gen) * 2 - 1
    coord = torch.cat([torch.rand(1, 300, 2, generator=gen) * 2.4 - 1.2, grid(33, 16, 1)[0]], dim=1)
    coord = coord.expand(2, -1, -1)  # the same queries in both images (the window test selects by batch 0)
    want = F.grid_sample(
        lr, coord.flip(-1).unsqueeze(1), mode="bilinear", padding_mode="border", align_corners=False
    )
    want = want[:, :, 0, :].permute(0, 2, 1)
    assert (bilinear_border(lr, coord, (0, 0), (11, 8)) - want).abs().max().item() <= 1e-6
    # a window: queries whose pixels lie in rows 3..8, cols 2..6 (global) read only the window
    u = (coord + 1) * torch.tensor([11, 8]) / 2
    keep = ((u[0, :, 0] >= 4) & (u[0, :, 0] < 7) & (u[0, :, 1] >= 3) & (u[0, :, 1] < 5)).nonzero()[:, 0]
    window = lr[:, :, 3:8, 2:6]
    got = bilinear_border(window, coord[:, keep], (3, 2), (11, 8))
    assert (got - want[:, keep]).abs().max().item() <= 1e-6
    with pytest.raises(RuntimeError, match="outside"):
        bilinear_border(window, coord, (3, 2), (11, 8))


def _small(head: str, fast: bool = True) -> ImplicitSR:
    torch.manual_seed(0)
    cls = {"lte": LTEHead, "metasr": MetaSRHead}[head]
    kwargs = {"hidden_dim": 32, "hidden_list": [32, 32]} if head == "lte" else {"hidden_list": [32]}
    model = ImplicitSR(EDSRBaseline(n_resblocks=1, n_feats=8), cls(8, fast=fast, **kwargs)).eval()
    perturb(model, 0.05, seed=None)
    return model


@pytest.mark.parametrize("head", ["lte", "metasr"])
def test_window_prepare_decode_equals_full(head):
    """prepare(window, offset, full_size) + decode of the window's owned queries == the whole-grid decode."""
    model = _small(head)
    lr = torch.rand(2, 3, 12, 10, generator=torch.Generator().manual_seed(4))
    assert_window_decode_equals_full(model, lr, *grid(36, 25, 2))


@pytest.mark.parametrize("head", ["lte", "metasr"])
def test_tiled_upscale_and_reference(head):
    model = _small(head)
    lr = torch.rand(2, 3, 17, 13, generator=torch.Generator().manual_seed(5))
    want = model.upscale(lr, (40, 37))
    for tile in (4, (5, 7)):
        assert (upscale_tiled(model, lr, (40, 37), tile=tile, chunk=300) - want).abs().max().item() <= 1e-5
    model.head.fast = False  # reference path on the whole grid (tiles always take the fast path)
    assert (model.upscale(lr, (40, 37)) - want).abs().max().item() <= 1e-5


def test_parameter_counts_and_official_keys():
    lte, metasr = LTEHead(64), MetaSRHead(64)
    assert sum(p.numel() for p in lte.parameters()) == 493_827  # docs/method.md, "LTE head"
    assert sum(p.numel() for p in metasr.parameters()) == 445_120
    ref = OfficialLTE(OfficialEDSR(n_resblocks=1, n_feats=8))
    head_keys = {k for k in ref.state_dict() if not k.startswith("encoder.")}
    assert head_keys == {"coef.weight", "coef.bias", "freq.weight", "freq.bias", "phase.weight"} | {
        f"imnet.layers.{i}.{p}" for i in (0, 2, 4, 6) for p in ("weight", "bias")
    }
    assert set(OFFICIAL_HEADS["lte"].state_dict("LTEHead", ref.state_dict())) == set(LTEHead(8).state_dict())
    meta = OfficialMetaSR(OfficialEDSR(n_resblocks=1, n_feats=8))
    assert meta.imnet.layers[2].weight.shape == (8 * 9 * 3, 256)
    assert set(OFFICIAL_HEADS["metasr"].state_dict("MetaSRHead", meta.state_dict())) == set(
        MetaSRHead(8).state_dict()
    )
    with pytest.raises(ValueError, match="unexpected official"):
        OFFICIAL_HEADS["metasr"].state_dict("MetaSRHead", {"coef.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match="not 'metasr'"):
        head_from_official(MetaSRHead, {"name": "lte", "args": {}, "sd": {}}, 8)


def test_validation_errors():
    head = LTEHead(8, hidden_dim=16, hidden_list=[16])
    feat = torch.zeros(1, 8, 4, 5)
    with pytest.raises(ValueError, match="normalised LR"):
        head.prepare(feat)
    with pytest.raises(ValueError, match="feat must be"):
        head.prepare(torch.zeros(1, 7, 4, 5), torch.zeros(1, 3, 4, 5))
    state = head.prepare(feat, torch.zeros(1, 3, 4, 5))
    with pytest.raises(ValueError, match="cell"):
        head.decode(state, torch.zeros(1, 6, 2))
    with pytest.raises(ValueError, match="coord must be"):
        head.decode(state, torch.zeros(2, 6, 2), torch.zeros(2, 6, 2))
    with pytest.raises(ValueError, match="even"):
        LTEHead(8, hidden_dim=15)
    with pytest.raises(ValueError, match="does not fit"):
        MetaSRHead(8, hidden_list=[8]).prepare(feat, offset=(1, 0), full_size=(4, 5))


@pytest.mark.parametrize("head", ["lte", "metasr"])
def test_registry_round_trip_and_training_grads(tmp_path, monkeypatch, head):
    from liif_sr.checkpoints import load_model, save_weights

    model = _small(head)
    assert model.config["head"]["name"] == head
    path = save_weights(model, tmp_path / "m.safetensors")
    loaded = load_model(path)
    assert type(loaded.head) is type(model.head) and loaded.head.fast
    assert not load_model(path, head_mode="plain").head.fast
    lr = torch.rand(1, 3, 6, 7)
    assert torch.equal(loaded.upscale(lr, (13, 15)), model.upscale(lr, (13, 15)))
    old = build_model({"encoder": model.config["encoder"], "head": {"hidden_list": [8]}})
    assert old.head.name == "liif"  # configs without a head name are LIIF (older files)
    model.train()
    coord, cell = grid(12, 14, 1)
    forbid_host_sync(monkeypatch)
    loss = model(lr, coord, cell).square().mean()
    monkeypatch.undo()
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.head.parameters())


@pytest.mark.parametrize("head", ["lte", "metasr"])
def test_head_config_group(compose_train, head):
    from hydra.utils import instantiate

    cfg = compose_train(f"model/head={head}")
    net = instantiate(cfg.model).net
    assert net.head.name == head and net.head.in_channels == net.encoder.out_dim and net.head.fast
