"""Official LTE-repository checkpoints through ``load_model``: parity with the official algorithms through
official-format ``.pth`` files (≤ 1e-5 relative, fp32 CPU), the official test.py protocol (LTE cell clipping
at ×6, SwinIR flip padding), and one-line refusals of what is not supported (docs/method.md: Official checkpoints).

The files are written with ``torch.save`` from the official re-statements (``official_liif``,
``official_lte``, ``official_swinir``) in the layout of the official ``train.py`` (model spec, Adam state,
epoch). SwinIR uses the full ``make_swinir()`` configuration (its arguments are ignored by the official
factory, so a checkpoint always holds the full encoder) on tiny inputs.
"""

from __future__ import annotations

import re

import pytest
import torch
from official_helpers import (
    grid,
    official_encoder,
    official_file_cache,
    official_inputs,
    one_thread_reporting,
    perturb,
    refused,
    rel,
)
from official_liif import OfficialEDSR, OfficialLIIF, official_checkpoint
from official_lte import OfficialLTE, OfficialMetaSR, official_head_checkpoint
from official_swinir import batched_predict, official_swinir_eval

from liif_sr import load_model
from liif_sr.checkpoints import read_checkpoint, save_weights
from liif_sr.errors import CheckpointError

SUPPORTED = "supported: liif, lte, metasr, lmliif, lmlte, lmciaosr with edsr-baseline, rdn, swinir"
PAIRS = [
    ("lte", "edsr-baseline"),
    ("lte", "rdn"),
    ("lte", "swinir"),
    ("metasr", "edsr-baseline"),
    ("metasr", "rdn"),
    pytest.param("metasr", "swinir", marks=pytest.mark.slow),  # not an LTE-paper model; ~6 s
    ("liif", "swinir"),
    ("swinir", "swinir"),  # the slip of train_swinir-liif.yaml: a LIIF model named 'swinir'
]
HEADS = {"lte": OfficialLTE, "metasr": OfficialMetaSR}
ERRORS: dict[str, float] = {}  # measured max relative errors, printed at the end (-s)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with one_thread_reporting(ERRORS):
        yield


def _official_model(head: str, encoder: str) -> tuple[torch.nn.Module, dict]:
    """An official model (non-trivial weights) and the checkpoint dict the official train.py saves."""
    torch.manual_seed(0)
    enc, enc_args = official_encoder(encoder)
    if head in ("liif", "swinir"):
        ref = OfficialLIIF(enc).eval()
    else:
        ref = HEADS[head](enc).eval()
    perturb(ref, 0.01, encoder=encoder == "swinir")  # SwinIR's constant-init parameters too
    if head in ("liif", "swinir"):
        ckpt = official_checkpoint(ref, encoder, enc_args, [256] * 4, {})
        ckpt["model"]["name"] = head
    else:
        ckpt = official_head_checkpoint(ref, head, encoder, enc_args)
    return ref, ckpt


@pytest.fixture(scope="module")
def official_files(tmp_path_factory):
    """(head, encoder) → (official model, path of its official-format .pth), built once per module."""
    return official_file_cache(tmp_path_factory, _official_model, "official")


def _official_query(ref, lr: torch.Tensor, coord: torch.Tensor, cell: torch.Tensor, swinir: bool):
    """The official function at ``coord``/``cell`` of ``lr`` (B, 3, h, w) in [0, 1] on test.py's input
    (SwinIR: the flip-padded frame), through test.py's ``batched_predict``."""
    with torch.no_grad():
        return batched_predict(ref, *official_inputs(lr, coord, cell, swinir), 30000) * 0.5 + 0.5


