"""SwinIR encoder: parity with the official module and the official SwinIR evaluation (docs/method.md: Evaluation protocol).

Most tests use a reduced configuration (embed 24, 2x2 blocks, window 8) on tiny images; one test builds the
full configuration (11.6M parameters) and runs it on 16x16.
"""

from __future__ import annotations

import pytest
import torch
from helpers import TINY_DATA
from official_liif import OfficialLIIF, official_make_coord
from official_swinir import OfficialSwinIR, official_swinir_eval

from liif_sr.coords import make_cell, make_coord, to_padded_frame
from liif_sr.models import EDSRBaseline, ImplicitSR, LIIFHead, build_model
from liif_sr.models.encoders.swinir import OFFICIAL_CONFIG, SwinIR, flip_pad, official_state_dict_to_ours

SMALL = {"embed_dim": 24, "depths": [2, 2], "num_heads": [2, 2], "window_size": 8}
FULL_PARAMS = 11_603_044


def _rel(got: torch.Tensor, want: torch.Tensor) -> float:
    return ((got - want).abs().max() / want.abs().max()).item()


def _perturb(module: torch.nn.Module, gen: torch.Generator, std: float = 0.05) -> None:
    """Non-trivial weights everywhere (LayerNorms, biases and bias tables start at constants)."""
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * std)


def _official_small() -> OfficialSwinIR:
    torch.manual_seed(0)
    ref = OfficialSwinIR(img_size=48, embed_dim=24, depths=(2, 2), num_heads=(2, 2)).eval()
    _perturb(ref, torch.Generator().manual_seed(1))
    return ref


def _buffer_keys(sd: dict) -> set[str]:
    return {k for k in sd if k.endswith(("attn_mask", "relative_position_index"))}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_encoder_matches_official(dtype):
    ref = _official_small()
    sd = ref.state_dict()
    assert len([k for k in sd if k.endswith("attn_mask")]) == 2  # shifted blocks only, sized for 48x48
    assert sd["layers.0.residual_group.blocks.1.attn_mask"].shape == (36, 64, 64)
    ours = SwinIR(**SMALL, out_dim=64).eval()
    ours.load_state_dict(sd, strict=True)  # with the official buffers
    assert set(ours.state_dict()) == set(sd) - _buffer_keys(sd)
    ref.to(dtype), ours.to(dtype)
    gen = torch.Generator().manual_seed(2)
    for h, w in [(48, 48), (16, 24), (8, 8), (32, 16)]:  # 48: the stored mask; others: recomputed
        x = torch.rand(2, 3, h, w, generator=gen, dtype=dtype) * 2 - 1
        with torch.no_grad():
            want, got = ref(x), ours(x)
        assert got.shape == (2, 64, h, w)
        assert _rel(got, want) <= 1e-5, (h, w)


@pytest.mark.slow  # ~5 s alone, > 10 s on a busy CPU (two 11.6M-parameter models)
def test_full_configuration_params_and_forward():
    torch.manual_seed(0)
    ref = OfficialSwinIR().eval()  # make_swinir(): the defaults
    ours = SwinIR(**OFFICIAL_CONFIG).eval()
    n_ref = sum(p.numel() for p in ref.parameters())
    assert sum(p.numel() for p in ours.parameters()) == n_ref == FULL_PARAMS
    assert ours.config == SwinIR().config == OFFICIAL_CONFIG
    _perturb(ref, torch.Generator().manual_seed(1), std=0.02)
    converted = official_state_dict_to_ours({"encoder." + k: v for k, v in ref.state_dict().items()})
    assert not _buffer_keys(converted)
    ours.load_state_dict({k.removeprefix("encoder."): v for k, v in converted.items()}, strict=True)
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(2)) * 2 - 1
    with torch.no_grad():
        assert _rel(ours(x), ref(x)) <= 1e-5


def test_official_buffers_are_checked():
    sd = _official_small().state_dict()
    ours = SwinIR(**SMALL, out_dim=64)
    bad = dict(sd)
    bad["layers.0.residual_group.blocks.0.attn.relative_position_index"] = torch.zeros(
        64, 64, dtype=torch.long
    )
    with pytest.raises(ValueError, match="relative_position_index"):
        ours.load_state_dict(bad)
    bad = dict(sd)
    bad["layers.1.residual_group.blocks.1.attn_mask"] = torch.zeros(4, 16, 16)
    with pytest.raises(ValueError, match="attn_mask"):
        ours.load_state_dict(bad)


