#!/usr/bin/env python
"""Training-throughput benchmark: the faithful fp32 reference vs the fast path (``make bench-train``).

For each model (paper sizes: EDSR-baseline-LIIF, RDN-LIIF; batch 16, 48² LR, 2304 queries, Adam 1e-4, L1):

* **model only** -- a step (forward, L1, backward, Adam) on batches already on the device, for each variant:
  ``fp32 ref`` (plain head, fp32: the official algorithm), ``fast head fp32`` (factorised head only),
  ``fast`` (fast head, bf16 autocast on CUDA, channels_last encoder, fused Adam on CUDA) and, with
  ``--compile``, ``fast+compile``;
* **end to end** -- the same steps fed by the data pipeline: DataLoader workers running the CPU reference
  sampler (PIL bicubic), or the device sampler (``data.sampler=device``);
* **data only** -- samples/s of each pipeline alone;
* **loss parity** (``--parity-steps N``) -- the fp32 reference and the fast path trained for N steps from
  the same initial weights on the same batches (pre-built by a seeded device sampler): their loss curves
  must agree within bf16 noise (mean over the last third within ``--parity-tol``, relative).

Each variant is built once per model (one compilation) and reused for the parity run (weights and Adam
state reset in place first), the model-only and the end-to-end timing. ``--json`` is rewritten after every
model, so a run killed by a timeout keeps what it finished.

It prints Markdown tables (device name, ms/step, samples/s, speed-up over the fp32 reference measured in
the same run, peak CUDA memory, host-device syncs per step) and can write them into ``BENCHMARKS.md``
(``--markdown``: the ``## Training`` section, one ``###`` subsection per device, other sections kept).

Import-light: torch and liif_sr only (no Lightning, no Hydra), so it runs on a bare GPU box::

    PYTHONPATH=src python scripts/bench_train.py                       # CUDA: edsr + rdn, full
    python scripts/bench_train.py --quick --models edsr                # CPU: a few minutes
    python scripts/bench_train.py --device cpu --models edsr-small,rdn-small --batch 2 --q 64 \
        --steps 1 --windows 1 --parity-steps 4                        # CPU smoke run: seconds
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the bench/ package beside this script
from bench.train_report import PREAMBLE, markdown, update_markdown  # noqa: E402
from bench.train_run import run  # noqa: E402
from bench.train_setup import MODELS, Row  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    cuda = torch.cuda.is_available()
    p.add_argument("--device", default="cuda" if cuda else "cpu")
    p.add_argument(
        "--models",
        default=None,
        help="comma list of edsr, rdn, edsr-small (default: edsr,rdn on CUDA, edsr on CPU)",
    )
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--inp", type=int, default=48, help="LR crop size")
    p.add_argument("--q", type=int, default=2304, help="queries per sample")
    p.add_argument("--scale-max", type=float, default=4.0)
    p.add_argument("--steps", type=int, default=None, help="timed steps per window (CUDA 25, CPU 3)")
    p.add_argument(
        "--windows", type=int, default=None, help="timing windows, median reported (CUDA 3, CPU 1)"
    )
    p.add_argument("--warmup", type=int, default=None, help="untimed steps first (CUDA 5, CPU 1)")
    p.add_argument("--compile-warmup", type=int, default=3, help="extra warm-up steps for compiled variants")
    p.add_argument("--workers", type=int, default=None, help="DataLoader workers (CUDA 8, CPU 2)")
    p.add_argument("--data-batches", type=int, default=None, help="batches timed for the data-only rows")
    p.add_argument("--compile", action="store_true", help="add the fast+compile variant")
    p.add_argument("--compile-mode", default=None, help="torch.compile mode (default, max-autotune, ...)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--cpu-bf16", action="store_true", help="bf16 autocast in the fast variant on the CPU too")
    p.add_argument("--no-e2e", action="store_true", help="skip the end-to-end rows")
    p.add_argument("--no-data", action="store_true", help="skip the data-only rows")
    p.add_argument("--quick", action="store_true", help="fewest steps (CPU smoke run)")
    p.add_argument(
        "--time-budget",
        type=float,
        default=0,
        help="seconds: once spent, skip the remaining phases (noted) instead of being killed by a timeout",
    )
    p.add_argument(
        "--parity-steps",
        type=int,
        default=0,
        help="loss-parity run: steps of fp32 ref vs the fast path (0: off)",
    )
    p.add_argument(
        "--parity-tol",
        type=float,
        default=0.02,
        help="parity tolerance: relative diff of the last-third means",
    )
    p.add_argument(
        "--data", nargs="*", default=None, help="HR image folders/files (default: scikit-image photos)"
    )
    p.add_argument("--json", type=Path, default=None, help="write all numbers as JSON")
    p.add_argument(
        "--markdown", type=Path, default=None, help="update the '## Training' section of this file"
    )
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    gpu = args.device.startswith("cuda")
    args.models = (args.models or ("edsr,rdn" if gpu else "edsr")).split(",")
    for m in args.models:
        if m not in MODELS:
            p.error(f"unknown model {m!r}; choose from {', '.join(MODELS)}")
    defaults = {"steps": 20 if gpu else 1, "windows": 5 if gpu else 3, "warmup": 5 if gpu else 1}
    if args.quick:
        defaults = {"steps": 5 if gpu else 1, "windows": 2, "warmup": 2 if gpu else 1}
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.workers is None:
        args.workers = 8 if gpu else 2
    if args.data_batches is None:
        args.data_batches = 50 if gpu else 5
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    def write_json(rows: list[Row], data_rows: list[Row], meta: dict, complete: bool) -> None:
        if args.json:
            doc = {
                "complete": complete,
                "meta": meta,
                "rows": [asdict(r) for r in rows],
                "data": [asdict(r) for r in data_rows],
            }
            tmp = args.json.with_suffix(".tmp")
            tmp.write_text(json.dumps(doc, indent=1))
            os.replace(tmp, args.json)

    def emit(rows: list[Row], meta: dict, parity: dict) -> None:
        write_json(rows, [], {**meta, "parity": parity}, complete=False)

    rows, data_rows, meta = run(args, emit)
    md = markdown(rows, data_rows, meta)
    print()
    print(md)
    write_json(rows, data_rows, meta, complete=True)
    if args.markdown:
        update_markdown(args.markdown, md, PREAMBLE)
        print(f"wrote the '## Training' section of {args.markdown}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
