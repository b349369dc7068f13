#!/usr/bin/env python
"""Inference benchmark: the official code (``official``, CPU; the test transcriptions ``tests/official_*.py``
with the same weights, its ``test.py`` flow), each head's reference path (``plain``, built ``fast=False``) and
its fast path (``fast=True``; fp32, bf16), for the LIIF, LTE and MetaSR heads and the EDSR-baseline, RDN and
SwinIR encoders, in the same run; every row also gives its decode time and the decode's fraction of the FLOP
floor (``scripts/bench/floor.py`` says how FLOPs are counted).

Prints a Markdown table for the current device (every row names it); ``--out BENCHMARKS.md`` appends it as
a dated section. Random weights at the paper sizes (EDSR-baseline-LIIF 1.57M, RDN-LIIF 22.3M parameters):
speed does not depend on the weights. Import-light (torch + liif_sr only) so it runs on a GPU box without
Hydra/Lightning.

    python scripts/bench_infer.py --quick                       # CPU: EDSR 100->800, one repeat
    python scripts/bench_infer.py --models lte,metasr,swinir --cases 100-800 --repeats 1
    python scripts/bench_infer.py --device cuda --large --batch 1,16 --out BENCHMARKS.md \
        --set5 ../shared/data/benchmark/Set5 --json bench_infer.json
    python scripts/bench_infer.py --tiny --cpu-bf16 --large --tile 16 --set5 DIR   # CPU smoke run: seconds

``--set5 DIR`` first scores a checkpoint (default: the shipped model) on Set5 with the given LR files
(``LR_bicubic/X{s}``, Y-PSNR, shave = scale, as ``liif-sr-eval``) in fp32 and in bf16 autocast: bf16 may
only become a default where the difference is <= 0.01 dB. ``--tiny`` shrinks every case to a few thousand output pixels
and uses reduced random models (the same code paths, for a CPU dry run). ``--json`` is rewritten after every row.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # run from a checkout without install
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the bench/ package beside this script
from bench.infer_cases import (  # noqa: E402
    CASES,
    FAST_CHUNK,
    MODELS,
    PLAIN_CHUNK,
    TINY_MODELS,
    device_name,
    fmt_bytes,
    tiny_case,
)
from bench.infer_report import add_section, markdown  # noqa: E402
from bench.infer_run import (  # noqa: E402
    run_case,
    set5_markdown,
    set5_precision,
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per path (median; one warm-up)")
    p.add_argument("--cases", default="100-800,256x4,512-4096", help=f"comma list of {','.join(CASES)}")
    p.add_argument("--models", default="edsr,rdn", help=f"comma list of {','.join(MODELS)}")
    p.add_argument(
        "--batch",
        default=None,
        help="images in the 100->800 case, or a comma list (GPU 16, CPU 1; e.g. 1,16)",
    )
    p.add_argument(
        "--chunk", type=int, default=FAST_CHUNK, help=f"queries per chunk, fast path ({FAST_CHUNK})"
    )
    p.add_argument("--quick", action="store_true", help="only EDSR 100->800, one repeat (for a CPU)")
    p.add_argument("--tiny", action="store_true", help="tiny cases and reduced models: a CPU dry run")
    p.add_argument("--large", action="store_true", help="add the tiled 3456x4608 -> 6912x9216 case (GPU)")
    p.add_argument("--tile", type=int, default=0, help="LR tile for the large case (default: auto)")
    p.add_argument("--tile-memory", type=float, default=8.0, help="GiB budget for the auto tile (large case)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--cpu-bf16", action="store_true", help="also time bf16 autocast on a CPU")
    p.add_argument(
        "--paths",
        default="official,plain,fast",
        help="comma list of the paths to time: official (CPU), plain (our reference), fast",
    )
    p.add_argument(
        "--no-official", action="store_true", help="skip the official code's row (CPU: run by default)"
    )
    p.add_argument("--set5", default=None, help="Set5 folder (HR, LR_bicubic/X{s}): fp32 vs bf16 PSNR first")
    p.add_argument("--set5-scales", default="2,4,8", help="scales of the Set5 check (given LR files)")
    p.add_argument("--checkpoint", default="edsr-baseline-liif", help="model of the Set5 check")
    p.add_argument("--json", type=Path, default=None, help="write every number as JSON (after every row)")
    p.add_argument("--out", default=None, help="append a dated Markdown section to this file")
    return p


def main(argv: list[str] | None = None) -> int:
    p = build_parser()
    args = p.parse_args(argv)

    if args.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(args.device)
    if args.quick:
        args.cases, args.models, args.repeats = "100-800", "edsr", 1
    try:
        batches = [int(b) for b in (args.batch or ("16" if device.type == "cuda" else "1")).split(",")]
        args.set5_scales = [int(x) for x in args.set5_scales.split(",")]
    except ValueError:
        p.error("--batch and --set5-scales take integers (comma lists)")
    args.paths = {x.strip() for x in args.paths.split(",") if x.strip()}
    if not args.paths or args.paths - {"official", "plain", "fast"}:
        p.error("--paths takes a comma list of official, plain, fast")
    if args.repeats < 1 or min(batches) < 1:
        p.error("--repeats and --batch must be >= 1")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    if args.large and "large" not in cases:
        cases.append("large")
    bad = [c for c in cases if c not in CASES] + [m for m in args.models.split(",") if m not in MODELS]
    if bad:
        p.error(f"unknown case/model {bad}")
    if "large" in cases and device.type != "cuda" and not args.tiny:
        print("skipping the large case: GPU only (or --tiny)", file=sys.stderr)
        cases.remove("large")
    if args.tiny:
        MODELS.update(TINY_MODELS)

    name = device_name(device)
    print(f"device: {name}", file=sys.stderr)
    doc: dict = {
        "complete": False,
        "device": name,
        "torch": torch.__version__,
        "tiny": args.tiny,
        "command": " ".join(["python scripts/bench_infer.py", *(sys.argv[1:] if argv is None else argv)]),
        "date": dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "set5": None,
        "rows": [],
    }

    def save() -> None:
        if args.json:
            tmp = args.json.with_suffix(".tmp")
            tmp.write_text(json.dumps(doc, indent=1))
            os.replace(tmp, args.json)

    if args.set5:
        doc["set5"] = set5_precision(args, device)
        save()
    rows: list[dict] = doc["rows"]
    for case_key in cases:
        case = tiny_case(case_key) if args.tiny else CASES[case_key]
        for model_key in args.models.split(","):
            for batch in batches if case.batched else [1]:
                rows.extend(run_case(case, model_key, args, device, batch))
                save()
    doc["complete"] = True
    save()
    table = markdown(rows)
    notes = [
        f"- Device: **{name}**; torch {torch.__version__}; repeats {args.repeats} (median)"
        + (", one warm-up run" if args.repeats > 1 or device.type == "cuda" else ", no warm-up"),
        "- `official` = the official code (test transcriptions `tests/official_*.py`, the same weights; "
        "`gen_feat` then `query_rgb` per 30000 queries as its `test.py`; CPU only); "
        f"`plain` = our reference algorithm (`fast=False`), query chunk {PLAIN_CHUNK}; "
        f'`fast` = our fast path (`fast=True`), chunk {args.chunk}; ours with `border="none"` (the papers\' '
        "protocol). Random weights, paper sizes"
        + (" (**--tiny: reduced models, tiny cases**)." if args.tiny else "."),
        "- `decode` = the time in `head.decode` (official: `query_rgb`); fraction of the FLOP floor = decode FLOPs "
        "(the MLP products per query of our fast path, 2 per multiply-add; `scripts/bench/floor.py`) / the warm "
        "fp32 GEMM rate of (1024, 256) @ (256, 256) blocks on the same worker pool, measured in the same run "
        "(best of the case: "
        + ", ".join(sorted({f"{r['gemm_gflops']:.0f}" for r in rows if r.get("gemm_gflops")}))
        + " GFLOP/s) / the decode time; `(CPU time)`: the same in process CPU seconds (GEMM "
        + ", ".join(
            sorted({f"{r['gemm_gflop_per_cpu_s']:.0f}" for r in rows if r.get("gemm_gflop_per_cpu_s")})
        )
        + " GFLOP per CPU second), steady when other processes load the machine.",
        f"- 100² → 800² uses a batch of {', '.join(map(str, batches))}; ms/image = batch time / batch. "
        "CPU s/image = process CPU time (all threads). Peak memory: `torch.cuda.max_memory_allocated`.",
    ]
    if device.type == "cpu":
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        notes.append(
            f"- CPU: load average during the run {load}; peak memory not tracked per path "
            f"(process max RSS {fmt_bytes(maxrss)})."
        )
    parts = [table, "", *notes]
    if doc["set5"]:
        parts += ["", set5_markdown(doc["set5"])]
    text = "\n".join(parts)
    print(text)
    if args.out:
        stamp = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
        add_section(Path(args.out), f"### {name} ({stamp})\n\n{text}\n")
        print(f"added a section to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