def test_forward_requires_window_multiples_and_validates_config():
    enc = SwinIR(**SMALL)
    with pytest.raises(ValueError, match="multiple of the window"):
        enc(torch.zeros(1, 3, 12, 16))
    with pytest.raises(ValueError, match="divisible"):
        SwinIR(embed_dim=10, depths=[2], num_heads=[3])
    with pytest.raises(ValueError, match="equal length"):
        SwinIR(depths=[2, 2], num_heads=[2])
    assert enc.receptive_radius is None and enc.name == "swinir"


@pytest.mark.parametrize("h", [4, 5, 7, 8, 13, 16, 17])
def test_flip_pad_matches_official(h):
    x = torch.rand(1, 3, h, 9)
    got = flip_pad(x, 8)
    want = torch.cat([x, torch.flip(x, [2])], 2)[:, :, : (h // 8 + 1) * 8, :]
    want = torch.cat([want, torch.flip(want, [3])], 3)[:, :, :, :16]
    assert torch.equal(got, want) and got.shape[-2] % 8 == 0 and got.shape[-2] > h


def test_flip_pad_refuses_tiny_inputs():
    # official test.py: 3 rows flip to 6 (not a window multiple), 1-2 rows make check_image_size fail
    for h, w in [(3, 9), (9, 2), (1, 1)]:
        with pytest.raises(ValueError, match="at least 4 px"):
            flip_pad(torch.zeros(1, 3, h, w), 8)


def _models(head_mode: str) -> tuple[OfficialLIIF, ImplicitSR]:
    ref = OfficialLIIF(_official_small(), hidden_list=(32, 32)).eval()
    _perturb(ref.imnet, torch.Generator().manual_seed(3), std=0.01)
    ours = ImplicitSR(
        SwinIR(**SMALL, out_dim=64), LIIFHead(64, hidden_list=[32, 32], fast=head_mode == "fast")
    ).eval()
    sd = {k.replace("imnet.", "head.mlp."): v for k, v in ref.state_dict().items()}
    ours.load_state_dict(sd, strict=True)
    return ref, ours


@pytest.mark.parametrize("head_mode", ["plain", "fast"])
@pytest.mark.parametrize("size", [(13, 21), (16, 16), (4, 9)])
@pytest.mark.parametrize("scale", [2, 3])
def test_upscale_matches_official_pipeline(head_mode, size, scale):
    ref, ours = _models(head_mode)
    lr = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(4))
    want = official_swinir_eval(ref, lr, scale)
    with torch.no_grad():
        got = ours.upscale(lr, (size[0] * scale, size[1] * scale), chunk=500, border="none")
    assert got.shape == want.shape == (1, 3, size[0] * scale, size[1] * scale)
    assert _rel(got, want) <= 1e-5


def test_padded_frame_mapping_is_the_pixel_position():
    h, w, hp, wp, H, W = 13, 21, 16, 24, 33, 50
    coord, cell = make_coord((H, W)), make_cell((H, W), H * W)
    got, got_cell = to_padded_frame(coord, cell, (h / hp, w / wp))
    # output pixel (i, j) centre sits at LR pixel position ((i + 0.5) h / H, (j + 0.5) w / W); in the padded
    # grid's [-1, 1] frame that is -1 + 2 * position / hp
    i, j = torch.meshgrid(
        torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64), indexing="ij"
    )
    want = torch.stack([-1 + 2 * (i + 0.5) * h / H / hp, -1 + 2 * (j + 0.5) * w / W / wp], -1).view(-1, 2)
    assert (got.double() - want).abs().max() <= 1e-6
    assert torch.allclose(
        got_cell[0].double(), torch.tensor([2 / H * h / hp, 2 / W * w / wp], dtype=torch.float64)
    )
    # integer scale: the official padded HR grid, cropped
    s = 3
    got, _ = to_padded_frame(make_coord((h * s, w * s)), None, (h / hp, w / wp))
    full = official_make_coord((hp * s, wp * s), flatten=False)[: h * s, : w * s].reshape(-1, 2)
    assert (got - full).abs().max() <= 1e-6


