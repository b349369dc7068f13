#!/usr/bin/env python
"""A head's decode time against its FLOP floor, and the end-to-end time, in one run (CPU or GPU).

The floor is the decode's multiply-adds (the render MLP of every ensemble member, counted from the head's
``Linear`` layers per query) at the device's measured dense fp32 GEMM rate (a 1024^3 ``torch.mm``): what
the decode would take if nothing but its matrix products ran at peak. ``floor / measured`` is the fraction of
the floor reached. The latent (prepare + the per-cell modulations) is timed apart from the per-query decode. On a CPU the
times are process CPU times (``time.process_time``; with ``--threads 1`` the compute time, robust to a
loaded machine), on a GPU wall times.

    python scripts/bench/decode_floor.py --head lmciaosr --lr 100 --out 800 --threads 1
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
from liif_sr.coords import make_cell, make_coord  # noqa: E402
from liif_sr.models.build import build_model  # noqa: E402

MEMBERS = 4  # LIIF's local ensemble


def clock(device: torch.device) -> float:
    """Seconds: process CPU time on a CPU, wall time (after a synchronisation) on a GPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        return time.perf_counter()
    return time.process_time()


def gemm_flops(device: torch.device, n: int = 1024, repeats: int = 5) -> float:
    """Measured dense fp32 GEMM rate (FLOP/s): the best of ``repeats`` ``n x n x n`` products."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    best = float("inf")
    for _ in range(repeats + 1):
        t = clock(device)
        torch.mm(a, b)
        best = min(best, clock(device) - t)
    return 2 * n**3 / best


def render_macs(head: torch.nn.Module) -> int:
    """Multiply-adds per query of the head's per-query MLP (``head.render`` or ``head.mlp``), all members."""
    mlp = getattr(head, "render", None) or head.mlp
    return MEMBERS * sum(
        m.in_features * m.out_features for m in mlp.modules() if isinstance(m, torch.nn.Linear)
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--head", default="lmciaosr")
    p.add_argument("--encoder", default="edsr_baseline")
    p.add_argument("--lr", type=int, default=100, help="LR side")
    p.add_argument("--out", type=int, default=800, help="output side")
    p.add_argument("--chunk", type=int, default=65536)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = build_model({"encoder": {"name": args.encoder, "args": {}}, "head": {"name": args.head}}).to(
        device
    )
    model.eval()
    lr = torch.rand(1, 3, args.lr, args.lr, device=device)
    n = args.out * args.out
    coord = make_coord((args.out, args.out), device=device)[None]
    cell = make_cell((args.out, args.out), n, device=device)[None]
    load0 = os.getloadavg()[0]
    with torch.no_grad():
        t0 = clock(device)
        prepared = model.prepare(lr, border="none")
        model.decode(prepared, coord[:, :1], cell[:, :1])  # the latent at this cell (cached in the state)
        t1 = clock(device)
        for s in range(0, n, args.chunk):
            model.decode(prepared, coord[:, s : s + args.chunk], cell[:, s : s + args.chunk])
        t2 = clock(device)
        model.upscale(lr, (args.out, args.out), chunk=args.chunk, border="none")
        t3 = clock(device)
    rate = gemm_flops(device)
    floor = 2 * render_macs(model.head) * n / rate
    decode = t2 - t1
    kind = "GPU wall" if device.type == "cuda" else "CPU"
    print(
        f"{model.name} {args.lr}^2 -> {args.out}^2 on {args.device}, {args.threads} thread(s), {kind} seconds"
    )
    print(f"  latent (encoder + prepare + modulations): {t1 - t0:.3f} s")
    print(f"  decode {n} queries: {decode:.3f} s ({decode / n * 1e6:.2f} us/query)")
    print(
        f"  render MACs/query {render_macs(model.head)}; GEMM rate {rate / 1e9:.1f} GFLOP/s; floor {floor:.3f} s"
    )
    print(f"  floor / decode = {floor / decode:.0%}")
    print(f"  end to end (upscale): {t3 - t2:.3f} s")
    print(f"  load average {load0:.1f} -> {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
