"""``precision="auto"`` (issue 21): the hardware rule, the one place it acts (every head), and who keeps fp32."""

from __future__ import annotations

import pytest
import torch

from liif_sr.errors import InvalidArgumentError
from liif_sr.models import EDSRBaseline, ImplicitSR
from liif_sr.models import precision as prec
from liif_sr.models.precision import PrecisionPlan, native_bf16, resolve_precision
from liif_sr.models.registry import HEADS
from liif_sr.models.upscale_options import UpscaleOptions

CPU = torch.device("cpu")


@pytest.fixture
def detect(monkeypatch):
    """Hardware detection as on a real machine (the suite's LIIF_SR_NATIVE_BF16=0 removed), flags given."""
    monkeypatch.delenv(prec.ENV_NATIVE_BF16, raising=False)

    def with_flags(*flags: str) -> None:
        monkeypatch.setattr(prec, "_cpu_flags", lambda: frozenset(flags))

    return with_flags


@pytest.mark.parametrize(
    ("flags", "native"),
    [
        (("avx512f", "avx512_bf16"), True),
        (("amx_bf16", "amx_tile"), True),
        (("avx512f", "avx2"), False),  # AVX-512 without BF16: bf16 would be emulated (slower)
        ((), False),  # no /proc/cpuinfo (macOS, Windows)
    ],
)
def test_cpu_detection(detect, flags, native):
    detect(*flags)
    assert native_bf16(CPU)[0] is native
    assert resolve_precision("auto", CPU)[0] == ("bf16-decode" if native else "fp32")


def test_cpuinfo_flags_parsed(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: X\nflags\t\t: fpu avx512f avx512_bf16\n\nprocessor\t: 1\n")
    assert {"avx512_bf16", "avx512f"} <= prec._cpu_flags.__wrapped__(str(info))
    assert prec._cpu_flags.__wrapped__(str(tmp_path / "absent")) == frozenset()


@pytest.mark.parametrize(
    ("cap", "native"), [((8, 0), True), ((9, 0), True), ((7, 5), False), ((6, 1), False)]
)
def test_cuda_detection(detect, monkeypatch, cap, native):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: cap)
    assert native_bf16(torch.device("cuda", 0))[0] is native
    assert native_bf16(torch.device("mps"))[0] is False


@pytest.mark.parametrize(("value", "resolved"), [("0", "fp32"), ("1", "bf16-decode")])
def test_env_override(monkeypatch, value, resolved):
    monkeypatch.setenv(prec.ENV_NATIVE_BF16, value)
    assert resolve_precision("auto", CPU) == (resolved, f"auto: {prec.ENV_NATIVE_BF16}={value}")


@pytest.mark.parametrize("value", ["yes", "", "2"])
def test_env_override_refused(monkeypatch, value):
    monkeypatch.setenv(prec.ENV_NATIVE_BF16, value)
    with pytest.raises(InvalidArgumentError, match="LIIF_SR_NATIVE_BF16 must be 0 or 1"):
        resolve_precision("auto", CPU)


@pytest.mark.parametrize("value", ["fp32", "bf16-decode", "bf16"])
def test_explicit_values_kept(detect, value):
    detect("avx512_bf16")
    assert resolve_precision(value, CPU) == (value, "as asked")


@pytest.mark.parametrize("value", ["fp8", "BF16", "half", None, 16])
def test_bad_values_refused(value):
    with pytest.raises(InvalidArgumentError, match="precision must be one of auto, fp32"):
        UpscaleOptions.create(precision=value)


def test_plans():
    assert PrecisionPlan.of("fp32", CPU) == PrecisionPlan(None, None, "cpu")
    assert PrecisionPlan.of("bf16-decode", CPU) == PrecisionPlan(None, torch.bfloat16, "cpu")
    assert PrecisionPlan.of("bf16", CPU) == PrecisionPlan(torch.bfloat16, torch.bfloat16, "cpu")
    with pytest.raises(InvalidArgumentError, match="fp16 needs a CUDA device"):
        PrecisionPlan.of("fp16", CPU)


