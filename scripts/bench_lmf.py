#!/usr/bin/env python
"""LMF decode speed (issue 20): the LM heads' decode against their own FLOP floor and against their base heads
(LM-LIIF vs LIIF, LM-LTE vs LTE; LM-CiaoSR has none here), on one device, in one run.

For each case (LR → output) the EDSR-baseline encoder runs once (timed), then each head: ``prepare`` (plus,
for the LM heads, the latent MLP at the image's cell), and the fast ``decode`` in chunks of 65536 queries
(the render loop's default). A head's decode is timed on the first output rows holding at most
``--max-queries`` queries and scaled to the whole image (its cost per query does not depend on the rows;
``--max-queries 0`` decodes everything). End to end = encoder + prepare + decode of the whole image.
Times are process CPU seconds on a CPU (``time.process_time``: with ``--threads 1`` the compute time, steady
on a loaded machine), wall seconds after a synchronisation on a GPU; the best of ``--repeats`` after a warm-up.

The FLOP floor of a decode: the render MLP's multiply-adds x 2 per query and ensemble member, x 4 members,
at the warm rate of a 1024³ fp32 GEMM measured right after that decode (same machine load). "of floor" =
floor / decode. The shape ceiling: the rate of a bare ``relu(addmm(b, x, W))`` with ``x`` (N x 16), ``W``
(16 x 16) at the decode's N (4 members x its piece of queries), relative to the 1024³ rate: a decode made of
nothing but such products (no modulation, no gather) reaches at most that fraction of the floor. The
render-MLP ceiling: the head's own render MLP (mm, fused modulation, ReLU per layer; output layer) on N rows
with contiguous per-layer modulations, no gather/geometry/blend: the most a decode grouped by latent could
reach with these ops.
The LM heads' CPU fp32 decode runs on the fused C kernel (``liif_sr.kernels.lmf``) when it builds ("decode
path" column); each LM head's PyTorch path is timed too (``LIIF_SR_KERNELS=0``) and its fraction of the floor
reported beside it. ``--no-kernel`` runs everything on the PyTorch path; ``--kernel-flags=-mno-avx512f``
times the kernel's AVX2 build on an AVX-512 CPU (extra compiler flags for the kernel).
Random weights at the paper sizes (speed does not depend on them); fp32.

    python scripts/bench_lmf.py --threads 1 --cases 100-800 --max-queries 65536   # CPU, a minute
    python scripts/bench_lmf.py --tiny                                            # seconds (smoke test)
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from liif_sr import kernels  # noqa: E402
from liif_sr.coords import make_cell, make_coord  # noqa: E402
from liif_sr.kernels import build as kernel_build  # noqa: E402
from liif_sr.kernels import lmf as lmf_kernel  # noqa: E402
from liif_sr.models.build import build_model  # noqa: E402
from liif_sr.models.heads.lmf_common import piece_size  # noqa: E402

CASES = {"100-800": ((100, 100), (800, 800)), "256-2048": ((256, 256), (2048, 2048))}
TINY = {"100-800": ((12, 12), (96, 96)), "256-2048": ((16, 16), (128, 128))}
BASES = {"lmliif": "liif", "lmlte": "lte", "lmciaosr": None}  # LM head -> its base head (None: not compared)
CHUNK = 65536


def clock(device: torch.device) -> float:
    """Seconds: process CPU time on a CPU, wall time after a synchronisation on a GPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        return time.perf_counter()
    return time.process_time()


def _time(fn, repeats: int, device: torch.device) -> float:  # noqa: ANN001
    fn()  # warm-up
    best = float("inf")
    for _ in range(max(repeats, 1)):
        t0 = clock(device)
        fn()
        best = min(best, clock(device) - t0)
    return max(best, 1e-9)


def kernels_off() -> contextlib.AbstractContextManager[None]:
    """The PyTorch decode path meanwhile (:func:`liif_sr.kernels.disabled`, as ``LIIF_SR_KERNELS=0``)."""
    return kernels.disabled()


def decode_path(device: torch.device) -> str:
    """What the LM heads' decode runs on here."""
    if device.type != "cpu" or not lmf_kernel.fast():
        return "PyTorch"
    return f"kernel ({lmf_kernel.SIMD_NAMES[lmf_kernel.simd()]})"


def gemm_rates(device: torch.device, rows: int, repeats: int) -> tuple[float, float]:
    """Warm fp32 rates (FLOP/s): a 1024³ GEMM and ``relu(addmm(b, x, W))``, x (rows x 16), W (16 x 16)."""
    a, b = torch.randn(1024, 1024, device=device), torch.randn(1024, 1024, device=device)
    big = 2 * 1024**3 / _time(lambda: a @ b, repeats, device)
    x, w, bias = (torch.randn(*s, device=device) for s in ((rows, 16), (16, 16), (16,)))
    inner = 20

    def small_run() -> None:
        for _ in range(inner):
            torch.addmm(bias, x, w).relu_()

    small = inner * 2 * rows * 16 * 16 / _time(small_run, repeats * 3, device)
    return big, small


