#!/usr/bin/env python
"""LMF decode speed (issue 20): LM-LIIF vs LIIF and LM-LTE vs LTE on one device, in one run, and the LM heads'
decode against their own FLOP floor.

For each case (LR → output) the EDSR-baseline encoder runs once (timed), then each head: ``prepare`` (plus,
for the LM heads, the latent MLP at the image's cell), and the fast ``decode`` in chunks of 65536 queries
(the render loop's default). A head's decode is timed on the first output rows holding at most
``--max-queries`` queries and scaled to the whole image (its cost per query does not depend on the rows;
``--max-queries 0`` decodes everything). End to end = encoder + prepare + decode of the whole image.

The FLOP floor of a decode: the render MLP's multiply-adds x 2 per query and ensemble member, x 4 members,
at the warm GEMM rates measured right after that decode (same machine load): a 1024^3 fp32 GEMM, and the
decode's own shape N x 16 @ 16 x 16. Random weights at the paper sizes (speed does not depend on them); fp32.

    python scripts/bench_lmf.py --threads 1                      # CPU: 100²→800² and 256²→2048²
    python scripts/bench_lmf.py --tiny                           # seconds: reduced sizes (smoke test)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from liif_sr.coords import make_cell, make_coord  # noqa: E402
from liif_sr.models.build import build_model  # noqa: E402

CASES = {"100-800": ((100, 100), (800, 800)), "256-2048": ((256, 256), (2048, 2048))}
TINY = {"100-800": ((12, 12), (96, 96)), "256-2048": ((16, 16), (128, 128))}
PAIRS = (("lmliif", "liif"), ("lmlte", "lte"))
CHUNK = 65536


def _time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def gemm_rates(repeats: int) -> tuple[float, float]:
    """Warm fp32 GEMM rates (FLOP/s): a 1024³ GEMM and the decode's shape (65536 x 16) @ (16 x 16)."""
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    big = 2 * 1024**3 / _time(lambda: a @ b, repeats)
    x, w = torch.randn(65536, 16), torch.randn(16, 16)
    small = 2 * 65536 * 16 * 16 / _time(lambda: x @ w, repeats * 10)
    return big, small


def render_flops(head) -> int:  # noqa: ANN001
    """FLOPs per query of an LM head's decode: the render MLP's linear layers (2 per multiply-add) x 4 members."""
    linears = [m for m in head.render.layers if isinstance(m, torch.nn.Linear)]
    return 4 * 2 * sum(m.in_features * m.out_features for m in linears)


def bench_case(key: str, sizes: dict, tiny: bool, max_queries: int, repeats: int) -> list[dict]:
    (h, w), (oh, ow) = sizes[key]
    enc_args = {"n_resblocks": 2, "n_feats": 16} if tiny else {}
    torch.manual_seed(0)
    lr = torch.rand(1, 3, h, w)
    x = (lr - 0.5) / 0.5
    rows_timed = oh if max_queries <= 0 else max(1, min(oh, max_queries // ow))
    coord = make_coord((oh, ow))[: rows_timed * ow][None]
    cell = make_cell((oh, ow), coord.shape[1])[None].expand(1, coord.shape[1], 2)
    out = []
    encoder = None
    for lm, base in PAIRS:
        for name in (lm, base):
            model = build_model(
                {"encoder": {"name": "edsr_baseline", "args": enc_args}, "head": {"name": name}}
            )
            model.eval()
            with torch.no_grad():
                if encoder is None:
                    t_enc = _time(lambda m=model: m.encoder(x), 1)
                    encoder = model.encoder(x)
                feat = encoder if encoder.shape[1] == model.head.in_channels else model.encoder(x)
                state = model.head.prepare(feat, x)

                def prepare(m=model, f=feat):
                    st = m.head.prepare(f, x)
                    m.head.decode(st, coord[:, :1], cell[:, :1])  # the LM heads' latent MLP (once per cell)

                t_prep = _time(prepare, 1)

                def decode(m=model, st=state):
                    for s in range(0, coord.shape[1], CHUNK):
                        m.head.decode(st, coord[:, s : s + CHUNK], cell[:, s : s + CHUNK])

                t_dec = _time(decode, repeats) * (oh * ow) / coord.shape[1]
            row = {"case": key, "head": name, "encoder_s": t_enc, "prepare_s": t_prep, "decode_s": t_dec}
            row["e2e_s"] = t_enc + t_prep + t_dec
            row["queries"] = oh * ow
            row["timed_queries"] = coord.shape[1]
            if name == lm:  # the GEMM rates under the same machine load as this decode
                row["flops_per_query"] = render_flops(model.head)
                row["gemm_big"], row["gemm_small"] = gemm_rates(3)
            out.append(row)
            print(f"  {key} {name}: decode {t_dec:.2f} s, end to end {row['e2e_s']:.2f} s", file=sys.stderr)
    return out


def markdown(rows: list[dict], header: str) -> str:
    lines = [
        header,
        "",
        "| case | LM head | decode s | × faster than base | end to end s | × faster | base head decode s "
        "| base end to end s | LM FLOP/query | GEMM GFLOP/s (1024³; 65536x16 @ 16x16) | floor s (1024³ rate) "
        "| of floor | floor s (16-wide rate) | of floor |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    by = {(r["case"], r["head"]): r for r in rows}
    for case in dict.fromkeys(r["case"] for r in rows):
        for lm, base in PAIRS:
            a, b = by[case, lm], by[case, base]
            flops = a["flops_per_query"] * a["queries"]
            fb, fs = flops / a["gemm_big"], flops / a["gemm_small"]
            lines.append(
                f"| {case} | {lm} | {a['decode_s']:.2f} | {b['decode_s'] / a['decode_s']:.1f} | {a['e2e_s']:.2f} "
                f"| {b['e2e_s'] / a['e2e_s']:.1f} | {b['decode_s']:.2f} | {b['e2e_s']:.2f} "
                f"| {a['flops_per_query']:,} | {a['gemm_big'] / 1e9:.0f}; {a['gemm_small'] / 1e9:.0f} | {fb:.3f} | {fb / a['decode_s']:.0%} | {fs:.3f} | {fs / a['decode_s']:.0%} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--cases", default=",".join(CASES), help=f"comma list of {','.join(CASES)}")
    p.add_argument("--max-queries", type=int, default=262144, help="queries decoded per timing (0: all)")
    p.add_argument("--repeats", type=int, default=1, help="timed decode runs (median; one warm-up)")
    p.add_argument("--tiny", action="store_true", help="reduced sizes and encoder: a smoke run")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    cases = args.cases.split(",")
    bad = [c for c in cases if c not in CASES]
    if bad:
        p.error(f"unknown cases {bad}; known: {', '.join(CASES)}")
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else ["?"]
    rows = []
    for key in cases:
        rows += bench_case(key, TINY if args.tiny else CASES, args.tiny, args.max_queries, args.repeats)
    load_after = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else ["?"]
    header = (
        f"torch {torch.__version__}, {args.threads} thread(s), load average before {' '.join(load)}, "
        f"after {' '.join(load_after)}; decode timed on ≤ {args.max_queries or 'all'} queries and scaled."
    )
    print(markdown(rows, header))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