def _tiny(head_name: str) -> ImplicitSR:
    torch.manual_seed(0)
    return ImplicitSR(EDSRBaseline(n_resblocks=1, n_feats=8), HEADS[head_name](in_channels=8)).eval()


def _record(model: ImplicitSR, monkeypatch) -> dict[str, set]:
    """Whether autocast (and its dtype) was on in each part: encoder, head.prepare, head.decode."""
    seen: dict[str, set] = {"encoder": set(), "prepare": set(), "decode": set()}

    def state() -> tuple[bool, torch.dtype | None]:
        on = torch.is_autocast_enabled("cpu")
        return on, torch.get_autocast_dtype("cpu") if on else None

    def wrap(obj, attr: str, key: str) -> None:
        original = getattr(obj, attr)

        def wrapper(*a, **k):
            seen[key].add(state())
            return original(*a, **k)

        monkeypatch.setattr(obj, attr, wrapper)

    wrap(model.encoder, "forward", "encoder")
    wrap(model.head, "prepare", "prepare")
    wrap(model.head, "decode", "decode")
    return seen


FP32, BF16 = {(False, None)}, {(True, torch.bfloat16)}


@pytest.mark.parametrize("head", sorted(HEADS))  # every registered head: a new head gets the rule
@pytest.mark.parametrize(
    ("precision", "native", "parts"),
    [
        ("auto", "1", (FP32, FP32, BF16)),
        ("auto", "0", (FP32, FP32, FP32)),
        ("bf16-decode", "0", (FP32, FP32, BF16)),
        ("fp32", "1", (FP32, FP32, FP32)),
        ("bf16", "0", (BF16, BF16, BF16)),
    ],
)
def test_rule_acts_in_the_render_loop(monkeypatch, head, precision, native, parts):
    """The one render loop runs the encoder and ``prepare`` in fp32 and only ``decode`` in bf16 for
    ``bf16-decode`` (what ``auto`` picks on native bf16): :meth:`ImplicitSR.upscale` and the road agree."""
    from liif_sr.inference.upscale import upscale_tensor

    monkeypatch.setenv(prec.ENV_NATIVE_BF16, native)
    model = _tiny(head)
    if precision == "auto" and not model.head.auto_bf16:  # a head measured over the bound keeps fp32
        parts = (FP32, FP32, FP32)
    seen = _record(model, monkeypatch)
    lr = torch.rand(1, 3, 12, 10)
    out = model.upscale(lr, (30, 25), precision=precision, chunk=300)
    assert out.dtype == torch.float32 and out.shape == (1, 3, 30, 25)
    assert (seen["encoder"], seen["prepare"], seen["decode"]) == parts
    road = upscale_tensor(model, lr, (30, 25), precision=precision, chunk=300)
    torch.testing.assert_close(road, out, atol=0, rtol=0)


@pytest.mark.parametrize("head", sorted(HEADS))
def test_rule_acts_on_tiles(monkeypatch, head):
    """The tiled producer (a ``prepare`` per LR tile) gets the same rule."""
    from liif_sr.inference.upscale import upscale_tensor

    monkeypatch.setenv(prec.ENV_NATIVE_BF16, "1")
    from liif_sr.inference.tiling import TilingUnsupportedError, untileable

    model = _tiny(head)
    if (
        untileable(model) is not None
    ):  # a non-local head (LM-CiaoSR) is never tiled: refused, not approximated
        with pytest.raises(TilingUnsupportedError):
            upscale_tensor(model, torch.rand(1, 3, 40, 36), (60, 54), tile=16, chunk=500)
        return
    seen = _record(model, monkeypatch)
    out = upscale_tensor(model, torch.rand(1, 3, 40, 36), (60, 54), tile=16, chunk=500)
    assert out.shape == (1, 3, 60, 54)
    decode = BF16 if model.head.auto_bf16 else FP32
    assert (seen["encoder"], seen["prepare"], seen["decode"]) == (FP32, FP32, decode)


