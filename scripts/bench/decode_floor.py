"""The CPU decode alone against its FLOP floor, repeated: ``python scripts/bench/decode_floor.py``.

For each head (paper sizes, random weights, the EDSR-baseline latent width 64): a warm decode of a ``latent``²
latent to a ``size``² ``make_coord`` grid in 65536-query chunks, timed in process CPU time, with the GEMM rate
of :func:`bench.floor.gemm_rate` measured before and after (the better one counts); prints one line per repeat
with the fraction of the floor in CPU time (FLOPs counted as :mod:`bench.floor` says) and the load average,
then the memory (roofline) floor's fraction (bytes as :func:`bench.floor.memory_bytes` counts them over the
single-thread streaming rate :func:`bench.floor.stream_rate`, measured in the same repeat) and the fraction of
the larger of the two floors. ``--scales 2,2.5,3,4,8`` decodes the ``latent``² latent to round(``latent`` ·
scale)² per scale instead of one ``--size``.
Run it with one torch thread (the default here) on the least-loaded core available. ``--kernels both`` times
each repeat twice, with the C kernels (:mod:`liif_sr.kernels`) and without them (``kernels.load`` answering
None, as with ``LIIF_SR_KERNELS=0``), alternating: before
and after in the same run.

    python scripts/bench/decode_floor.py --heads lte,metasr --repeats 3
    python scripts/bench/decode_floor.py --heads metasr --repeats 3 --kernels both
    python scripts/bench/decode_floor.py --heads metasr,lmliif --latent 128 --scales 2,2.5,3,4,8 --kernels both
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

from bench.floor import decode_flops, gemm_rate, memory_bytes, stream_rate  # noqa: E402
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


def measure(
    head: str,
    latent: int,
    size: int,
    repeats: int,
    hidden: list[int] | None = None,
    stream_bytes: int = 256 << 20,
) -> list[dict]:
    """One dict per repeat: ``cpu_s``, ``wall_s``, ``gflop``, ``gemm_gflops`` (per CPU second), ``fraction``
    (of the FLOP floor), ``mbytes`` (memory floor's bytes / 1e6), ``stream_gbs`` (GB per CPU second),
    ``mem_fraction`` (of the memory floor) and ``roof_fraction`` (of the larger floor), all in CPU time.
    ``stream_bytes``: the array the streaming rate is measured over (far above the last-level cache; tests
    pass less)."""
    torch.manual_seed(0)
    config: dict = {"encoder": {"name": "edsr_baseline"}, "head": {"name": head}}
    if hidden is not None:
        config["head"]["hidden_list"] = hidden
    model = build_model(config, head_mode="fast").eval()
    coord = make_coord((size, size)).unsqueeze(0)
    cell = torch.ones_like(coord) * (2 / size)
    flops = decode_flops(model.head) * coord.shape[1]
    nbytes = memory_bytes(model.head, latent * latent, coord.shape[1])
    rows = []
    with torch.inference_mode():
        state = model.head.prepare(torch.randn(1, 64, latent, latent), torch.randn(1, 3, latent, latent))
        model.head.decode(state, coord[:, :CHUNK], cell[:, :CHUNK])  # warm-up
    for _ in range(repeats):
        rate = gemm_rate(torch.device("cpu"))[1]  # outside inference mode (its own tensors)
        stream = stream_rate(stream_bytes)
        c0, w0 = time.process_time(), time.perf_counter()
        with torch.inference_mode():
            for i in range(0, coord.shape[1], CHUNK):
                model.head.decode(state, coord[:, i : i + CHUNK], cell[:, i : i + CHUNK])
        cpu, wall = time.process_time() - c0, time.perf_counter() - w0
        rate = max(rate, gemm_rate(torch.device("cpu"))[1])
        stream = max(stream, stream_rate(stream_bytes))
        rows.append(
            {"cpu_s": cpu, "wall_s": wall, "gflop": flops / 1e9, "gemm_gflops": rate / 1e9,
             "fraction": flops / rate / cpu, "mbytes": nbytes / 1e6, "stream_gbs": stream / 1e9,
             "mem_fraction": nbytes / stream / cpu, "roof_fraction": max(flops / rate, nbytes / stream) / cpu}
        )  # fmt: skip
    return rows


def scale_sizes(latent: int, size: int, scales: str | None) -> list[int]:
    """The output sizes: ``size`` alone, or round(``latent`` · scale) per comma-separated scale (each ≥ 1,
    i.e. no downscale; refused otherwise)."""
    if scales is None:
        return [size]
    try:
        values = [float(s) for s in scales.split(",")]
    except ValueError:
        raise SystemExit(f"--scales: comma-separated numbers expected, got {scales!r}") from None
    bad = [s for s in values if not 1 <= s <= 64]
    if bad:
        raise SystemExit(f"--scales: each scale must be in [1, 64], got {bad}")
    return [round(latent * s) for s in values]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heads", default="lte,metasr")
    parser.add_argument("--latent", type=int, default=100)
    parser.add_argument("--size", type=int, default=800)
    parser.add_argument("--scales", default=None, help="comma-separated scales (replaces --size)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--kernels", choices=["on", "off", "both"], default="on")
    args = parser.parse_args(argv)
    sizes = scale_sizes(args.latent, args.size, args.scales)
    torch.set_num_threads(args.threads)
    modes = {"on": [True], "off": [False], "both": [True, False]}[args.kernels]
    for head in args.heads.split(","):
        for size in sizes:
            for i in range(args.repeats):
                for on in modes:
                    with use_kernels(on):
                        r = measure(head, args.latent, size, 1)[0]
                    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
                    label = "" if args.kernels == "on" else f" (C kernels {'on' if on else 'off'})"
                    print(
                        f"{head}{label} {args.latent}²→{size}² (×{size / args.latent:.3g}) run {i}: decode "
                        f"{r['cpu_s']:.3f} CPU s ({r['wall_s']:.3f} s wall), {r['gflop']:.2f} GFLOP counted, "
                        f"GEMM {r['gemm_gflops']:.1f} GFLOP per CPU s, fraction of the floor (CPU time) "
                        f"{r['fraction']:.2f}, {r['mbytes']:.1f} MB counted, stream {r['stream_gbs']:.1f} GB "
                        f"per CPU s, fraction of the memory floor {r['mem_fraction']:.2f}, of the larger floor "
                        f"{r['roof_fraction']:.2f}, load {load}",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
