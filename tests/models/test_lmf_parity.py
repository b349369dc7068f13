"""LM-LIIF and LM-LTE heads: parity with the official LMF evaluation route through official-format ``.pth``
files (≤ 1e-5 relative, fp32 CPU; EDSR-baseline, RDN, SwinIR with the ``--window 8`` padding), the LMF test.py
cell clip, fast vs reference, windows and tiling, per-item cells in training, one-line refusals
(docs/method.md: LM-LIIF / LM-LTE heads, Official checkpoints; liif_spec.md §12)."""

from __future__ import annotations

import pytest
import torch
from helpers import lm_kernel_used
from official_helpers import (
    assert_window_decode_equals_full,
    forbid_host_sync,
    grid,
    official_encoder,
    official_file_cache,
    official_inputs,
    one_thread_reporting,
    perturb,
    refused,
    rel,
)
from official_liif import OfficialEDSR
from official_lmf import OfficialLMLIIF, OfficialLMLTE, official_lmf_checkpoint
from official_swinir import official_flip_pad

from liif_sr import load_model
from liif_sr.inference.tiling import upscale_tiled
from liif_sr.models import EDSRBaseline, ImplicitSR, LMLIIFHead, LMLTEHead

OFFICIAL = {"lmliif": OfficialLMLIIF, "lmlte": OfficialLMLTE}
HEADS = {"lmliif": LMLIIFHead, "lmlte": LMLTEHead}
PAIRS = [(h, e) for h in ("lmliif", "lmlte") for e in ("edsr-baseline", "rdn", "swinir")]
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


def _official_model(head: str, encoder: str, **kwargs) -> tuple[torch.nn.Module, dict]:
    torch.manual_seed(0)
    enc, enc_args = official_encoder(encoder)
    ref = OFFICIAL[head](enc, **kwargs).eval()
    perturb(ref, 0.02, encoder=encoder == "swinir")  # SwinIR's constant-init parameters too
    return ref, official_lmf_checkpoint(ref, head, encoder, enc_args)


@pytest.fixture(scope="module")
def official_files(tmp_path_factory):
    return official_file_cache(tmp_path_factory, _official_model, "lmf")


def _official_route(ref, lr, coord, cell, swinir: bool) -> torch.Tensor:
    """``model(inp, coord, cell)`` (LMF test.py's route) on test.py's input (SwinIR: flip-padded frame)."""
    with torch.no_grad():
        return ref(*official_inputs(lr, coord, cell, swinir)) * 0.5 + 0.5