def chain_rate(render, rows: int, repeats: int, device: torch.device) -> float:  # noqa: ANN001
    """FLOP/s of the head's render MLP alone on ``rows`` member rows, its modulations already contiguous per
    layer (no gather, no geometry, no blend: what a decode grouped by latent could reach at best with these
    ops), counted as the floor counts it (every linear layer, layer 0 included)."""
    hd = render.hidden_dim
    weights = render.transposed_weights(torch.float32)
    x = torch.randn(rows, render.in_dim, device=device)
    tables = [torch.randn(rows, 2 * hd, device=device) for _ in range(render.hidden_depth)]
    inner = 5

    def run() -> None:
        for _ in range(inner):
            h = torch.mm(x, weights[0])
            for i, mods in enumerate(tables):
                h = torch.addcmul(mods[:, hd:], torch.mm(h, weights[i]) if i else h, mods[:, :hd]).relu_()
            torch.addmm(render.layers[-1].bias, h, weights[-1])

    linears = [m for m in render.layers if isinstance(m, torch.nn.Linear)]
    return (
        inner * 2 * rows * sum(m.in_features * m.out_features for m in linears) / _time(run, repeats, device)
    )


def render_flops(head) -> int:  # noqa: ANN001
    """FLOPs per query of an LM head's decode: the render MLP's linear layers (2 per multiply-add) x 4 members."""
    linears = [m for m in head.render.layers if isinstance(m, torch.nn.Linear)]
    return 4 * 2 * sum(m.in_features * m.out_features for m in linears)


def bench_head(name: str, ctx: dict, repeats: int) -> dict:
    """Prepare (+ latent MLP) and decode times of one head on the case in ``ctx``."""
    model = build_model(
        {"encoder": {"name": "edsr_baseline", "args": ctx["enc_args"]}, "head": {"name": name}}
    )
    model.to(ctx["device"]).eval()
    x, coord, cell, dev = ctx["x"], ctx["coord"], ctx["cell"], ctx["device"]
    with torch.no_grad():
        if "encoder" not in ctx:
            ctx["encoder_s"] = _time(lambda: model.encoder(x), 1, dev)
            ctx["encoder"] = model.encoder(x)
        feat = ctx["encoder"]
        state = model.head.prepare(feat, x)

        def prepare() -> None:
            st = model.head.prepare(feat, x)
            model.head.decode(st, coord[:, :1], cell[:, :1])  # the LM heads' latent MLP (once per cell)

        t_prep = _time(prepare, 1, dev)

        def decode() -> None:
            for s in range(0, coord.shape[1], CHUNK):
                model.head.decode(state, coord[:, s : s + CHUNK], cell[:, s : s + CHUNK])

        t_dec = _time(decode, repeats, dev) * ctx["queries"] / coord.shape[1]
        path = decode_path(dev) if name in BASES else "PyTorch"
        t_torch = None
        if path != "PyTorch":
            with kernels_off():
                t_torch = _time(decode, repeats, dev) * ctx["queries"] / coord.shape[1]
    row = {"head": name, "prepare_s": t_prep, "decode_s": t_dec, "e2e_s": ctx["encoder_s"] + t_prep + t_dec}
    row |= {"path": path, "torch_decode_s": t_torch}
    print(f"  {ctx['case']} {name}: decode {t_dec:.3f} s, end to end {row['e2e_s']:.3f} s", file=sys.stderr)
    if name in BASES:  # the GEMM rates under the same machine load as this decode
        row["flops_per_query"] = render_flops(model.head)
        row["small_rows"] = 4 * piece_size(dev, min(CHUNK, coord.shape[1]))  # member rows per decode step
        row["gemm_big"], row["gemm_small"] = gemm_rates(dev, row["small_rows"], 3)
        row["chain"] = chain_rate(model.head.render, row["small_rows"], 3, dev)
    return row