def _queries(b: int, gen: torch.Generator) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Random queries and pixel-centre grids (x2, x3 with ties on latent lines), batch ``b``."""
    out = [(torch.rand(b, 400, 2, generator=gen) * 2 - 1, torch.rand(b, 400, 2, generator=gen) * 0.3 + 0.01)]
    return out + [grid(h, w, b) for h, w in [(18, 26), (27, 39)]]


@pytest.mark.parametrize("head,encoder", PAIRS)
def test_query_parity_through_official_files(official_files, head, encoder):
    ref, path = official_files(head, encoder)
    want_head = "liif" if head == "swinir" else head
    want_enc = encoder.replace("-", "_")
    models = {mode: load_model(path, head_mode=mode) for mode in ("fast", "plain")}
    for mode, model in models.items():
        assert model.config["head"]["name"] == want_head and model.config["encoder"]["name"] == want_enc
        assert model.head.fast == (mode == "fast")
    gen = torch.Generator().manual_seed(2)
    lr = torch.rand(2, 3, 9, 13, generator=gen)  # non-square, batch 2; SwinIR pads to 16 x 16
    for i, (coord, cell) in enumerate(_queries(2, gen)):
        want = _official_query(ref, lr, coord, cell, encoder == "swinir")
        for mode, model in models.items():
            with torch.no_grad():
                got = model.query(lr, coord, cell, border="none")
            err = rel(got, want)
            key = f"query {head}/{encoder} {mode}"
            ERRORS[key] = max(ERRORS.get(key, 0.0), err)
            assert err <= 1e-5, (key, i, err)


@pytest.mark.parametrize("encoder", ["edsr-baseline", "rdn", "swinir"])
def test_lte_upscale_x6_matches_official_test_protocol(official_files, encoder):
    """``upscale(lr, 6x)`` with the default ``cell_clip="auto"`` == test.py: ``cell * max(scale / 4, 1)``."""
    ref, path = official_files("lte", encoder)
    model = load_model(path)
    scale, (h, w) = 6, (9, 13)
    lr = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(3))
    if encoder == "swinir":
        want = official_swinir_eval(ref, lr, scale)
    else:  # test.py without --window: the dataset's coord/cell of the HR grid, the cell clipped
        coord, cell = grid(h * scale, w * scale, 1)
        pred = batched_predict(ref, (lr - 0.5) / 0.5, coord, cell * max(scale / 4, 1), 30000)
        want = (pred * 0.5 + 0.5).clamp(0, 1).view(1, h * scale, w * scale, 3).permute(0, 3, 1, 2)
    got = model.upscale(lr, (h * scale, w * scale), chunk=1000, border="none")
    err = rel(got, want)
    ERRORS[f"upscale x6 lte/{encoder} (cell_clip=auto)"] = err
    assert got.shape == want.shape and err <= 1e-5
    unclipped = model.upscale(lr, (h * scale, w * scale), chunk=1000, cell_clip=None, border="none")
    assert (unclipped - want).abs().max() > 1e-4  # the clip is what makes it match


def test_official_checkpoint_round_trips_to_liif_sr_files(official_files, tmp_path):
    _, path = official_files("lte", "edsr-baseline")
    model = load_model(path)
    again = load_model(save_weights(model, tmp_path / "m.safetensors"))
    lr = torch.rand(1, 3, 7, 6)
    assert again.config == model.config and torch.equal(
        again.upscale(lr, (20, 15)), model.upscale(lr, (20, 15))
    )


def _tiny_official(head: str = "lte") -> dict:
    torch.manual_seed(0)
    enc = OfficialEDSR(n_resblocks=1, n_feats=8)
    ref = (HEADS[head](enc) if head in HEADS else OfficialLIIF(enc, hidden_list=[16])).eval()
    if head in HEADS:
        return official_head_checkpoint(ref, head, "edsr-baseline", {"n_resblocks": 1, "n_feats": 8})
    return official_checkpoint(ref, "edsr-baseline", {"n_resblocks": 1, "n_feats": 8}, [16], {})


def test_unsupported_official_files_are_one_line(tmp_path):
    ck = _tiny_official("lte")
    ck["model"]["name"] = "lte-fast"
    refused(
        tmp_path,
        ck,
        re.escape(f"official model 'lte-fast' with encoder 'edsr-baseline' is not supported; {SUPPORTED}"),
    )
    ck = _tiny_official("lte")
    ck["model"]["args"]["encoder_spec"]["name"] = "rcan"
    refused(
        tmp_path, ck, re.escape(f"official model 'lte' with encoder 'rcan' is not supported; {SUPPORTED}")
    )
    # a fixed-scale baseline (train_edsr-baseline-x2.yaml): no encoder_spec at all
    fixed = {"model": {"name": "edsr-baseline", "args": {"scale": 2}, "sd": {}}, "epoch": 1}
    refused(
        tmp_path,
        fixed,
        r"official model 'edsr-baseline' \(no encoder_spec: a fixed-scale network.*" + SUPPORTED,
    )
    ck = _tiny_official("liif")
    ck["model"]["args"]["imnet_spec"] = None
    refused(tmp_path, ck, "official liif model has no MLP decoder .* fixed-scale baselines are not supported")
    ck = _tiny_official("lte")
    ck["model"]["args"]["encoder_spec"]["args"]["no_upsampling"] = False
    refused(tmp_path, ck, "has an upsampler")
    ck = _tiny_official("metasr")
    ck["model"]["args"]["hidden_dim"] = 256
    refused(
        tmp_path, ck, r"official metasr model has arguments the official code does not take: \['hidden_dim'\]"
    )
    # the slip's name with another head's args: refused, not guessed
    ck = _tiny_official("lte")
    ck["model"]["name"] = "swinir"
    ck["model"]["args"]["encoder_spec"]["name"] = "swinir"
    refused(tmp_path, ck, r"official model 'swinir' at the top level is not a LIIF spec.*" + SUPPORTED)


def test_official_state_dict_is_used_strictly(tmp_path):
    ck = _tiny_official("lte")
    sd = ck["model"]["sd"]
    sd["extra.weight"], sd["module.other.bias"] = torch.zeros(1), torch.zeros(1)
    refused(
        tmp_path,
        ck,
        "official lte checkpoint has keys the official lte model does not: extra.weight, other.bias",
    )
    ck = _tiny_official("lte")
    ck["model"]["sd"]["encoder.tail.0.weight"] = torch.zeros(1)  # an upsampler's weights
    refused(tmp_path, ck, "weights do not match the model config: unexpected keys encoder.tail.0.weight")
    ck = _tiny_official("metasr")
    del ck["model"]["sd"]["imnet.layers.2.bias"]
    refused(tmp_path, ck, "missing keys head.mlp.layers.2.bias")
    ck = _tiny_official("lte")  # DataParallel-saved files load
    ck["model"]["sd"] = {"module." + k: v for k, v in ck["model"]["sd"].items()}
    torch.save(ck, tmp_path / "dp.pth")
    assert read_checkpoint(tmp_path / "dp.pth")[0]["head"] == {
        "name": "lte",
        "hidden_dim": 256,
        "hidden_list": [256, 256, 256],
        "out_dim": 3,
    }
    assert load_model(tmp_path / "dp.pth").head.name == "lte"


def test_unknown_head_in_a_liif_sr_file_is_one_line(tmp_path):
    ck = _tiny_official("lte")
    model = load_model(_save(tmp_path, ck))
    config = model.config
    config["head"]["name"] = "nope"
    torch.save(
        {"format": "liif-sr", "model": config, "state_dict": model.state_dict()}, tmp_path / "nope.pth"
    )
    with pytest.raises(CheckpointError, match="unknown head 'nope'; known: ") as exc:
        load_model(tmp_path / "nope.pth")
    assert "\n" not in str(exc.value) and "nope.pth" in str(exc.value)
    known = str(exc.value).split("known: ")[1].split(";")[0].split(", ")
    assert {"liif", "lte", "metasr", "lmliif", "lmlte", "lmciaosr"} <= set(known) and "nope" not in known


def _save(tmp_path, ckpt: dict):
    path = tmp_path / "official.pth"
    torch.save(ckpt, path)
    return path
