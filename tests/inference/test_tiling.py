"""Exact tiled upscaling (issue #44): equal to the untiled path, bounded encoder input, tight margin."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from helpers import one_thread

from liif_sr.inference.tiling import (
    auto_tile,
    parse_bytes,
    tile_margin,
    upscale_budgeted,
    upscale_tiled,
)
from liif_sr.models.encoders import RDN, EDSRBaseline
from liif_sr.models.heads.liif import LIIFHead
from liif_sr.models.implicit_sr import ImplicitSR

SWITCHES = list(itertools.product([True, False], repeat=3))
ENCODERS = {
    "edsr": lambda: EDSRBaseline(n_resblocks=2, n_feats=16),
    "rdn": lambda: RDN(G0=16, D=2, C=2, G=8),
}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with one_thread():
        yield


def _model(encoder: str, hidden=(64, 64), **switches) -> ImplicitSR:
    torch.manual_seed(0)
    model = ImplicitSR(ENCODERS[encoder](), LIIFHead(16, hidden_list=hidden, **switches)).eval()
    with torch.no_grad():  # non-trivial biases everywhere
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    return model


def _lr(b: int, h: int, w: int) -> torch.Tensor:
    return torch.rand(b, 3, h, w, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize(
    "encoder",
    [
        EDSRBaseline(),
        EDSRBaseline(n_resblocks=2, n_feats=16),
        RDN(G0=16, D=2, C=2, G=8),
        RDN(G0=8, D=2, C=3, G=4, kernel_size=5),
    ],
    ids=["edsr-baseline", "edsr-small", "rdn-small", "rdn-k5"],
)
def test_receptive_radius(encoder):
    """Perturbing one LR pixel changes latents exactly up to ``receptive_radius`` away, along each axis."""
    r = encoder.receptive_radius
    encoder = encoder.double().eval()
    gen = torch.Generator().manual_seed(0)
    for shape in [(2 * r + 5, 5), (5, 2 * r + 5)]:  # strips: cheap, and the extent along the long axis
        x = torch.rand(1, 3, *shape, dtype=torch.float64, generator=gen) * 2 - 1
        x2 = x.clone()
        x2[0, :, shape[0] // 2, shape[1] // 2] += 1.0
        with torch.no_grad():
            changed = (encoder(x) != encoder(x2)).any(dim=1)[0]
        ys, xs = torch.nonzero(changed).unbind(1)
        extent = max((ys - shape[0] // 2).abs().max().item(), (xs - shape[1] // 2).abs().max().item())
        assert extent == r, shape


@pytest.mark.parametrize("encoder", ["edsr", "rdn"])
def test_margin_is_exact_and_tight(encoder):
    """An untiled query owned by LR rows [r0, r1) depends on LR rows r0-R-2 .. r1-1+R+2 and none beyond.

    So the margin ``R + 2`` is both sufficient and necessary (float64 makes the far influence visible).
    """
    model = _model(encoder, hidden=(32,)).double()
    r = model.encoder.receptive_radius
    n = 2 * r + 20
    x = torch.rand(1, 3, n, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    r0, r1 = r + 4, r + 9
    cell = torch.full((1, 1, 2), 0.1, dtype=torch.float64)
    # first and last owned query positions (u in LR pixel units); their far ensemble member reads r0-1 / r1
    for u, needed, beyond in [(r0 + 0.1, r0 - r - 2, r0 - r - 3), (r1 - 0.1, r1 + 1 + r, r1 + 2 + r)]:
        coord = torch.tensor([[[u * 2 / n - 1, 0.0]]], dtype=torch.float64)
        with torch.no_grad():
            base = model(x, coord, cell)
            outs = {}
            for row in (needed, beyond):
                x2 = x.clone()
                x2[0, :, row, :] += 1.0
                outs[row] = model(x2, coord, cell)
        assert (outs[needed] != base).any(), f"row {row} should influence u={u}"
        assert torch.equal(outs[beyond], base), f"row {beyond} must not influence u={u}"
    assert tile_margin(model.encoder) == r + 2


@pytest.mark.parametrize("encoder", ["edsr", "rdn"])
@pytest.mark.parametrize("unfold,ensemble,cell_decode", SWITCHES)
def test_tiled_equals_untiled(encoder, unfold, ensemble, cell_decode):
    """Non-square, batch 2, tile not dividing the image, anisotropic non-integer scales."""
    model = _model(encoder, feat_unfold=unfold, local_ensemble=ensemble, cell_decode=cell_decode)
    lr = _lr(2, 37, 53)  # 37 = 3*10 + 7, 53 = 5*10 + 3: interior tiles with full margins exist
    size = (81, 130)  # x2.19 vertically, x2.45 horizontally
    want = model.upscale(lr, size, chunk=4000)
    got = upscale_tiled(model, lr, size, tile=10, chunk=777)
    assert got.shape == want.shape == (2, 3, *size)
    assert (got - want).abs().max().item() <= 1e-5


@pytest.mark.parametrize(
    "lr_size,tile,size,cell_clip",
    [
        ((37, 53), (7, 16), (37, 53), None),  # x1, rectangular tiles
        ((37, 53), 9, (20, 31), None),  # downscaling: some tiles own no output pixel
        ((37, 53), 12, (150, 61), 2.0),  # x4.05 / x1.15 with cell clipping
        ((13, 11), 1, (29, 30), None),  # 1-pixel tiles
        ((37, 53), 100, (74, 106), None),  # one tile larger than the image
    ],
)
def test_tiled_equals_untiled_more(lr_size, tile, size, cell_clip):
    model = _model("edsr")
    lr = _lr(1, *lr_size)
    want = model.upscale(lr, size, cell_clip=cell_clip)
    got = upscale_tiled(model, lr, size, tile=tile, cell_clip=cell_clip)
    assert (got - want).abs().max().item() <= 1e-5


def test_tiled_paper_head_and_plain_reference():
    """The paper-sized head (256 x 4) and the plain reference path agree with the tiled fast decode."""
    torch.manual_seed(0)
    model = ImplicitSR(EDSRBaseline(n_resblocks=2, n_feats=16), LIIFHead(16, fast=False)).eval()
    lr = _lr(1, 30, 41)
    want = model.upscale(lr, (67, 90), chunk=30000)
    got = upscale_tiled(model, lr, (67, 90), tile=11)
    assert (got - want).abs().max().item() <= 1e-5


@pytest.mark.parametrize("lr_size,size", [((20, 20), (50, 60)), ((9, 13), (27, 39))])
def test_border_centre_queries_match_plain(lr_size, size):
    """Queries on the centre line of the border latents (x3 here): all four area products are ~0 and the
    weights are ratios of ~1e-9 values, so latent centres must be bit-identical to the reference's."""
    torch.manual_seed(0)
    model = ImplicitSR(EDSRBaseline(n_resblocks=1, n_feats=16), LIIFHead(16, hidden_list=(64, 64))).eval()
    lr = _lr(2, *lr_size)
    fast = model.upscale(lr, size)
    tiled = upscale_tiled(model, lr, size, tile=4)
    model.head.fast = False
    plain = model.upscale(lr, size)
    assert (fast - plain).abs().max().item() <= 1e-5
    assert (tiled - plain).abs().max().item() <= 1e-5