def bench_case(key: str, args: argparse.Namespace, heads: list[str]) -> list[dict]:
    (h, w), (oh, ow) = (TINY if args.tiny else CASES)[key]
    device = torch.device(args.device)
    torch.manual_seed(0)
    x = (torch.rand(1, 3, h, w, device=device) - 0.5) / 0.5
    rows_timed = oh if args.max_queries <= 0 else max(1, min(oh, args.max_queries // ow))
    coord = make_coord((oh, ow), device=device)[: rows_timed * ow][None]
    cell = make_cell((oh, ow), coord.shape[1], device=device)[None].expand(1, coord.shape[1], 2)
    ctx = {"case": key, "device": device, "x": x, "coord": coord, "cell": cell, "queries": oh * ow}
    ctx["enc_args"] = {"n_resblocks": 2, "n_feats": 16} if args.tiny else {}
    out = []
    for lm in heads:
        row = bench_head(lm, ctx, args.repeats)
        base = BASES[lm] if not args.no_base else None
        row["base"] = bench_head(base, ctx, args.repeats) if base else None
        out.append(row | {"case": key, "queries": oh * ow})
    return out


def markdown(rows: list[dict], header: str) -> str:
    lines = [
        header,
        "",
        "| case | LM head | decode s | × faster than base | end to end s | × faster | base decode s "
        "| base end to end s | FLOP/query | GFLOP/s 1024³ GEMM | GFLOP/s N×16 @ 16×16 addmm+relu (N) "
        "| floor s | **of floor** | shape ceiling (N×16 rate / 1024³ rate) | render-MLP ceiling (no gather) "
        "| decode path | PyTorch path decode s | PyTorch path of floor | × faster than PyTorch path |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        b = r["base"]
        vs = (
            (f"{b['decode_s'] / r['decode_s']:.1f}", f"{b['e2e_s'] / r['e2e_s']:.1f}")
            + (f"{b['decode_s']:.2f}", f"{b['e2e_s']:.2f}")
            if b
            else ("–",) * 4
        )
        floor = r["flops_per_query"] * r["queries"] / r["gemm_big"]
        lines.append(
            f"| {r['case']} | {r['head']} | {r['decode_s']:.3f} | {vs[0]} | {r['e2e_s']:.2f} | {vs[1]} | {vs[2]} "
            f"| {vs[3]} | {r['flops_per_query']:,} | {r['gemm_big'] / 1e9:.0f} | {r['gemm_small'] / 1e9:.0f} "
            f"({r['small_rows']}) | {floor:.3f} | {floor / r['decode_s']:.0%} "
            f"| {r['gemm_small'] / r['gemm_big']:.0%} | {r['chain'] / r['gemm_big']:.0%} | {r['path']} "
            + (
                f"| {r['torch_decode_s']:.3f} | {floor / r['torch_decode_s']:.0%} "
                f"| {r['torch_decode_s'] / r['decode_s']:.1f} |"
                if r["torch_decode_s"]
                else "| – | – | – |"
            )
        )
    return "\n".join(lines) + "\n"


def _cpu() -> str:
    path = Path("/proc/cpuinfo")
    lines = path.read_text().splitlines() if path.exists() else []
    names = [ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")]
    return f"{names[0] if names else 'unknown CPU'} ({os.cpu_count()} cores)"


def _load() -> str:
    path = Path("/proc/loadavg")
    return " ".join(path.read_text().split()[:3]) if path.exists() else "?"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--cases", default=",".join(CASES), help=f"comma list of {','.join(CASES)}")
    p.add_argument("--heads", default=",".join(BASES), help=f"comma list of {','.join(BASES)}")
    p.add_argument("--no-base", action="store_true", help="skip the base heads (LIIF, LTE)")
    p.add_argument("--max-queries", type=int, default=262144, help="queries decoded per timing (0: all)")
    p.add_argument("--repeats", type=int, default=2, help="timed decode runs (best; after one warm-up)")
    p.add_argument("--tiny", action="store_true", help="reduced sizes and encoder: a smoke run")
    p.add_argument(
        "--no-kernel", action="store_true", help="the PyTorch decode path only (LIIF_SR_KERNELS=0)"
    )
    p.add_argument(
        "--kernel-flags", default="", help="extra C flags for the kernel, e.g. -mno-avx512f (AVX2)"
    )
    args = p.parse_args(argv)
    threads, lib_of = torch.get_num_threads(), lmf_kernel._lib  # restored at the end (in-process callers)
    try:
        if args.kernel_flags:  # a build of the kernel with extra flags (e.g. its AVX2 path on an AVX-512 CPU)
            extra = tuple(args.kernel_flags.split())
            path = kernel_build.compile_kernel(lmf_kernel.NAME, flags=(*kernel_build.FLAGS, *extra))
            lib = lmf_kernel.bind(ctypes.CDLL(str(path)))
            lmf_kernel._lib = lambda: lib if kernels.enabled() else None
        with kernels_off() if args.no_kernel else contextlib.nullcontext():
            return _run(p, args)
    finally:
        torch.set_num_threads(threads)
        lmf_kernel._lib = lib_of


def _run(p: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    cases, heads = args.cases.split(","), args.heads.split(",")
    bad = [c for c in cases if c not in CASES] + [h for h in heads if h not in BASES]
    if bad:
        p.error(f"unknown cases/heads {bad}; known: {', '.join(CASES)}; {', '.join(BASES)}")
    load = _load()
    rows = [r for key in cases for r in bench_case(key, args, heads)]
    kind = "GPU wall" if args.device.startswith("cuda") else "process CPU"
    header = (
        f"torch {torch.__version__}, {args.device} ({_cpu()}), {args.threads} thread(s), {kind} seconds, load average "
        f"before {load}, after {_load()}; decode timed on ≤ {args.max_queries or 'all'} queries and scaled."
    )
    print(markdown(rows, header))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
