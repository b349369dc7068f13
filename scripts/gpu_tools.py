#!/usr/bin/env python
"""Helpers of ``scripts/gpu_run.sh`` (issue #13): ``check``, ``plan``, ``report`` and ``pack``.

* ``check OUT [--dry-run]``: imports everything the run needs (from the carried ``.gpu/py`` where the box
  lacks it), loads the shipped model, checks the carried data and (unless ``--dry-run``) CUDA; writes
  ``OUT/env.json``; exits 1 within seconds with one line per problem.
* ``plan OUT --remaining S [--dry-run]``: the fine-tuning budget from the seconds left: the step's time
  limits, Lightning's ``max_time`` and a step count for the cosine schedule from the EDSR fast-path step time
  measured by ``bench_train.py`` in the same run (``OUT/bench_train.json``); writes ``OUT/finetune_plan.json``
  and prints ``KEY=value`` lines for the shell.
* ``report OUT``: ``OUT/summary.{json,md}`` from whatever the steps have written so far (the issue's
  targets, met or not, and the fine-tuned model against the shipped one); run after every step.
* ``pack OUT``: everything but the summary, ``BENCHMARKS.md`` and the weights into ``OUT/results.tar.gz``,
  so that the device tool's 8 returned files hold the whole run (run last).

Standard library only (``check`` aside), so ``report`` works even when the environment is broken.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the bench/ package beside this script
from bench.gpu_check import check  # noqa: E402
from bench.gpu_pack import pack  # noqa: E402
from bench.gpu_plan import plan  # noqa: E402
from bench.gpu_report import report  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check")
    c.add_argument("out", type=Path)
    c.add_argument("--dry-run", action="store_true")
    q = sub.add_parser("plan")
    q.add_argument("out", type=Path)
    q.add_argument("--remaining", type=float, required=True)
    q.add_argument("--dry-run", action="store_true")
    r = sub.add_parser("report")
    r.add_argument("out", type=Path)
    k = sub.add_parser("pack")
    k.add_argument("out", type=Path)
    args = p.parse_args(argv)
    if args.cmd == "check":
        return check(args.out, args.dry_run)
    if args.cmd == "plan":
        return plan(args.out, args.remaining, args.dry_run)
    if args.cmd == "pack":
        return pack(args.out)
    return report(args.out)


if __name__ == "__main__":
    raise SystemExit(main())