def test_head_opt_out(monkeypatch):
    """A head whose bf16 decode was measured over the bound (``auto_bf16 = False``: MetaSR) keeps fp32 under
    ``auto``, says why, and still runs ``bf16-decode`` when asked; every other shipped head gets the rule."""
    from liif_sr.models.heads.metasr import MetaSRHead

    assert MetaSRHead.auto_bf16 is False
    assert all(HEADS[name].auto_bf16 for name in ("liif", "lte"))
    # measured, not assumed: only the heads whose bf16 decode was measured within the bound opt in
    assert {name for name, cls in HEADS.items() if cls.auto_bf16} == {"liif", "lte"}
    monkeypatch.setenv(prec.ENV_NATIVE_BF16, "1")
    model = _tiny("metasr")
    assert model.resolve_precision() == "fp32"
    assert "metasr head keeps fp32" in prec.precision_note("auto", CPU, model.head)
    assert model.resolve_precision("bf16-decode") == "bf16-decode"
    seen = _record(model, monkeypatch)
    model.upscale(torch.rand(1, 3, 8, 8), (16, 16))
    assert seen["decode"] == FP32


def test_fp32_unchanged_and_auto_close(monkeypatch):
    """``fp32`` is exact (the same as auto on a machine without bf16); ``bf16-decode`` stays close."""
    model = _tiny("liif")
    lr = torch.rand(1, 3, 12, 12)
    monkeypatch.setenv(prec.ENV_NATIVE_BF16, "0")
    auto_off = model.upscale(lr, (40, 40))
    fp32 = model.upscale(lr, (40, 40), precision="fp32")
    assert torch.equal(auto_off, fp32)
    monkeypatch.setenv(prec.ENV_NATIVE_BF16, "1")
    auto_on = model.upscale(lr, (40, 40))
    assert model.resolve_precision() == "bf16-decode" and model.resolve_precision("fp32") == "fp32"
    assert not torch.equal(auto_on, fp32)  # bf16 really ran
    torch.testing.assert_close(auto_on, fp32, atol=0.02, rtol=0)


def test_fp16_on_cpu_refused_by_the_api():
    with pytest.raises(InvalidArgumentError, match="fp16 needs a CUDA device"):
        _tiny("liif").upscale(torch.rand(1, 3, 8, 8), (16, 16), precision="fp16")


@pytest.mark.parametrize(
    ("args", "native", "shown"),
    [
        ((), "1", "precision bf16-decode (auto: LIIF_SR_NATIVE_BF16=1)"),
        ((), "0", "precision fp32 (auto: LIIF_SR_NATIVE_BF16=0)"),
        (("--precision", "fp32"), "1", "precision fp32)"),
        (("--precision", "bf16-decode"), "0", "precision bf16-decode)"),
    ],
)
def test_cli_summary_says_what_ran(tmp_path, capsys, monkeypatch, args, native, shown):
    import numpy as np
    from PIL import Image

    from liif_sr.checkpoints import save_weights
    from liif_sr.cli import main

    monkeypatch.setenv(prec.ENV_NATIVE_BF16, native)
    ckpt = save_weights(_tiny("liif"), tmp_path / "tiny.safetensors")
    Image.fromarray(np.full((12, 10, 3), 90, np.uint8)).save(tmp_path / "in.png")
    code = main(
        [
            "upscale",
            str(tmp_path / "in.png"),
            "--scale",
            "2",
            "-o",
            str(tmp_path / "o.png"),
            "-c",
            str(ckpt),
            "-q",
            *args,
        ]
    )
    err = capsys.readouterr().err
    assert code == 0, err
    assert shown in err.splitlines()[-1], err


def test_cli_fp16_on_cpu_refused_before_any_file(tmp_path, capsys):
    import numpy as np
    from PIL import Image

    from liif_sr.checkpoints import save_weights
    from liif_sr.cli import main

    ckpt = save_weights(_tiny("liif"), tmp_path / "tiny.safetensors")
    Image.fromarray(np.full((8, 8, 3), 90, np.uint8)).save(tmp_path / "in.png")
    out = tmp_path / "o.png"
    code = main(
        [
            "upscale",
            str(tmp_path / "in.png"),
            "--scale",
            "2",
            "-o",
            str(out),
            "-c",
            str(ckpt),
            "--device",
            "cpu",
            "--precision",
            "fp16",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "fp16 needs a CUDA device" in err[0], err
    assert not out.exists()
