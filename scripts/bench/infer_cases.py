"""``bench_infer.py``: the benchmark cases and models (paper sizes, and the ``--tiny`` ones), building a model,
timing a call on a device."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from liif_sr.models.build import build_model
from liif_sr.models.implicit_sr import ImplicitSR

PLAIN_CHUNK = 30000  # the official eval_bsize
FAST_CHUNK = 65536


@dataclass(frozen=True)
class Case:
    name: str
    lr: tuple[int, int]
    out: tuple[int, int]
    batched: bool = False  # uses --batch images
    large: bool = False  # GPU only, tiled, no plain path


CASES = {
    "100-800": Case("100² → 800² (×8)", (100, 100), (800, 800), batched=True),
    "256x4": Case("256² → 1024² (×4)", (256, 256), (1024, 1024)),
    "512-4096": Case("512² → 4096² (×8)", (512, 512), (4096, 4096)),
    "tiny": Case("24² → 48² (×2)", (24, 24), (48, 48)),  # smoke test (tests/scripts/test_bench_infer.py)
    "large": Case("3456×4608 → 6912×9216 (×2, tiled)", (3456, 4608), (6912, 9216), large=True),
}


def _config(encoder: str, head: str, **encoder_args: int) -> dict:
    return {"encoder": {"name": encoder, "args": encoder_args}, "head": {"name": head}}


#: key → (row label, model config at the registry defaults = the paper sizes)
MODELS = {
    "edsr": ("EDSR-baseline-LIIF", _config("edsr_baseline", "liif")),
    "rdn": ("RDN-LIIF", _config("rdn", "liif")),
    "lte": ("EDSR-baseline-LTE", _config("edsr_baseline", "lte")),
    "metasr": ("EDSR-baseline-MetaSR", _config("edsr_baseline", "metasr")),
    "swinir": ("SwinIR-LIIF", _config("swinir", "liif")),
    "lmliif": ("EDSR-baseline-LM-LIIF", _config("edsr_baseline", "lmliif")),
    "lmlte": ("EDSR-baseline-LM-LTE", _config("edsr_baseline", "lmlte")),
    "lmciaosr": ("EDSR-baseline-LM-CiaoSR", _config("edsr_baseline", "lmciaosr")),
}
#: --tiny: reduced models (same code paths) and every case divided by TINY_DIV
TINY_MODELS = {
    "edsr": ("EDSR-small-LIIF", _config("edsr_baseline", "liif", n_resblocks=2, n_feats=16)),
    "rdn": ("RDN-small-LIIF", _config("rdn", "liif", G0=16, D=2, C=2, G=8)),
}
TINY_SIZES = {  # (LR, output) per case
    "100-800": ((12, 12), (96, 96)),
    "256x4": ((16, 16), (64, 64)),
    "512-4096": ((16, 16), (128, 128)),
    "large": ((36, 48), (72, 96)),
}


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    threads = torch.get_num_threads()
    return f"{model}, {os.cpu_count()} cores, {threads} torch thread{'s' if threads != 1 else ''}"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(fn: Callable[[], torch.Tensor], device: torch.device, repeats: int, warmup: bool):
    """Median wall seconds, median process CPU seconds, peak memory bytes (CUDA) or None, last output."""
    if warmup:
        fn()
        sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    walls, cpus, out = [], [], None
    for _ in range(repeats):
        del out
        sync(device)
        c0, t0 = time.process_time(), time.perf_counter()
        out = fn()
        sync(device)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    return statistics.median(walls), statistics.median(cpus), peak, out


def fmt_bytes(n: float | None) -> str:
    if n is None:
        return "–"
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def build(model_key: str, device: torch.device) -> ImplicitSR:
    """One model for both paths: ``head.fast`` is switched per path (same weights)."""
    torch.manual_seed(0)
    return build_model(MODELS[model_key][1]).to(device).eval()


def tiny_case(key: str) -> Case:
    """The ``--tiny`` stand-in of a case: a few hundred to a few thousand output pixels, same kind."""
    case = CASES[key]
    lr, out = TINY_SIZES[key]
    return Case(
        f"{case.name} --tiny ({lr[0]}×{lr[1]} → {out[0]}×{out[1]})", lr, out, case.batched, case.large
    )