def _queries(gen: torch.Generator) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Anisotropic non-integer grids (23x41, 30x35 from 9x13) and random points (one cell per image)."""
    coord = torch.rand(2, 700, 2, generator=gen) * 2 - 1
    cell = (torch.rand(2, 1, 2, generator=gen) * 0.3 + 0.01).expand(2, 700, 2)
    return [grid(23, 41, 2, (1.0, 1.7)), grid(30, 35, 2), (coord, cell.contiguous())]


@pytest.mark.parametrize("head,encoder", PAIRS)
def test_query_parity_through_official_files(official_files, head, encoder):
    ref, path = official_files(head, encoder)
    models = {mode: load_model(path, head_mode=mode) for mode in ("fast", "plain")}
    gen = torch.Generator().manual_seed(2)
    lr = torch.rand(2, 3, 9, 13, generator=gen)  # odd, non-square; SwinIR pads to 16 x 16
    for i, (coord, cell) in enumerate(_queries(gen)):
        want = _official_route(ref, lr, coord, cell, encoder == "swinir")
        got = {}
        for mode, model in models.items():
            assert model.config["head"]["name"] == head and model.head.fast == (mode == "fast")
            got[mode] = model.query(lr, coord, cell, border="none")
            key = f"{head}/{encoder} {mode}"
            ERRORS[key] = max(ERRORS.get(key, 0.0), rel(got[mode], want))
            assert rel(got[mode], want) <= 1e-5, (key, i)
        assert rel(got["fast"], got["plain"]) <= 1e-5


@pytest.mark.parametrize(
    "head,encoder", [(h, e) for h in ("lmliif", "lmlte") for e in ("edsr-baseline", "swinir")]
)
def test_upscale_x6_matches_lmf_test_protocol(official_files, head, encoder):
    """``upscale(lr, 6x)`` with ``cell_clip="auto"`` == LMF test.py: ``model(inp, coord, cell * max(6 / 4, 1))``
    (the clipped cell also feeds the latent MLP)."""
    ref, path = official_files(head, encoder)
    model = load_model(path)
    scale, (h, w) = 6, (9, 13)
    lr = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(3))
    if encoder == "swinir":  # test.py --window 8: the padded grid's coord and cell, cropped afterwards
        inp = official_flip_pad((lr - 0.5) / 0.5)
        hp, wp = inp.shape[-2:]
        coord, cell = grid(scale * hp, scale * wp, 1)
        with torch.no_grad():
            pred = ref(inp, coord, cell * max(scale / 4, 1))
        want = pred.view(1, scale * hp, scale * wp, 3).permute(0, 3, 1, 2)[..., : h * scale, : w * scale]
    else:
        coord, cell = grid(h * scale, w * scale, 1)
        with torch.no_grad():
            pred = ref((lr - 0.5) / 0.5, coord, cell * max(scale / 4, 1))
        want = pred.view(1, h * scale, w * scale, 3).permute(0, 3, 1, 2)
    want = (want * 0.5 + 0.5).clamp(0, 1)
    got = model.upscale(lr, (h * scale, w * scale), chunk=1000, border="none")
    ERRORS[f"upscale x6 {head}/{encoder}"] = rel(got, want)
    assert got.shape == want.shape and rel(got, want) <= 1e-5
    unclipped = model.upscale(lr, (h * scale, w * scale), chunk=1000, cell_clip=None, border="none")
    assert (unclipped - want).abs().max() > 1e-4  # the clip is what makes it match


def _small(head: str, fast: bool = True) -> ImplicitSR:
    torch.manual_seed(0)
    kwargs = {"hidden_list": [24]} if head == "lmliif" else {"latent_dim": 16, "hidden_list": [24]}
    model = ImplicitSR(EDSRBaseline(n_resblocks=1, n_feats=8), HEADS[head](8, fast=fast, **kwargs)).eval()
    perturb(model, 0.05, seed=None)
    return model


@pytest.mark.parametrize("head", ["lmliif", "lmlte"])
def test_window_prepare_decode_equals_full(head):
    model = _small(head)
    lr = torch.rand(2, 3, 12, 10, generator=torch.Generator().manual_seed(4))
    assert_window_decode_equals_full(model, lr, *grid(29, 25, 2, (1.0, 1.3)))


@pytest.mark.parametrize("head", ["lmliif", "lmlte"])
def test_tiled_upscale_chunks_and_reference(head):
    model = _small(head)
    lr = torch.rand(2, 3, 17, 13, generator=torch.Generator().manual_seed(5))
    want = model.upscale(lr, (40, 37))
    assert (model.upscale(lr, (40, 37), chunk=97) - want).abs().max().item() <= 1e-6  # cache across chunks
    for tile in (4, (5, 7)):
        assert (upscale_tiled(model, lr, (40, 37), tile=tile, chunk=300) - want).abs().max().item() <= 1e-5
    model.head.fast = False
    assert (model.upscale(lr, (40, 37)) - want).abs().max().item() <= 1e-5


@pytest.mark.parametrize("head", ["lmliif", "lmlte"])
def test_state_recomputes_modulations_for_another_cell(head):
    """One prepared state answers two scales: the latent MLP runs again for the new cell."""
    model = _small(head)
    lr = torch.rand(1, 3, 8, 9, generator=torch.Generator().manual_seed(6))
    prepared = model.prepare(lr)
    for size in ((20, 17), (33, 40), (20, 17)):
        coord, cell = grid(*size, 1)
        assert torch.equal(model.decode(prepared, coord, cell), model.decode(model.prepare(lr), coord, cell))
    coord, cell = grid(20, 17, 1)
    cell = cell.clone()
    cell[:, 5] *= 2
    with pytest.raises(ValueError, match="one cell per image"):
        model.decode(prepared, coord, cell)
    state = model.head.prepare(model.encode(lr), (lr - 0.5) / 0.5)
    assert model.head.decode(state, coord[:, :0], cell[:, :0]).shape == (1, 0, 3)


@pytest.mark.parametrize("head", ["lmliif", "lmlte"])
def test_training_per_item_cells_no_sync_and_grads(monkeypatch, head):
    """Training batches mix scales: each item's modulations use its own cell (as the official cell[:, :h*w])."""
    model = _small(head).train()
    lr = torch.rand(2, 3, 6, 7, generator=torch.Generator().manual_seed(7))
    coord, cell = grid(12, 14, 2, (1.0, 0.6))
    forbid_host_sync(monkeypatch)
    out = model(lr, coord, cell)
    monkeypatch.undo()
    out.square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.head.parameters())
    with torch.no_grad():  # item by item == the batch
        for i in range(2):
            one = model(lr[i : i + 1], coord[i : i + 1], cell[i : i + 1])
            assert (one - out[i : i + 1]).abs().max().item() <= 1e-6