@pytest.mark.parametrize("head_mode", ["plain", "fast"])
def test_non_integer_scale_and_query_use_the_padded_latent(head_mode):
    _, ours = _models(head_mode)
    lr = torch.rand(1, 3, 13, 21, generator=torch.Generator().manual_seed(5))
    H, W = 33, 50  # x2.54 / x2.38
    i, j = torch.meshgrid(
        torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64), indexing="ij"
    )
    coord = torch.stack([-1 + 2 * (i + 0.5) * 13 / H / 16, -1 + 2 * (j + 0.5) * 21 / W / 24], -1)
    coord = coord.view(1, -1, 2).float()
    cell = torch.tensor([2 / H * 13 / 16, 2 / W * 21 / 24]).expand(1, H * W, 2)
    with torch.no_grad():
        feat = ours.encoder(flip_pad((lr - 0.5) / 0.5, 8))
        assert feat.shape[-2:] == (16, 24)
        want = (ours.head(feat, coord, cell) * 0.5 + 0.5).clamp(0, 1).view(1, H, W, 3).permute(0, 3, 1, 2)
        got = ours.upscale(lr, (H, W), border="none")
        assert _rel(got, want) <= 1e-5
        q = ours.query(lr, make_coord((H, W)).unsqueeze(0), make_cell((H, W), H * W).unsqueeze(0))
        assert _rel(q.clamp(0, 1).view(1, H, W, 3).permute(0, 3, 1, 2), want) <= 1e-5
    with pytest.raises(ValueError, match="at least 4 px"):
        ours.upscale(torch.rand(1, 3, 3, 8), (6, 16), border="none")
    # with the replicate border (upscale's default) the padded image is large enough
    assert ours.upscale(torch.rand(1, 3, 3, 8), (6, 16)).shape == (1, 3, 6, 16)


def test_encoders_without_padding_are_unchanged():
    torch.manual_seed(0)
    model = ImplicitSR(EDSRBaseline(n_resblocks=1, n_feats=8), LIIFHead(8, hidden_list=[16])).eval()
    lr = torch.rand(1, 3, 7, 9)
    coord, cell = make_coord((20, 27)).unsqueeze(0), make_cell((20, 27), 540).unsqueeze(0)
    with torch.no_grad():
        assert torch.equal(model.query(lr, coord, cell), model(lr, coord, cell) * 0.5 + 0.5)
        want = (model(lr, coord, cell) * 0.5 + 0.5).clamp(0, 1).view(1, 20, 27, 3).permute(0, 3, 1, 2)
        assert torch.equal(model.upscale(lr, (20, 27), border="none"), want)


def test_config_round_trip_and_state_dict_reload(tmp_path):
    from liif_sr.checkpoints import load_model, save_weights

    torch.manual_seed(0)
    model = ImplicitSR(SwinIR(**SMALL, out_dim=16), LIIFHead(16, hidden_list=[16])).eval()
    assert model.config["encoder"]["name"] == "swinir"
    rebuilt = build_model(model.config)
    assert rebuilt.config == model.config
    rebuilt.load_state_dict(model.state_dict(), strict=True)  # no attn_mask / index buffers in ours
    path = save_weights(model, tmp_path / "m.safetensors")
    loaded = load_model(path)
    lr = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(loaded.upscale(lr, (16, 16)), model.upscale(lr, (16, 16)))


def test_swinir_small_trains_one_step(compose_train):
    from hydra.utils import instantiate

    cfg = compose_train(
        "model/encoder=swinir_small", "model.head.hidden_list=[16,16]", "trainer.accelerator=cpu"
    )
    net = instantiate(cfg.model).net.train()
    assert type(net.encoder) is SwinIR and net.encoder.config["depths"] == [2, 2]
    assert net.encoder.config["drop_path_rate"] == 0.1  # stochastic depth active in training
    gen = torch.Generator().manual_seed(0)
    lr, gt = torch.rand(2, 3, 16, 16, generator=gen), torch.rand(2, 64, 3, generator=gen) * 2 - 1
    coord = torch.rand(2, 64, 2, generator=gen) * 2 - 1
    cell = torch.full((2, 64, 2), 2 / 40)
    loss = torch.nn.functional.l1_loss(net(lr, coord, cell), gt)
    loss.backward()
    assert torch.isfinite(loss)
    no_grad = [n for n, p in net.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not no_grad
    assert net.encoder.conv_first.weight.grad.abs().sum() > 0


def test_full_config_composes(compose_train):
    from hydra.utils import instantiate

    enc = instantiate(compose_train("model/encoder=swinir", "trainer.accelerator=cpu").model).net.encoder
    assert enc.config == OFFICIAL_CONFIG and sum(p.numel() for p in enc.parameters()) == FULL_PARAMS


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    ref, ours = _models("fast")
    lr = torch.rand(1, 3, 13, 21, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        want = ours.upscale(lr, (26, 42))
        got = ours.cuda().upscale(lr.cuda(), (26, 42)).cpu()
    assert _rel(got, want) <= 1e-4


@pytest.mark.slow
def test_swinir_small_fast_dev_run(run_train):
    """Lightning: one training step and one validation (full-image upscale with the inference padding)."""
    _, (metrics, objs) = run_train(
        "debug=fdr",
        *TINY_DATA,
        "model/encoder=swinir_small",
        "model.head.hidden_list=[16,16]",
        "trainer.accelerator=cpu",
        "callbacks.progress_bar=null",
    )
    assert objs["trainer"].global_step == 1 and torch.isfinite(torch.tensor(metrics["train/loss"]))
    assert metrics["val/psnr"] > 5
