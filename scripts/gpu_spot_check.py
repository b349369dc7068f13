"""GPU spot check, run once on an H200 right after training the shipped model (see BENCHMARKS.md).

Times the fast (fp32, bf16) and plain (fp32) upscale paths of a checkpoint in the same run and prints its
Set5 Y-PSNR at x2/x3/x4 (LR made with MATLAB bicubic). The full benchmark is ``scripts/bench_infer.py``.

Usage: PYTHONPATH=src python3 scripts/gpu_spot_check.py CKPT [SET5_HR_DIR]   (CUDA only)
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from liif_sr import load_model
from liif_sr.data.make_lr import mod_crop
from liif_sr.data.resize import imresize_matlab_uint8
from liif_sr.metrics.sr import psnr_protocol


def timed(fn: Callable[[], object], n: int = 5) -> float:
    fn()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / n


def main() -> None:
    torch.backends.cuda.matmul.allow_tf32 = False
    model = load_model(sys.argv[1], device="cuda")
    set5 = Path(sys.argv[2] if len(sys.argv) > 2 else ".gpu/data/Set5")
    for h, big, batch in [(100, 800, 16), (512, 4096, 1)]:
        lr = torch.rand(batch, 3, h, h, device="cuda")
        for prec in ("fp32", "bf16"):
            ctx = torch.autocast("cuda", torch.bfloat16) if prec == "bf16" else contextlib.nullcontext()

            def run(lr: torch.Tensor = lr, big: int = big, ctx: object = ctx) -> None:
                with torch.no_grad(), ctx:
                    model.upscale(lr, (big, big), chunk=1 << 20)

            torch.cuda.reset_peak_memory_stats()
            ms = timed(run) / batch * 1000
            peak = torch.cuda.max_memory_allocated() / 2**30
            print(f"fast {prec} {h}->{big} batch {batch}: {ms:.2f} ms/image, peak {peak:.2f} GiB", flush=True)
    model.head.fast = False  # the reference path
    lr = torch.rand(16, 3, 100, 100, device="cuda")

    def plain() -> None:
        with torch.no_grad():
            model.upscale(lr, (800, 800), chunk=30000)

    print(f"plain fp32 100->800 batch 16: {timed(plain, 2) / 16 * 1000:.2f} ms/image", flush=True)
    model.head.fast = True
    for s in (2, 3, 4):
        vals = []
        for path in sorted(set5.glob("*.png")):
            hr = torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1)
            hr = mod_crop(hr, s)
            hh, ww = hr.shape[1:]
            lr8 = imresize_matlab_uint8(hr, size=(hh // s, ww // s))
            with torch.no_grad():
                sr = model.upscale(lr8.float().cuda()[None] / 255, (hh, ww), border="none").cpu()
            vals.append(float(psnr_protocol(sr, hr.float()[None] / 255, "benchmark", s)[0]))
        print(f"Set5 x{s} Y-PSNR {np.mean(vals):.3f}", flush=True)


if __name__ == "__main__":
    main()
