"""The fast training path: model.speed options, compile fallback, bf16 autocast in the head, device sampler."""

from __future__ import annotations

import logging
import math

import pytest
import torch
from torch import nn

from liif_sr.models import EDSRBaseline, ImplicitSR, LIIFHead
from liif_sr.training.speed import CompiledOrEager, SpeedOptions

TINY = [
    "data.repeat=2",
    "data.batch_size=2",
    "data.inp_size=16",
    "data.sample_q=64",
    "data.train_sources=[skimage:astronaut,skimage:rocket]",
    "data.val_sources=[]",
    "model.encoder.n_resblocks=1",
    "model.encoder.n_feats=8",
    "model.head.hidden_list=[16,16]",
    "trainer.accelerator=cpu",
    "trainer.max_epochs=1",
    "callbacks.progress_bar=null",
    "callbacks.quickstart_report=null",
]


def _net(mode: str = "fast") -> ImplicitSR:
    torch.manual_seed(0)
    return ImplicitSR(
        EDSRBaseline(n_resblocks=1, n_feats=8),
        LIIFHead(in_channels=8, hidden_list=[16, 16], fast=mode == "fast"),
    )


def _batch(b: int = 2, q: int = 50) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return (
        torch.rand(b, 3, 12, 12, generator=gen),
        torch.rand(b, q, 2, generator=gen) * 2 - 1,
        torch.full((b, q, 2), 2 / 30),
    )


def test_fast_options_from_config():
    assert SpeedOptions.from_config(None) == SpeedOptions()
    opts = SpeedOptions.from_config({"channels_last": True, "compile": True, "compile_mode": "default"})
    assert opts.channels_last and opts.compile and opts.compile_mode is None
    with pytest.raises(ValueError, match="unknown option"):
        SpeedOptions.from_config({"compiled": True})


def _failing_compiler(module, **kwargs):
    def run(*args, **kw):
        raise RuntimeError("backend exploded\nsecond line")

    return run


class _BadBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        raise RuntimeError("backward compilation failed")


def _failing_backward_compiler(module, **kwargs):
    return lambda *args: _BadBackward.apply(module(*args))


@pytest.mark.parametrize("compiler", [_failing_compiler, _failing_backward_compiler])
def test_compile_failure_falls_back_to_eager(caplog, compiler):
    net = _net()
    runner = CompiledOrEager(net, "tiny", compiler=compiler)
    with caplog.at_level(logging.WARNING, logger="liif_sr.training.speed"):
        out = runner(*_batch())
    assert not runner.active
    assert "continuing in eager mode" in caplog.text
    assert torch.equal(out, net(*_batch()))
    out.sum().backward()  # the eager graph trains
    assert net.encoder.head[0].weight.grad is not None


def test_compile_constructor_failure_falls_back(caplog):
    def broken(module, **kwargs):
        raise RuntimeError("torch.compile is not supported")

    runner = CompiledOrEager(_net(), compiler=broken)
    assert not runner.active and runner(*_batch()).shape == (2, 50, 3)


def test_working_compiler_is_used_after_probe():
    calls = []

    def counting(module, **kwargs):
        def run(*args):
            calls.append(1)
            return module(*args)

        return run

    net = _net()
    runner = CompiledOrEager(net, compiler=counting)
    for _ in range(3):
        runner(*_batch())
    assert runner.active and len(calls) == 4  # probe + real call, then one per call


def test_fast_head_under_bf16_autocast():
    """Gather and MLP in bf16, coordinates / areas / blend in fp32; close to the fp32 result."""
    net = _net("fast")
    lr, coord, cell = _batch(q=300)
    net.requires_grad_(False)
    ref = net(lr, coord, cell)
    seen = []
    hooks = [m.register_forward_hook(lambda m, i, o: seen.append(i[0].dtype)) for m in net.head.mlp.layers]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(lr, coord, cell)
    for h in hooks:
        h.remove()
    assert seen and all(d == torch.bfloat16 for d in seen)
    assert out.dtype == torch.float32
    assert float((out - ref).norm() / ref.norm()) < 2e-2


def test_training_step_has_no_host_sync(monkeypatch):
    """No .item()/.tolist()/bool() of a tensor in the step (each one is a host-device sync on CUDA)."""
    from liif_sr.training.module import SRTrainingModule

    module = SRTrainingModule(
        EDSRBaseline(n_resblocks=1, n_feats=8),
        lambda in_channels: LIIFHead(in_channels=in_channels, hidden_list=[16, 16]),
        optimizer=lambda params: torch.optim.Adam(params),
        speed={"channels_last": True},
    )
    lr, coord, cell = _batch()
    batch = {"inp": lr, "coord": coord, "cell": cell, "gt": torch.rand(2, 50, 3)}

    def sync(*args, **kwargs):
        raise AssertionError("host-device sync in training_step")

    for name in ("item", "tolist", "__bool__", "__int__", "__float__"):
        monkeypatch.setattr(torch.Tensor, name, sync)
    # self.log of a tensor defers any transfer to Lightning's logger connector, outside the step
    monkeypatch.setattr(module, "log", lambda *args, **kwargs: None)
    loss = module.training_step(batch, 0)
    monkeypatch.undo()
    assert math.isfinite(loss.item())
    conv = module.net.encoder.head[0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last)


