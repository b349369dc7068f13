"""The CPU decode alone against its FLOP floor, repeated: ``python scripts/bench/decode_floor.py``.

For each head (paper sizes, random weights, the EDSR-baseline latent width 64): a warm decode of a ``latent``²
latent to a ``size``² ``make_coord`` grid in 65536-query chunks, timed in process CPU time, with the GEMM rate
of :func:`bench.floor.gemm_rate` measured before and after (the better one counts); prints one line per repeat
with the fraction of the floor in CPU time (FLOPs counted as :mod:`bench.floor` says) and the load average.
Run it with one torch thread (the default here) on the least-loaded core available. ``--kernels both`` times
each repeat twice, with the C kernels (:mod:`liif_sr.kernels`) and without them (``kernels.load`` answering
None, as with ``LIIF_SR_KERNELS=0``), alternating: before
and after in the same run.

    python scripts/bench/decode_floor.py --heads lte,metasr --repeats 3
    python scripts/bench/decode_floor.py --heads metasr --repeats 3 --kernels both
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # scripts/, for ``bench``

from bench.floor import decode_flops, gemm_rate  # noqa: E402
from liif_sr import kernels  # noqa: E402
from liif_sr.coords import make_coord  # noqa: E402
from liif_sr.models import build_model  # noqa: E402

CHUNK = 65536


@contextlib.contextmanager
def use_kernels(on: bool) -> Iterator[None]:
    """The C kernels as configured (``on``) or none (:func:`liif_sr.kernels.disabled`)."""
    if on:
        yield
        return
    with kernels.disabled():
        yield


def measure(head: str, latent: int, size: int, repeats: int, hidden: list[int] | None = None) -> list[dict]:
    """One dict per repeat: ``cpu_s``, ``wall_s``, ``gflop``, ``gemm_gflops`` (per CPU second), ``fraction``."""
    torch.manual_seed(0)
    config: dict = {"encoder": {"name": "edsr_baseline"}, "head": {"name": head}}
    if hidden is not None:
        config["head"]["hidden_list"] = hidden
    model = build_model(config, head_mode="fast").eval()
    coord = make_coord((size, size)).unsqueeze(0)
    cell = torch.ones_like(coord) * (2 / size)
    flops = decode_flops(model.head) * coord.shape[1]
    rows = []
    with torch.inference_mode():
        state = model.head.prepare(torch.randn(1, 64, latent, latent), torch.randn(1, 3, latent, latent))
        model.head.decode(state, coord[:, :CHUNK], cell[:, :CHUNK])  # warm-up
    for _ in range(repeats):
        rate = gemm_rate(torch.device("cpu"))[1]  # outside inference mode (its own tensors)
        c0, w0 = time.process_time(), time.perf_counter()
        with torch.inference_mode():
            for i in range(0, coord.shape[1], CHUNK):
                model.head.decode(state, coord[:, i : i + CHUNK], cell[:, i : i + CHUNK])
        cpu, wall = time.process_time() - c0, time.perf_counter() - w0
        rate = max(rate, gemm_rate(torch.device("cpu"))[1])
        rows.append(
            {"cpu_s": cpu, "wall_s": wall, "gflop": flops / 1e9, "gemm_gflops": rate / 1e9,
             "fraction": flops / rate / cpu}
        )  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heads", default="lte,metasr")
    parser.add_argument("--latent", type=int, default=100)
    parser.add_argument("--size", type=int, default=800)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--kernels", choices=["on", "off", "both"], default="on")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    modes = {"on": [True], "off": [False], "both": [True, False]}[args.kernels]
    for head in args.heads.split(","):
        for i in range(args.repeats):
            for on in modes:
                with use_kernels(on):
                    r = measure(head, args.latent, args.size, 1)[0]
                load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
                label = "" if args.kernels == "on" else f" (C kernels {'on' if on else 'off'})"
                print(
                    f"{head}{label} {args.latent}²→{args.size}² run {i}: decode {r['cpu_s']:.3f} CPU s "
                    f"({r['wall_s']:.3f} s wall), {r['gflop']:.2f} GFLOP counted, GEMM {r['gemm_gflops']:.1f} "
                    f"GFLOP per CPU s, fraction of the floor (CPU time) {r['fraction']:.2f}, load {load}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
