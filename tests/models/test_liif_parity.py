"""Parity with the official LIIF algorithm through official-format checkpoint files (≤ 1e-5 relative)."""

from __future__ import annotations

import itertools

import pytest
import torch
from official_liif import OfficialEDSR, OfficialLIIF, OfficialRDN, official_checkpoint

from liif_sr import load_model

SWITCHES = list(itertools.product([True, False], repeat=3))


def _official(encoder: str) -> tuple[torch.nn.Module, dict]:
    if encoder == "edsr-baseline":
        return OfficialEDSR(), {}
    return OfficialRDN(), {"G0": 64, "RDNkSize": 3, "RDNconfig": "B"}


def _queries(b: int, q: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    coord = torch.rand(b, q, 2, generator=gen) * 2 - 1
    cell = torch.rand(b, q, 2, generator=gen) * 0.3 + 0.01
    return coord, cell


@pytest.mark.parametrize("encoder", ["edsr-baseline", "rdn"])
@pytest.mark.parametrize("unfold,ensemble,cell_decode", SWITCHES)
@pytest.mark.parametrize("head_mode", ["plain", "fast"])
def test_official_checkpoint_parity(tmp_path, encoder, unfold, ensemble, cell_decode, head_mode):
    torch.manual_seed(0)
    enc, enc_args = _official(encoder)
    switches = {"feat_unfold": unfold, "local_ensemble": ensemble, "cell_decode": cell_decode}
    ref = OfficialLIIF(enc, **switches).eval()
    with torch.no_grad():  # non-trivial weights also in the MLP biases
        for p in ref.imnet.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    path = tmp_path / "official.pth"
    torch.save(official_checkpoint(ref, encoder, enc_args, [256] * 4, switches), path)

    model = load_model(path, head_mode=head_mode)
    gen = torch.Generator().manual_seed(1)
    lr = torch.rand(2, 3, 9, 13, generator=gen)  # non-square, batch 2
    coord, cell = _queries(2, 700, gen)
    with torch.no_grad():
        want = ref((lr - 0.5) / 0.5, coord, cell) * 0.5 + 0.5
        got = model.query(lr, coord, cell)
    rel = ((got - want).abs().max() / want.abs().max()).item()
    assert rel <= 1e-5, f"relative error {rel:.2e}"


@pytest.mark.parametrize("head_mode", ["plain", "fast"])
def test_official_grid_queries_and_upscale(tmp_path, head_mode):
    """Pixel-centre queries (the real use) including exact latent boundaries, anisotropic scale."""
    from official_liif import official_make_coord

    torch.manual_seed(0)
    ref = OfficialLIIF(OfficialEDSR(n_resblocks=2, n_feats=16)).eval()
    path = tmp_path / "o.pth"
    torch.save(
        official_checkpoint(ref, "edsr-baseline", {"n_resblocks": 2, "n_feats": 16}, [256] * 4, {}), path
    )
    model = load_model(path, head_mode=head_mode)
    lr = torch.rand(1, 3, 10, 7)
    H, W = 30, 35  # x3 vertically, x5 horizontally
    coord = official_make_coord((H, W)).unsqueeze(0)
    cell = torch.ones_like(coord)
    cell[..., 0] *= 2 / H
    cell[..., 1] *= 2 / W
    with torch.no_grad():
        want = (ref((lr - 0.5) / 0.5, coord, cell) * 0.5 + 0.5).clamp(0, 1)
        got = model.upscale(lr, (H, W), chunk=100, border="none")
    want = want.view(1, H, W, 3).permute(0, 3, 1, 2)
    assert got.shape == (1, 3, H, W)
    assert (got - want).abs().max().item() <= 1e-5


def test_official_checkpoint_keys_and_args(tmp_path):
    ref = OfficialLIIF(OfficialEDSR())
    sd_keys = set(ref.state_dict())
    assert {
        "encoder.sub_mean.weight",
        "encoder.add_mean.bias",
        "imnet.layers.0.weight",
        "imnet.layers.8.bias",
        "encoder.body.16.weight",
        "encoder.body.15.body.2.weight",
    } <= sd_keys
    assert ref.imnet.layers[0].weight.shape == (256, 580)
    path = tmp_path / "o.pth"
    torch.save(official_checkpoint(ref, "edsr-baseline", {}, [256] * 4, {}), path)
    model = load_model(path)
    assert model.config["encoder"] == {
        "name": "edsr_baseline",
        "args": {"n_resblocks": 16, "n_feats": 64, "res_scale": 1.0},
    }
    assert sum(p.numel() for p in model.parameters()) == 1_567_299  # spec: 1,567,323 incl. 24 MeanShift


def test_cpu_block_decode_under_inference_mode_and_threads():
    """The threaded CPU decode re-enters inference mode / no_grad in its workers (Lightning validation)."""
    from liif_sr.models import EDSRBaseline, ImplicitSR, LIIFHead

    torch.manual_seed(0)
    model = ImplicitSR(EDSRBaseline(n_resblocks=1, n_feats=8), LIIFHead(8, hidden_list=[16])).eval()
    lr = torch.rand(1, 3, 12, 12)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        with torch.no_grad():
            want = model.upscale(lr, (70, 70))  # 4900 queries x 4 members: several 2048-row blocks
        with torch.inference_mode():
            got = model.upscale(lr, (70, 70))
        model.head.fast = False
        with torch.no_grad():
            ref = model.upscale(lr, (70, 70))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(got, want) and (got - ref).abs().max() <= 1e-5