def test_fit_with_device_sampler_bf16_channels_last(run_train):
    """The whole fast configuration (minus compile) through Lightning on the CPU."""
    cfg, (metrics, objs) = run_train(
        *TINY, "data.sampler=device", "trainer.precision=bf16-mixed", "model.speed.channels_last=true"
    )
    assert objs["trainer"].global_step == 2 and math.isfinite(metrics["train/loss"])
    sampler = objs["datamodule"].device_sampler
    assert sampler is not None and sampler.device.type == "cpu" and len(sampler) == 2
    assert objs["model"].hparams.speed["channels_last"] is True


@pytest.mark.slow
def test_fit_with_compile(run_train):
    """torch.compile on the CPU (inductor needs a C++ compiler; else the eager fallback): ~1-2 min."""
    cfg, (metrics, objs) = run_train(*TINY, "model.speed.compile=true", "model.speed.channels_last=true")
    assert objs["trainer"].global_step == 2 and math.isfinite(metrics["train/loss"])
    runner = objs["model"]._compiled_net
    assert runner is not None and (runner.verified or not runner.active)  # compiled, or eager after a warning


def test_gpu_speed_trainer_config(compose_train):
    cfg = compose_train("experiment=edsr_baseline_liif", "trainer=gpu_speed", "data.sampler=device")
    assert cfg.trainer.precision == "bf16-mixed" and cfg.trainer.benchmark is True
    assert cfg.trainer.accelerator == "gpu" and cfg.data.sampler == "device"
    assert dict(cfg.model.speed) == {
        "channels_last": True,  # the exact defaults (fp32 step equal to the official one)
        "fused_adam": True,
        "reuse_host_memory": True,
        "compile": False,
        "compile_mode": None,
    }


def test_unused_module_is_not_registered():
    """The compiled wrapper adds no state-dict keys."""
    from liif_sr.training.module import SRTrainingModule

    module = SRTrainingModule(
        EDSRBaseline(n_resblocks=1, n_feats=8),
        lambda in_channels: LIIFHead(in_channels=in_channels, hidden_list=[16, 16]),
        optimizer=lambda params: torch.optim.Adam(params),
        speed={"compile": True},
    )
    keys = set(module.state_dict())
    module._compiled_net = CompiledOrEager(module.net, compiler=lambda m, **kw: m)
    assert set(module.state_dict()) == keys and not isinstance(module._compiled_net, nn.Module)


