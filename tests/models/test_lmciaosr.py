"""LM-CiaoSR head: parity with the official LMF forward through official-format ``.pth`` files (≤ 1e-5
relative, fp32 CPU) on EDSR-baseline, RDN and SwinIR (``--window 8`` contract), fast vs reference, the
attention's 48x48 blocks (and their zero quirk), train/eval skip modes, tiling refusal, checkpoint refusals
(docs/method.md: LM-CiaoSR head)."""

from __future__ import annotations

import re

import pytest
import torch
from helpers import lm_kernel_used
from official_helpers import forbid_host_sync, grid, one_thread_reporting, perturb, refused, rel
from official_liif import OfficialEDSR, OfficialRDN
from official_lmciaosr import OfficialLMCiaoSR, official_lmciaosr_checkpoint
from official_swinir import OfficialSwinIR, official_flip_pad

from liif_sr import load_model
from liif_sr.inference.tiling import TilingUnsupportedError, upscale_tiled
from liif_sr.models import EDSRBaseline, ImplicitSR, build_model
from liif_sr.models.encoders.swinir import SwinIR
from liif_sr.models.heads.cross_scale_attention import blockwise
from liif_sr.models.heads.lmciaosr import LMCiaoSRHead
from liif_sr.models.official import official_to_ours

ERRORS: dict[str, float] = {}


@pytest.fixture(autouse=True, scope="module")
def _fused_kernel():
    """The fast decode runs on the fused kernel where it builds (tests/models/test_lmf_kernel.py: ≡ PyTorch path)."""
    with lm_kernel_used():
        yield


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with one_thread_reporting(ERRORS):
        yield


def _official(encoder: str) -> tuple[OfficialLMCiaoSR, dict]:
    torch.manual_seed(0)
    enc, args = {
        "edsr-baseline": (lambda: OfficialEDSR(n_resblocks=2), {"n_resblocks": 2}),
        "rdn": (OfficialRDN, {"G0": 64, "RDNkSize": 3, "RDNconfig": "B"}),
    }[encoder]
    ref = OfficialLMCiaoSR(enc()).eval()
    perturb(ref)
    return ref, official_lmciaosr_checkpoint(ref, encoder, args)


def _load(tmp_path, ckpt: dict, head_mode: str = "fast") -> ImplicitSR:
    path = tmp_path / "epoch-last.pth"
    torch.save(ckpt, path)
    return load_model(path, head_mode=head_mode)


@pytest.mark.parametrize("encoder", ["edsr-baseline", "rdn"])
def test_official_parity_through_pth(tmp_path, encoder):
    """Odd non-square LR, anisotropic non-integer grids (x2.56 x 3.08, x3 x 5 with ties), random queries."""
    ref, ckpt = _official(encoder)
    fast, plain = _load(tmp_path, ckpt), _load(tmp_path, ckpt, "plain")
    assert fast.head.lr_skip == "eval" and not fast.training
    gen = torch.Generator().manual_seed(2)
    lr = torch.rand(2, 3, 9, 13, generator=gen)
    x = (lr - 0.5) / 0.5
    rand = torch.rand(2, 400, 2, generator=gen) * 2 - 1
    queries = [grid(23, 40, 2), grid(27, 65, 2), (rand, grid(20, 33, 2)[1][:, :400])]
    with torch.no_grad():
        for i, (coord, cell) in enumerate(queries):
            want = ref(x, coord, cell) * 0.5 + 0.5
            got = fast.query(lr, coord, cell)
            ERRORS[f"{encoder} {i} fast"] = err = rel(got, want)
            assert err <= 1e-5
            assert rel(plain.query(lr, coord, cell), want) <= 1e-5
            assert rel(got, plain.query(lr, coord, cell)) <= 1e-5
        h, w = 23, 40  # the whole image through the render loop, in chunks
        img = fast.upscale(lr, (h, w), chunk=300, cell_clip=None, border="none")
        want = (ref(x, *grid(h, w, 2)) * 0.5 + 0.5).clamp(0, 1).view(2, h, w, 3).permute(0, 3, 1, 2)
        assert (img - want).abs().max().item() <= 1e-5


def test_training_forward_and_skip_modes(tmp_path):
    """lr_skip='eval' (official): train mode has no skip, eval mode adds it; 'always' and 'never'."""
    ref, ckpt = _official("edsr-baseline")
    model = _load(tmp_path, ckpt)
    lr = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    coord, cell = grid(16, 16, 2)  # Q = 4 h w: the official training route needs Q >= h w
    x = (lr - 0.5) / 0.5
    ref.train(), model.train()
    want_train = ref(x, coord, cell)
    assert rel(model(lr, coord, cell), want_train) <= 1e-5
    ref.eval(), model.eval()
    with torch.no_grad():
        want_eval = ref(x, coord, cell)
        assert rel(model(lr, coord, cell), want_eval) <= 1e-5
        assert rel(want_eval - want_train.detach(), want_eval) > 0.1  # the official mismatch is large
        model.head.lr_skip = "never"
        assert rel(model(lr, coord, cell), want_train) <= 1e-5
    model.train()
    model.head.lr_skip = "always"
    assert rel(model(lr, coord, cell), want_eval) <= 1e-5