@pytest.mark.parametrize("head", ["lmliif", "lmlte"])
def test_parameter_counts_and_official_keys(head):
    ref = OFFICIAL[head](OfficialEDSR(n_resblocks=1, n_feats=8))
    ckpt = official_lmf_checkpoint(ref, head, "edsr-baseline", {"n_resblocks": 1, "n_feats": 8})
    from liif_sr.models.official import official_to_ours

    config, sd = official_to_ours(ckpt["model"])
    ours = HEADS[head](8, **{k: v for k, v in config["head"].items() if k != "name"})
    assert set(ours.state_dict()) == {k[len("head.") :] for k in sd if k.startswith("head.")}
    n_ref = sum(p.numel() for n, p in ref.named_parameters() if not n.startswith("encoder."))
    assert sum(p.numel() for p in ours.parameters()) == n_ref
    full = {"lmliif": LMLIIFHead(64), "lmlte": LMLTEHead(64)}[head]
    # LM-LIIF 578→208→208 + lmmlp(20, 16x6, 3); LM-LTE 2 convs 64→128, 128→288→288, phases, lmmlp(16, 16x8, 3)
    assert sum(p.numel() for p in full.parameters()) == {"lmliif": 165_651, "lmlte": 270_467}[head]


def test_unmappable_official_lmf_files_are_one_line(tmp_path):
    def tiny(head: str = "lmliif") -> dict:
        ref = OFFICIAL[head](OfficialEDSR(n_resblocks=1, n_feats=8))
        return official_lmf_checkpoint(ref, head, "edsr-baseline", {"n_resblocks": 1, "n_feats": 8})

    ck = tiny()
    ck["model"]["args"]["cmsr_spec"] = {"mse_threshold": 2e-5, "s2m_tables": {}, "log": False}
    refused(tmp_path, ck, "cmsr_spec: CMSR .* not supported")
    ck = tiny("lmlte")
    ck["model"]["args"]["mod_input"] = False
    refused(tmp_path, ck, r"sets \['mod_input'\] to false")
    ck = tiny()
    ck["model"]["args"]["imnet_spec"]["args"]["mod_shift"] = False
    refused(tmp_path, ck, "only scales or only shifts")
    ck = tiny()
    ck["model"]["args"]["imnet_spec"]["name"] = "mlp"
    refused(tmp_path, ck, "imnet_spec 'mlp', expected 'lmmlp'")
    ck = tiny("lmlte")
    ck["model"]["args"]["feat_unfold"] = True
    refused(tmp_path, ck, r"arguments the official code does not take: \['feat_unfold'\]")
    ck = tiny()
    ck["model"]["sd"]["imphase.weight"] = torch.zeros(8, 2)
    refused(tmp_path, ck, "keys the official lmliif model does not: imphase.weight")
    ck = tiny()
    del ck["model"]["sd"]["hypernet.layers.2.bias"]
    refused(tmp_path, ck, "missing keys head.hypernet.layers.2.bias")


@pytest.mark.parametrize("depth", [1, 2, 6])
def test_forward_tables_equals_the_modulated_mlp(depth):
    """The fast decode's per-layer tables (bias folded into the shift, gathered per layer) compute the
    reference ``ModulatedMLP.forward`` of each gathered row; the tables are cached beside their rows."""
    from liif_sr.models.heads.lmf_common import LMState, ModulatedMLP, fast_rows, layer_tables

    torch.manual_seed(depth)
    render = ModulatedMLP(5, 3, 8, depth)
    latents, n = 7, 40
    rows = torch.randn(latents, render.mod_dim + 4)
    flat = torch.randint(0, latents, (n,))
    x = torch.randn(n, 5)
    want = render(x, rows[flat])
    state = LMState((0, 0), (1, latents), (1, latents), latent=torch.zeros(1, 1, 1, latents))
    fast = fast_rows(rows, render)
    state.cache["fast"] = fast
    tables = layer_tables(state, fast, render)
    assert layer_tables(state, fast, render) is tables  # cached for the same rows
    assert layer_tables(state, fast.clone(), render) is not tables  # other rows (another cell): rebuilt
    weights = render.transposed_weights(torch.float32)
    got = render.forward_tables(torch.mm(x, weights[0]), tables, flat, weights)
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-6)
    # layer 0's per-latent part as the first bias: z (L, 3) of a 2 + 3 input, only the 2 per-query channels left
    z = torch.randn(latents, 3)
    first = z @ weights[0][2:] + render.layers[0].bias
    tables = layer_tables(state, fast.clone(), render, first=first)
    got = render.forward_tables(torch.mm(x[:, :2], weights[0][:2]), tables, flat, weights)
    want = render(torch.cat([x[:, :2], z[flat]], dim=-1), rows[flat])
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-6)
    assert torch.equal(tables[-1], rows[:, render.mod_dim :])  # the rest (latent code) rows
