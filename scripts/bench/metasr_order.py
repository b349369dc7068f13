"""MetaSR's C decode in latent order against the given (raster) order, in one process:
``python scripts/bench/metasr_order.py``.

The kernel (``kernels/csrc/metasr.c``) decodes a block of queries latent by latent when the block's latents
repeat in short runs (a raster grid at ×2-×3), so that each latent's table row is read from memory once per
block. This builds the kernel twice — as shipped, and with ``-DSORT_BLOCK=0`` (always the given order) — and
times both on the same table and grid, alternating, in the head's 65536-query chunks with the caches flushed
before each decode; it prints the best nanoseconds per query of each, their ratio and whether the outputs are
bitwise equal. One torch thread; run it on an otherwise idle core (``taskset -c 1``).

    python scripts/bench/metasr_order.py --latent 128 --scales 2,2.5,3,4,8 --repeats 5
"""

from __future__ import annotations

import argparse
import ctypes
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # scripts/, for ``bench``

from bench.metasr_timing import decode_ns, grid  # noqa: E402
from liif_sr.kernels import build  # noqa: E402
from liif_sr.models import build_model  # noqa: E402
from liif_sr.models.heads import metasr_kernel  # noqa: E402
from liif_sr.models.heads.geometry import channels_last_rows  # noqa: E402
from liif_sr.models.heads.metasr import ROW_ALIGN  # noqa: E402

CHUNK = 65536  # queries per decode call, as decode_floor.py and the head's chunked decodes
BUILDS = {"latent order": (), "given order": ("-DSORT_BLOCK=0",)}


def _load(defines: tuple[str, ...]) -> ctypes.CDLL:
    lib = ctypes.CDLL(str(build.compile_kernel("metasr", build.FLAGS + defines)))
    lib.metasr_decode.argtypes, lib.metasr_decode.restype = metasr_kernel._DECODE_ARGS, ctypes.c_int64
    return lib


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latent", type=int, default=128)
    parser.add_argument("--scales", default="2,2.5,3,4,8")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--flush-mb", type=int, default=256, help="array streamed before each decode")
    args = parser.parse_args(argv)
    if metasr_kernel.fast_library() is None:
        raise SystemExit("the MetaSR C kernel is not available here (no compiler, or no AVX2/AVX-512 path)")
    libs = {name: _load(defines) for name, defines in BUILDS.items()}
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = build_model({"encoder": {"name": "edsr_baseline"}, "head": {"name": "metasr"}}, head_mode="fast")
    head, n = model.eval().head, args.latent
    with torch.inference_mode():
        table = channels_last_rows(head.latent_projection(torch.randn(1, 64, n, n), ROW_ALIGN))
    lin = head.mlp.layers[0]
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(f"latent {n}², {CHUNK}-query chunks, SIMD {metasr_kernel.SIMD_NAMES[libs['latent order'].metasr_simd()]}"
          f", load {load}")  # fmt: skip
    for scale in (float(s) for s in args.scales.split(",")):
        size, coord, cell = grid(n, scale)
        best = dict.fromkeys(libs, float("inf"))
        outs: dict[str, torch.Tensor] = {}
        for _ in range(args.repeats):
            for name, lib in libs.items():
                ns, outs[name] = decode_ns(lib, table, lin, n, coord, cell, args.flush_mb << 20, CHUNK)
                best[name] = min(best[name], ns)
        same = torch.equal(outs["latent order"], outs["given order"])
        print(
            f"×{scale:g} ({n}²→{size}²): given order {best['given order']:.1f} ns/query, latent order "
            f"{best['latent order']:.1f} ns/query, {best['given order'] / best['latent order']:.2f}× faster, "
            f"bitwise equal {same}",
            flush=True,
        )


if __name__ == "__main__":
    main()
