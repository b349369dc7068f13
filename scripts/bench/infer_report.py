"""``bench_infer.py``: the Markdown table and the dated ``## Inference`` section of ``BENCHMARKS.md``."""

from __future__ import annotations

from pathlib import Path

from bench.infer_cases import fmt_bytes


def _ratio(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f}×"


def _ms(x: float) -> str:
    """Milliseconds: whole from 100 up, two decimals below (a fast decode of a small case does not print 0)."""
    return f"{x:,.0f}" if x >= 100 else f"{x:.2f}"


def table_row(r: dict) -> list[str]:
    head = [r.get("device", "–"), r["case"], r["model"], r["path"]]
    if r.get("oom"):
        return [*head, "OOM"] + [""] * (len(HEADER) - len(head) - 1)
    diff = r.get("max_abs_diff_vs_ref", r.get("max_abs_diff_vs_plain"))
    floor, floor_cpu = r.get("floor_fraction"), r.get("floor_fraction_cpu")
    return [
        *head,
        _ms(r["ms_per_image"]),
        f"{r['cpu_s_per_image']:,.1f}",
        f"{r['output_mp_per_s']:.3g}",
        fmt_bytes(r["peak_bytes"]),
        _ratio(r.get("speedup_vs_official")),
        _ratio(r["speedup_vs_plain"]),
        "–" if r.get("decode_ms_per_image") is None else _ms(r["decode_ms_per_image"]),
        "–" if floor is None else f"{floor:.0%}",
        "–" if floor_cpu is None else f"{floor_cpu:.0%}",
        "ref" if diff is None else f"{diff:.1e}",
    ]


HEADER = [
    "device",
    "case",
    "model",
    "path",
    "ms/image",
    "CPU s/image",
    "output MP/s",
    "peak memory",
    "speed-up vs official",
    "speed-up vs plain",
    "decode ms/image",
    "decode: fraction of the FLOP floor (wall)",
    "(CPU time)",
    "max abs diff vs ref",
]


def markdown(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(table_row(r)) + " |" for r in rows]
    return "\n".join(lines)


INFERENCE_HEADER = "## Inference"


def add_section(path: Path, section: str) -> None:
    """Insert ``section`` at the end of the ``## Inference`` part of ``path`` (other parts, e.g. training
    benchmarks, may follow it); create that part, or the file, when missing."""
    lines = path.read_text().splitlines(keepends=True) if path.exists() else []
    start = next((i for i, line in enumerate(lines) if line.startswith(INFERENCE_HEADER)), None)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    if start is None:
        if not lines:
            lines = ["# Benchmarks\n"]
        lines += ["\n", f"{INFERENCE_HEADER} (`make bench-infer`, `scripts/bench_infer.py`)\n"]
        start = len(lines) - 1
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    while end > start + 1 and not lines[end - 1].strip():
        end -= 1
    block = ["\n", section] + (["\n"] if end < len(lines) and lines[end].strip() else [])
    if lines and not lines[end - 1].endswith("\n"):
        lines[end - 1] += "\n"
    path.write_text("".join(lines[:end] + block + lines[end:]))