def test_bench_train_is_import_light():
    """scripts/bench_train.py must run on a GPU box without Lightning or Hydra."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    code = (
        "import sys; sys.path.insert(0, 'scripts'); import bench_train; "
        "bad = sorted({m.split('.')[0] for m in sys.modules} & {'lightning', 'hydra', 'omegaconf'}); "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], cwd=root, check=True)


def test_bench_train_smoke_and_markdown(tmp_path, monkeypatch):
    import sys
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2] / "scripts"))
    import bench_train

    md = tmp_path / "BENCHMARKS.md"
    md.write_text("# Benchmarks\n\n## Inference\n\ninference table\n")
    args = ["--models", "edsr-small", "--device", "cpu", "--batch", "2", "--inp", "16", "--q", "64"]
    args += ["--steps", "1", "--warmup", "0", "--workers", "0", "--data-batches", "2", "--markdown", str(md)]
    assert bench_train.main(args) == 0
    text = md.read_text()
    assert "## Inference\n\ninference table" in text and text.count("## Training") == 1
    assert "| EDSR-small-LIIF | fp32 ref" in text and "| device sampler | cpu |" in text
    device = next(line for line in text.splitlines() if line.startswith("### CPU"))
    # a later run on the same device replaces its subsection; another device's is added after it
    bench_train.update_markdown(md, f"{device}\n\nrerun\n", bench_train.PREAMBLE)
    bench_train.update_markdown(md, "### NVIDIA H100\n\ngpu table\n", bench_train.PREAMBLE)
    text = md.read_text()
    assert text.count("## Training") == 1 and text.count(device) == 1 and "| EDSR-small-LIIF |" not in text
    assert text.index("rerun") < text.index("### NVIDIA H100") and "inference table" in text
    del sys.modules["bench_train"]


def test_datamodule_device_sampler_batches_and_resume_state():
    from liif_sr.data.datamodule import RandomScaleDataModule

    kw = {
        "train_sources": ["skimage:astronaut", "skimage:rocket"],
        "inp_size": 16,
        "sample_q": 64,
        "batch_size": 2,
        "sampler": "device",
    }
    dm = RandomScaleDataModule(**kw)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert set(batch) == {"index"} and batch["index"].shape == (2,)
    assert dm.on_after_batch_transfer({"lr": 1}, 0) == {"lr": 1}  # validation batches pass through
    first = dm.on_after_batch_transfer(batch, 0)
    assert first["inp"].shape == (2, 3, 16, 16) and first["gt"].shape == (2, 64, 3)
    state = dm.state_dict()
    want = dm.on_after_batch_transfer(batch, 0)
    resumed = RandomScaleDataModule(**kw)
    resumed.setup("fit")
    resumed.load_state_dict(state)  # before the sampler exists, as on resume
    got = resumed.on_after_batch_transfer(batch, 0)
    assert all(torch.equal(want[k], got[k]) for k in want)
    with pytest.raises(ValueError, match="sampler"):
        RandomScaleDataModule(sampler="gpu")


# ------------------------------------------------------------------ the default CPU step is the official step
def _official_and_default(steps: int = 4):
    """Train the official step (reference head, contiguous layout, plain Adam) and the default training
    module (fast head, ``model.speed`` defaults: channels_last, fused Adam, host-memory reuse) from the same
    weights on the same batches; return both loss curves and parameter lists."""
    from functools import partial

    from liif_sr.training.module import SRTrainingModule

    def encoder():
        return EDSRBaseline(n_resblocks=2, n_feats=16)

    torch.manual_seed(0)
    official = ImplicitSR(encoder(), LIIFHead(in_channels=16, hidden_list=[32, 32], fast=False))
    ours = SRTrainingModule(
        encoder(),
        partial(LIIFHead, hidden_list=[32, 32]),
        optimizer=partial(torch.optim.Adam, lr=1e-4),
    )
    ours.net.load_state_dict(official.state_dict())
    opt_official = torch.optim.Adam(official.parameters(), lr=1e-4)
    opt_ours = ours.configure_optimizers()
    gen = torch.Generator().manual_seed(3)
    curves: dict[str, list[float]] = {"official": [], "ours": []}
    for _ in range(steps):
        b, q, h = 3, 96, 12
        inp = torch.rand(b, 3, h, h, generator=gen)
        coord = torch.rand(b, q, 2, generator=gen) * 2 - 1
        cell = torch.full((b, q, 2), 2 / (h * 2.5))
        gt = (torch.rand(b, q, 3, generator=gen) - 0.5) / 0.5
        for name, forward, opt in (
            ("official", official, opt_official),
            ("ours", ours.training_forward, opt_ours),
        ):
            loss = torch.nn.functional.l1_loss(forward(inp, coord, cell), gt)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            curves[name].append(loss.item())
    return curves, list(official.parameters()), list(ours.net.parameters()), opt_ours


def test_default_training_step_equals_official_step():
    torch.manual_seed(0)
    initial = [p.detach().clone() for p in _official_and_default(steps=0)[1]]
    curves, p_official, p_ours, opt = _official_and_default(steps=4)
    assert opt.defaults.get("fused") is True  # the default path really is the fused one
    assert p_ours[0].is_contiguous(memory_format=torch.channels_last)  # ... and the NHWC encoder
    for a, b in zip(curves["official"], curves["ours"]):
        assert b == pytest.approx(a, rel=1e-6)  # equal to fp32 rounding
    moved = max(float((p.detach() - p0).abs().max()) for p, p0 in zip(p_official, initial))
    assert moved > 1e-4  # 4 Adam steps of lr 1e-4 moved the weights (the comparison is not vacuous)
    for a, b in zip(p_official, p_ours, strict=True):
        torch.testing.assert_close(b, a, rtol=0, atol=2e-6)  # Adam's step is ~lr: rounding only


def test_default_speed_options():
    opts = SpeedOptions.from_config({})
    assert opts.channels_last and opts.fused_adam and opts.reuse_host_memory and not opts.compile


def test_build_optimizer_fuses_only_open_adam():
    from functools import partial

    from liif_sr.training.speed import build_optimizer

    params = [nn.Parameter(torch.zeros(3))]
    assert build_optimizer(partial(torch.optim.Adam, lr=1e-4), params).defaults["fused"] is True
    assert build_optimizer(partial(torch.optim.AdamW, lr=1e-4), params).defaults["fused"] is True
    assert not build_optimizer(partial(torch.optim.Adam, lr=1e-4), params, fused_adam=False).defaults["fused"]
    kept = build_optimizer(partial(torch.optim.Adam, lr=1e-4, foreach=False), params)
    assert not kept.defaults["fused"] and kept.defaults["foreach"] is False  # the config's choice stays
    assert isinstance(build_optimizer(partial(torch.optim.SGD, lr=0.1), params), torch.optim.SGD)
    assert isinstance(build_optimizer(lambda params: torch.optim.Adam(params), params), torch.optim.Adam)


def test_reuse_host_memory_keeps_results():
    import platform
    import sys

    from liif_sr.training.speed import reuse_host_memory

    glibc = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    assert reuse_host_memory() is glibc
    x = torch.randn(4096, 4096)  # a block above glibc's mmap threshold, now from the heap
    assert float((x * 2 - x - x).abs().max()) == 0.0