@pytest.mark.parametrize("size", [(50, 61), (30, 100), (96, 50)])
def test_attention_blocks_match_official(size):
    """Above 48x48 latents the attention runs by 48x48 blocks (one latent of context); 30x100 has no block:
    zero, as the official code."""
    torch.manual_seed(0)
    ref = OfficialLMCiaoSR(OfficialEDSR(n_resblocks=1)).eval()
    perturb(ref, 0.05)
    head = LMCiaoSRHead(64)
    head.attention.load_state_dict(ref.cs_attn.state_dict())
    feat = torch.randn(1, 64, *size, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        ref.gen_feats.__func__  # noqa: B018 (the official gen_feats runs the encoder: feed feat directly)
        ref.encoder = torch.nn.Identity()
        ref.encoder.out_dim = 64
        ref.gen_feats(feat)
        got = blockwise(head.attention, feat)
    assert (size[0] >= 48) or not got.abs().sum()  # the quirk: no block, zero
    assert (got - ref.non_local_feat).abs().max().item() <= 1e-5 * max(
        ref.non_local_feat.abs().max().item(), 1
    )


def _swinir_pair() -> tuple[OfficialLMCiaoSR, ImplicitSR]:
    torch.manual_seed(0)
    ref = OfficialLMCiaoSR(OfficialSwinIR(img_size=48, embed_dim=24, depths=(2, 2), num_heads=(2, 2))).eval()
    perturb(ref, 0.01)
    cfg = {"embed_dim": 24, "depths": [2, 2], "num_heads": [2, 2], "window_size": 8, "out_dim": 64}
    ours = ImplicitSR(SwinIR(**cfg), LMCiaoSRHead(64, lr_skip="eval")).eval()
    _, sd = official_to_ours(official_lmciaosr_checkpoint(ref, "swinir", {})["model"])
    ours.load_state_dict(sd, strict=True)
    return ref, ours


@pytest.mark.parametrize("out", [(26, 42), (29, 50)])
def test_swinir_window_contract(out):
    """test.py --window 8: flip-pad to ((h // 8) + 1) * 8, query the padded frame (c' = (c + 1) h / h_pad - 1,
    cell' = cell h / h_pad); at x2 this is the official crop of the padded output grid."""
    ref, ours = _swinir_pair()
    h, w = 13, 21
    lr = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(5))
    inp = official_flip_pad((lr - 0.5) / 0.5)
    hp, wp = inp.shape[-2:]
    assert (hp, wp) == ((h // 8 + 1) * 8, (w // 8 + 1) * 8)
    coord, cell = grid(*out, 1)
    if out == (2 * h, 2 * w):  # the official route: the whole padded grid at x2, cropped
        pc, pcell = grid(2 * hp, 2 * wp, 1)
        with torch.no_grad():
            full = ref(inp, pc, pcell).view(1, 2 * hp, 2 * wp, 3)[:, : 2 * h, : 2 * w]
    else:
        mapped = (coord + 1) * torch.tensor([h / hp, w / wp]) - 1
        with torch.no_grad():
            full = ref(inp, mapped, cell * torch.tensor([h / hp, w / wp])).view(1, *out, 3)
    want = (full * 0.5 + 0.5).clamp(0, 1).permute(0, 3, 1, 2)
    got = ours.upscale(lr, out, chunk=500, cell_clip=None, border="none")
    ERRORS[f"swinir {out}"] = err = rel(got, want)
    assert err <= 1e-5


def _small(lr_skip: str = "always") -> ImplicitSR:
    torch.manual_seed(0)
    head = LMCiaoSRHead(8, hidden_dim=4, hidden_depth=2, attn_hidden=[16], hidden_list=[16], lr_skip=lr_skip)
    model = ImplicitSR(EDSRBaseline(n_resblocks=1, n_feats=8), head).eval()
    perturb(model, 0.05)
    return model


def test_tiling_is_refused_and_untiled_tile_runs():
    from liif_sr.inference.upscale import upscale_tensor

    model = _small()
    lr = torch.rand(1, 3, 20, 18)
    with pytest.raises(TilingUnsupportedError, match="lmciaosr head's non-local attention"):
        upscale_tiled(model, lr, (40, 36), tile=8)
    with pytest.raises(TilingUnsupportedError, match="its lmciaosr head cannot be tiled"):
        upscale_tensor(model, lr, (40, 36), max_memory=600_000, chunk=256)
    want = model.upscale(lr, (40, 36))
    assert torch.equal(upscale_tensor(model, lr, (40, 36), tile=64), want)  # a covering tile: untiled


def test_cells_and_validation():
    model = _small()
    lr = torch.rand(1, 3, 6, 7)
    coord, cell = grid(12, 14, 1)
    bad = cell.clone()
    bad[:, 5] *= 2
    with torch.no_grad(), pytest.raises(ValueError, match="one cell per image"):
        model.query(lr, coord, bad)
    prepared = model.prepare(lr)
    a = model.decode(prepared, coord, cell)
    b = model.decode(prepared, coord, cell * 2)  # another scale: other modulations (recomputed, cached)
    assert not torch.equal(a, b) and torch.equal(model.decode(prepared, coord, cell), a)
    with pytest.raises(ValueError, match="lr_skip"):
        LMCiaoSRHead(8, lr_skip="train")
    with pytest.raises(ValueError, match="at least 2x2"):
        model.upscale(torch.rand(1, 3, 1, 5), (3, 15), border="none")


def test_registry_round_trip_and_training_grads(tmp_path, monkeypatch):
    from liif_sr.checkpoints import save_weights

    model = _small()
    path = save_weights(model, tmp_path / "m.safetensors")
    loaded = load_model(path)
    assert loaded.head.config == model.head.config and loaded.head.fast
    lr = torch.rand(1, 3, 6, 7)
    assert torch.equal(loaded.upscale(lr, (13, 15)), model.upscale(lr, (13, 15)))
    assert (
        load_model(path, head_mode="plain").upscale(lr, (13, 15)).sub(model.upscale(lr, (13, 15))).abs().max()
        <= 1e-5
    )
    model.train()
    coord, cell = grid(12, 14, 1)
    forbid_host_sync(monkeypatch)
    loss = model(lr, coord, cell).square().mean()
    monkeypatch.undo()
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.head.parameters())


def test_parameter_count_matches_official():
    ref = OfficialLMCiaoSR(OfficialEDSR(n_resblocks=1))
    head = LMCiaoSRHead(64)
    n_ref = sum(p.numel() for n, p in ref.named_parameters() if not n.startswith("encoder."))
    assert sum(p.numel() for p in head.parameters()) == n_ref == 734_998


@pytest.mark.parametrize(
    ("change", "pattern"),
    [
        ({"mod_input": False}, r"mod_input=False; only the recipes' True"),
        ({"multi_scale": [2, 3]}, r"multi_scale=\[2, 3\]"),
        ({"local_size": 1}, "local_size=1"),
        ({"cmsr_spec": {"mse_threshold": 2e-5}}, "CMSR"),
        ({"eval_bsize": 30000}, re.escape("arguments the official code does not take: ['eval_bsize']")),
        ({"imnet_k": {"name": "mlp", "args": {"hidden_list": [128]}}}, "hidden lists differ"),
        ({"imnet_q": {"name": "mlp", "args": {}}}, "imnet_q 'mlp', expected 'lmmlp'"),
    ],
)
def test_unsupported_specs_are_refused_in_one_line(tmp_path, change, pattern):
    ref = OfficialLMCiaoSR(OfficialEDSR(n_resblocks=1))
    ckpt = official_lmciaosr_checkpoint(ref, "edsr-baseline", {"n_resblocks": 1})
    ckpt["model"]["args"].update(change)
    refused(tmp_path, ckpt, pattern)


def test_encoder_key_is_read_not_a_fixed_scale_network(tmp_path):
    ref = OfficialLMCiaoSR(OfficialEDSR(n_resblocks=1))
    ckpt = official_lmciaosr_checkpoint(ref, "edsr-baseline", {"n_resblocks": 1})
    config, _ = official_to_ours(ckpt["model"])
    assert config["encoder"] == {"name": "edsr_baseline", "args": {"n_resblocks": 1}}
    assert build_model(config).head.name == "lmciaosr"
    other = {**ckpt["model"], "name": "ciaosr"}  # LMF's unconfigured plain CiaoSR: named, not "fixed-scale"
    refused(
        tmp_path, {"model": other}, "official model 'ciaosr' with encoder 'edsr-baseline' is not supported"
    )
    del ckpt["model"]["args"]["encoder"]
    refused(tmp_path, ckpt, r"official model 'lmciaosr' \(no encoder: a fixed-scale network")


def test_cli_tile_fails_the_image_in_one_line_and_writes_nothing(tmp_path, capsys):
    """``liif-sr upscale --tile 8`` on LM-CiaoSR: the image fails with one line naming the reason (exit 1, as
    SwinIR's: a tile covering the image would run), no output; a covering tile runs."""
    from liif_sr.checkpoints import save_weights
    from liif_sr.cli import main
    from liif_sr.data.images import write_image_atomic

    ckpt = save_weights(_small(), tmp_path / "lmc.safetensors")
    src = tmp_path / "a.png"
    write_image_atomic(src, (torch.rand(21, 17, 3) * 255).to(torch.uint8).numpy())
    out = tmp_path / "out.png"
    code = main(["upscale", str(src), "--scale", "2", "-o", str(out), "-c", str(ckpt), "-q", "--tile", "8"])
    err = [line for line in capsys.readouterr().err.splitlines() if "failed:" in line]
    assert code == 1 and not out.exists()
    assert len(err) == 1 and "lmciaosr head's non-local attention" in err[0]
    assert (
        main(["upscale", str(src), "--scale", "2", "-o", str(out), "-c", str(ckpt), "-q", "--tile", "64"])
        == 0
    )
    assert out.is_file()
