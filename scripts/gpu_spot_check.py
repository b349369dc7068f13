"""GPU spot check run once on an H200 after training the shipped model (see BENCHMARKS.md):
fast/plain upscale timings of a checkpoint and its Set5 Y-PSNR. Usage: PYTHONPATH=src python3 scripts/gpu_spot_check.py CKPT
(expects Set5 HR PNGs in .gpu/data/Set5). The full benchmark is scripts/bench_infer.py."""
import time, torch, sys
sys.path.insert(0, "src")
from liif_sr import load_model
torch.backends.cuda.matmul.allow_tf32 = False
m = load_model(sys.argv[1], device="cuda")
def t(fn, n=5):
    fn(); torch.cuda.synchronize(); s = time.perf_counter()
    for _ in range(n): fn()
    torch.cuda.synchronize(); return (time.perf_counter() - s) / n
for (h, H, B) in [(100, 800, 16), (512, 4096, 1)]:
    lr = torch.rand(B, 3, h, h, device="cuda")
    for prec in ["fp32", "bf16"]:
        ctx = torch.autocast("cuda", torch.bfloat16) if prec == "bf16" else torch.autocast("cuda", enabled=False)
        def f():
            with torch.no_grad(), ctx:
                m.upscale(lr, (H, H), chunk=1 << 20)
        torch.cuda.reset_peak_memory_stats()
        dt = t(f)
        print(f"fast {prec} {h}->{H} batch {B}: {dt / B * 1000:.2f} ms/image, peak {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB", flush=True)
m.head.mode = "plain"
lr = torch.rand(16, 3, 100, 100, device="cuda")
def g():
    with torch.no_grad():
        m.upscale(lr, (800, 800), chunk=30000)
print(f"plain fp32 100->800 batch 16: {t(g, 2) / 16 * 1000:.2f} ms/image", flush=True)
from pathlib import Path
import numpy as np
from PIL import Image
from liif_sr.data.resize import imresize_matlab_uint8
from liif_sr.metrics.sr import psnr
m.head.mode = "fast"
for s in (2, 3, 4):
    vals = []
    for p in sorted(Path(".gpu/data/Set5").glob("*.png")):
        hr = torch.from_numpy(np.asarray(Image.open(p).convert("RGB"))).permute(2, 0, 1)
        h, w = hr.shape[1] // s * s, hr.shape[2] // s * s
        hr = hr[:, :h, :w]
        lr = imresize_matlab_uint8(hr, size=(h // s, w // s))
        with torch.no_grad():
            sr = m.upscale(lr.float().cuda()[None] / 255, (h, w)).cpu()
        vals.append(float(psnr(sr, hr.float()[None] / 255, shave=s, y_channel=True)[0]))
    print(f"Set5 x{s} Y-PSNR {np.mean(vals):.3f}", flush=True)
