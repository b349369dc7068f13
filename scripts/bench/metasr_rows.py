"""MetaSR's C decode on cache-line-aligned table rows against unpadded ones, in one process:
``python scripts/bench/metasr_rows.py``.

The head pads each latent's ``G``/``β`` row (``out·H + out`` = 771 fp32 for the official head) to a multiple of
16 fp32 (784: 64-byte rows on 64-byte lines) when the kernel decodes. This times the kernel alone on both
layouts of the same table (the unpadded one is the head's ``latent_projection(feat, 1)``), alternating, with
the caches flushed before each decode, and prints the best nanoseconds per query of each, their ratio and
whether the outputs are bitwise equal. One torch thread; run it on an otherwise idle core
(``taskset -c 1``).

    python scripts/bench/metasr_rows.py --latent 128 --scales 2,3,4,8 --repeats 5
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # scripts/, for ``bench``

from bench.metasr_timing import decode_ns, grid  # noqa: E402
from liif_sr.models import build_model  # noqa: E402
from liif_sr.models.heads import metasr_kernel  # noqa: E402
from liif_sr.models.heads.geometry import channels_last_rows  # noqa: E402
from liif_sr.models.heads.metasr import ROW_ALIGN  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latent", type=int, default=128)
    parser.add_argument("--scales", default="2,3,4,8")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--flush-mb", type=int, default=256, help="array streamed before each decode")
    args = parser.parse_args(argv)
    lib = metasr_kernel.fast_library()
    if lib is None:
        raise SystemExit("the MetaSR C kernel is not available here (no compiler, or no AVX2/AVX-512 path)")
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = build_model({"encoder": {"name": "edsr_baseline"}, "head": {"name": "metasr"}}, head_mode="fast")
    head, n = model.eval().head, args.latent
    with torch.inference_mode():
        feat = torch.randn(1, 64, n, n)
        tables = {
            layout: channels_last_rows(head.latent_projection(feat, align))
            for layout, align in (("unpadded", 1), ("aligned", ROW_ALIGN))
        }
    lin = head.mlp.layers[0]
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(
        f"latent {n}², rows {tables['unpadded'].shape[1]} vs {tables['aligned'].shape[1]} fp32, load {load}"
    )
    for scale in (float(s) for s in args.scales.split(",")):
        size, coord, cell = grid(n, scale)
        best = dict.fromkeys(tables, float("inf"))
        outs: dict[str, torch.Tensor] = {}
        for _ in range(args.repeats):
            for layout, table in tables.items():
                ns, outs[layout] = decode_ns(lib, table, lin, n, coord, cell, args.flush_mb << 20)
                best[layout] = min(best[layout], ns)
        same = torch.equal(outs["unpadded"], outs["aligned"])
        print(
            f"×{scale:g} ({n}²→{size}²): unpadded {best['unpadded']:.1f} ns/query, aligned "
            f"{best['aligned']:.1f} ns/query, {best['unpadded'] / best['aligned']:.2f}× faster, bitwise equal {same}",
            flush=True,
        )


if __name__ == "__main__":
    main()