def test_smaller_margin_is_not_exact():
    """With R+1 the result differs (the float64 model makes the difference visible)."""
    model = _model("edsr", hidden=(32,)).double()
    lr = _lr(1, 37, 53).double()
    want = model.upscale(lr, (74, 106))
    r = model.encoder.receptive_radius
    exact = upscale_tiled(model.float(), lr.float(), (74, 106), tile=10)
    assert (exact.double() - want).abs().max().item() <= 1e-5
    model.double()
    short = upscale_tiled(model, lr, (74, 106), tile=10, margin=r + 1)
    assert (short - want).abs().max().item() > 1e-12


@pytest.mark.parametrize("encoder", ["edsr", "rdn"])
def test_encoder_input_bounded_by_tile(encoder):
    """The encoder never sees more than (tile + 2 margin)^2 pixels; no full-size latent or projection."""
    model = _model(encoder)
    h, w, tile = 61, 75, 8
    m = tile_margin(model.encoder)
    seen_in, seen_proj = [], []
    enc_forward, project = model.encoder.forward, model.head.latent_projection

    def counting_forward(x):
        seen_in.append(tuple(x.shape[-2:]))
        out = enc_forward(x)
        assert out.shape[-2:] == x.shape[-2:]
        return out

    def counting_projection(feat):
        seen_proj.append(tuple(feat.shape[-2:]))
        return project(feat)

    model.encoder.forward = counting_forward
    model.head.latent_projection = counting_projection
    upscale_tiled(model, _lr(1, h, w), (150, 170), tile=tile)
    assert len(seen_in) == -(-h // tile) * -(-w // tile)
    assert max(a * b for a, b in seen_in) <= (tile + 2 * m) ** 2 < h * w
    assert all(a < h and b < w for a, b in seen_in)
    assert max(a * b for a, b in seen_proj) <= (tile + 4) ** 2  # 1-pixel-latent-margin window


def test_auto_tile():
    edsr = ImplicitSR(EDSRBaseline(), LIIFHead(64))
    m = tile_margin(edsr.encoder, edsr.head.reach)
    small = auto_tile(3456, 4608, 2 * 1024**3, edsr, chunk=16384)
    large = auto_tile(3456, 4608, 8 * 1024**3, edsr, chunk=16384)
    assert 16 <= small < large < 4608
    assert auto_tile(100, 120, 8 * 1024**3, edsr) == 120  # fits: one tile
    rdn = ImplicitSR(RDN(), LIIFHead(64))
    assert auto_tile(3456, 4608, 8 * 1024**3, rdn, chunk=16384) < large  # RDN needs more per pixel
    with pytest.raises(ValueError):
        auto_tile(3456, 4608, 10**6, edsr)
    # the estimate for the chosen tile fits the budget (encoder activations + latent + the head's state)
    per_px = edsr.encoder.activation_bytes_per_pixel() + (64 + 2 * 256) * 4
    assert (large + 2 * m) ** 2 * per_px < 8 * 1024**3


@pytest.mark.parametrize("border", ["none", "replicate"])
def test_tiled_equals_untiled_for_both_borders(border):
    model = _model("edsr")
    lr = _lr(1, 23, 31)
    want = model.upscale(lr, (57, 80), border=border)
    got = upscale_tiled(model, lr, (57, 80), tile=7, border=border)
    assert (got - want).abs().max().item() <= 1e-5


def test_tiling_refused_for_unbounded_receptive_field():
    from liif_sr.inference.tiling import TilingUnsupportedError
    from liif_sr.models.encoders import SwinIR

    enc = SwinIR(embed_dim=8, depths=[1], num_heads=[1], window_size=4, out_dim=8)
    model = ImplicitSR(enc, LIIFHead(8, hidden_list=[8])).eval()
    with pytest.raises(TilingUnsupportedError, match="bounded receptive field"):
        upscale_tiled(model, _lr(1, 16, 16), (32, 32), tile=8)


def test_parse_bytes():
    assert parse_bytes("8G") == 8 * 1024**3
    assert parse_bytes("512m") == 512 * 1024**2
    assert parse_bytes("1.5GiB") == int(1.5 * 1024**3)
    assert parse_bytes("1000") == 1000
    for bad in ("", "G", "8X", "-1G", "0"):
        with pytest.raises(ValueError):
            parse_bytes(bad)


def test_upscale_budgeted_and_tensor_routing():
    from liif_sr.inference.upscale import upscale_tensor

    model = _model("rdn")
    lr = _lr(2, 40, 33)
    want = model.upscale(lr, (90, 70))
    assert torch.equal(upscale_tensor(model, lr, (90, 70)), want)
    assert (upscale_tensor(model, lr, (90, 70), tile=9) - want).abs().max() <= 1e-5
    assert (upscale_budgeted(model, lr, (90, 70), max_memory=2**40) - want).abs().max() <= 1e-5


def test_cli_tile_option(tmp_path):
    from liif_sr.checkpoints import save_weights
    from liif_sr.cli import main
    from liif_sr.data.images import read_image, write_image_atomic

    model = _model("edsr")
    ckpt = save_weights(model, tmp_path / "m.pth")
    rgb = (np.random.default_rng(0).random((29, 35, 3)) * 255).astype(np.uint8)
    write_image_atomic(tmp_path / "in.png", rgb)
    outs = {}
    for name, extra in [
        ("plain", []),
        ("tile", ["--tile", "8"]),
        ("mem", ["--max-memory", "64M", "--chunk", "512"]),
    ]:
        argv = ["upscale", str(tmp_path / "in.png"), "--scale", "2x3", "-o", str(tmp_path / f"{name}.png")]
        assert main([*argv, "-c", str(ckpt), "--device", "cpu", "-q", *extra]) == 0
        outs[name] = read_image(tmp_path / f"{name}.png").astype(int)
    assert outs["plain"].shape == (58, 105, 3)
    assert np.abs(outs["tile"] - outs["plain"]).max() <= 1  # 8-bit rounding of ≤1e-5 differences
    assert np.abs(outs["mem"] - outs["plain"]).max() <= 1
    argv = [
        "upscale",
        str(tmp_path / "in.png"),
        "--scale",
        "2",
        "-o",
        str(tmp_path / "x.png"),
        "-c",
        str(ckpt),
    ]
    assert main([*argv, "--max-memory", "lots"]) != 0
    assert main([*argv, "--tile", "-3"]) != 0


@pytest.mark.parametrize("bf16", [False, True])
def test_cpu_worker_threads_match_single_thread(bf16):
    """CPU inference decodes blocks on worker threads when torch has several threads: same result, and the
    caller's autocast reaches the workers (bf16 output differs from fp32, equals single-threaded bf16)."""
    from liif_sr.models.heads import liif as head_module

    head = _model("edsr").head
    gen = torch.Generator().manual_seed(3)
    n = 5 * head_module._CPU_BLOCK + 17  # several blocks and a partial one
    rows = torch.randn(300, 64, generator=gen)
    index = torch.randint(0, 300, (n,), generator=gen)
    extra = torch.randn(n, 4, generator=gen)

    def decode() -> torch.Tensor:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return head.decode_rows(rows, index, extra)

    one = decode()
    torch.set_num_threads(2)
    try:
        two = decode()
        assert torch.get_num_threads() == 2  # restored after the pooled section
    finally:
        torch.set_num_threads(1)
    assert one.shape == (n, 3)
    assert torch.equal(one, two)  # every block runs single-threaded ops either way
    if bf16:
        with torch.no_grad():
            assert (one - head.decode_rows(rows, index, extra)).abs().max() > 1e-4


def _swinir_model():
    from liif_sr.models.encoders import SwinIR

    torch.manual_seed(0)
    enc = SwinIR(embed_dim=8, depths=[1], num_heads=[1], window_size=4, out_dim=8)
    return ImplicitSR(enc, LIIFHead(8, hidden_list=[8])).eval()


@pytest.mark.parametrize("tile", [64, 49, 1000])
def test_swinir_tile_covering_the_image_runs_untiled(tile):
    """Issue 18 class 8: SwinIR refused any --tile, also one larger than the (padded) image."""
    from liif_sr.inference.upscale import upscale_tensor

    model, lr = _swinir_model(), _lr(1, 33, 25)  # padded with the border: 49 x 41
    want = model.upscale(lr, (66, 50))
    assert torch.equal(upscale_tensor(model, lr, (66, 50), tile=tile), want)
    assert torch.equal(upscale_tensor(model, lr, (66, 50), max_memory=4 * 1024**3), want)


def test_swinir_tile_smaller_than_the_image_is_refused_in_one_line():
    from liif_sr.inference.tiling import TilingUnsupportedError
    from liif_sr.inference.upscale import upscale_tensor

    model, lr = _swinir_model(), _lr(1, 33, 25)
    with pytest.raises(TilingUnsupportedError, match="bounded receptive field") as exc:
        upscale_tensor(model, lr, (66, 50), tile=16)
    assert "\n" not in str(exc.value)
    with pytest.raises(TilingUnsupportedError, match="swinir encoder cannot be tiled: raise --max-memory"):
        upscale_tensor(model, lr, (66, 50), max_memory=600_000, chunk=64)


def test_swinir_cli_tile_and_max_memory(tmp_path, capsys):
    """``liif-sr upscale`` with SwinIR on a 45x33 image: a large --tile or --max-memory 4G runs untiled."""
    from liif_sr.checkpoints import save_weights
    from liif_sr.cli import main
    from liif_sr.data.images import write_image_atomic

    ckpt = save_weights(_swinir_model(), tmp_path / "swin.safetensors")
    src = tmp_path / "a.png"
    write_image_atomic(src, (torch.rand(45, 33, 3) * 255).to(torch.uint8).numpy())
    outs = {}
    for name, extra in (("plain", []), ("tile", ["--tile", "256"]), ("mem", ["--max-memory", "4G"])):
        out = tmp_path / f"{name}.png"
        code = main(["upscale", str(src), "--scale", "2", "-o", str(out), "-c", str(ckpt), "-q", *extra])
        assert code == 0, capsys.readouterr().err
        outs[name] = out.read_bytes()
    assert outs["tile"] == outs["plain"] == outs["mem"]


@pytest.mark.parametrize(("hw", "padded"), [((1, 300), (3, 316)), ((3, 5), (9, 15)), ((8, 9), (24, 25))])
def test_thin_inputs_get_a_border_of_at_most_their_size(hw, padded):
    """Issue 18 class 8: a 1 x 60000 strip was encoded as 17 rows (57 s); the border per axis is at most
    the image's size there, so it is 3 rows; images of 8+ pixels per axis keep the full 8-pixel border."""
    model = _model("edsr")
    x, frame = model.inference_input(_lr(1, *hw), border="replicate")
    assert tuple(x.shape[-2:]) == padded == frame.padded
    assert (frame.top, frame.left) == (min(8, hw[0]), min(8, hw[1]))
    lr = _lr(1, *hw)
    want = model.upscale(lr, (2 * hw[0], 2 * hw[1]))
    got = upscale_tiled(model, lr, (2 * hw[0], 2 * hw[1]), tile=3)
    assert (got - want).abs().max().item() <= 1e-5  # tiled = untiled with the thin border too


def test_metasr_x6_tiled_differs_from_untiled_only_by_float_rounding():
    """Issue 18: MetaSR x6 with --tile differed by one level in 13 of 2.2M values while the README said
    "exact". Tiles sum in another order: the floats agree to ~1e-6 and an 8-bit value lying at a rounding
    boundary may come out one level apart — never more, and rarely (README and tiling.py say so)."""
    from liif_sr.data.images import tensor_to_uint8
    from liif_sr.models.build import build_model

    torch.manual_seed(0)
    enc = {"name": "edsr_baseline", "args": {"n_resblocks": 1, "n_feats": 16}}
    model = build_model({"encoder": enc, "head": {"name": "metasr"}}).eval()
    lr = (torch.rand(1, 3, 45, 35) * 255).round() / 255
    with torch.no_grad():
        want, got = model.upscale(lr, (270, 210)), upscale_tiled(model, lr, (270, 210), tile=16)
    assert (got - want).abs().max().item() <= 1e-5
    levels = np.abs(tensor_to_uint8(got[0]).astype(int) - tensor_to_uint8(want[0]).astype(int))
    assert levels.max() <= 1 and (levels > 0).mean() < 1e-3
