#!/usr/bin/env python
"""What each default of the CPU training step gives (issue 21): the pieces one by one, interleaved rounds.

Variants (EDSR-baseline-LIIF, batch 16, 48² LR, 2304 queries, Adam 1e-4, L1, the same weights and batches):
``official`` (reference head, contiguous, for-loop Adam), ``fast head`` (the default before issue 21: the
head's training path without the in-place adds), ``+fused`` (fused Adam), ``+inplace`` (the current head),
``+reuse`` (host-memory reuse), ``+channels_last`` (= the default step). Prints wall and process CPU time per
step (median over the rounds after the first), the speed-up over ``official`` and the loss of every step::

    PYTHONPATH=src python scripts/bench/train_pieces.py --threads 1 --rounds 4
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from liif_sr.models import EDSRBaseline, ImplicitSR, LIIFHead
from liif_sr.training.speed import reuse_host_memory

# name: (head, fused Adam, host-memory reuse, channels_last)
PIECES = {
    "official": ("plain", False, False, False),
    "fast head": ("old", False, False, False),
    "+fused": ("old", True, False, False),
    "+inplace": ("new", True, False, False),
    "+reuse": ("new", True, True, False),
    "+channels_last": ("new", True, True, True),
}


def old_decode_rows(self: LIIFHead, rows, index, extra):
    """The head's training path before issue 21 (out-of-place first-layer add and ReLUs)."""
    x = rows.index_select(0, index) + F.linear(extra, self.mlp.layers[0].weight[:, self.feat_dim :])
    for layer in self.mlp.layers[1:]:
        x = layer(x)
    return x


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--batch", type=int, default=16)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    b, q = args.batch, 2304
    gen = torch.Generator().manual_seed(1)
    batches = [
        (
            torch.rand(b, 3, 48, 48, generator=gen),
            torch.rand(b, q, 2, generator=gen) * 2 - 1,
            torch.full((b, q, 2), 2 / 150),
            torch.rand(b, q, 3, generator=gen) * 2 - 1,
        )
        for _ in range(3)
    ]
    built = {}
    for name, (head, fused, _, channels_last) in PIECES.items():
        torch.manual_seed(0)
        net = ImplicitSR(EDSRBaseline(), LIIFHead(64, [256] * 4, fast=head != "plain"))
        if head == "old":
            net.head.decode_rows = old_decode_rows.__get__(net.head)
        if channels_last:
            net.encoder.to(memory_format=torch.channels_last)
        built[name] = net, torch.optim.Adam(net.parameters(), lr=1e-4, fused=fused)
    wall = {n: [] for n in PIECES}
    cpu = {n: [] for n in PIECES}
    losses = {n: [] for n in PIECES}
    for r in range(args.rounds):
        inp, coord, cell, gt = batches[r % 3]
        for name, (net, opt) in built.items():
            _, _, reuse, channels_last = PIECES[name]
            reuse_host_memory(reuse)
            x = inp.contiguous(memory_format=torch.channels_last) if channels_last else inp
            t0, c0 = time.perf_counter(), time.process_time()
            loss = F.l1_loss(net(x, coord, cell), gt)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            losses[name].append(loss.item())
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
        print(f"round {r}: load {Path('/proc/loadavg').read_text().split()[:3]}", flush=True)
    med = {n: (statistics.median(wall[n][1:]), statistics.median(cpu[n][1:])) for n in PIECES}
    w0, c0 = med["official"]
    for n, (w, c) in med.items():
        print(
            f"{n:15s} wall {w:6.2f} s ({w0 / w:.2f}x)  CPU {c:6.2f} s ({c0 / c:.2f}x)  "
            f"losses {' '.join(f'{x:.8f}' for x in losses[n])}"
        )


if __name__ == "__main__":
    main()
