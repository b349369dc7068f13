"""Results of ``liif-sr-eval``: per-image records, their means, and the report files.

:class:`EvalResults` collects one record per (model, set, scale, image); the reported value of a table cell
is the **mean of the per-image values** (the SR-table convention). Writers:

* :func:`format_markdown` / ``results.md``: rows = models, columns = set × scale, cells ``PSNR / SSIM``;
* ``results.csv``: one row per (model, set, scale) with the means;
* ``results.json``: run metadata, the means and every per-image number;
* ``psnr_vs_scale.png``: one panel per set, one curve per model (bicubic dashed), matplotlib Agg;
* the same numbers to Lightning loggers: :func:`liif_sr.evaluation.eval_logging.log_results`.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "BICUBIC",
    "Column",
    "EvalResults",
    "format_markdown",
    "plot_psnr_vs_scale",
    "write_reports",
]

log = logging.getLogger(__name__)
#: name of the MATLAB-bicubic reference row
BICUBIC = "bicubic"
#: column marks for generated LR, by resampler
_MARKS = {"pil": "*", "matlab": "†", "torch_antialias": "‡"}
_MARK_TEXT = {
    "pil": "LR generated from the HR with PIL bicubic (official LIIF code, paper protocol for x6+)",
    "matlab": "LR generated from the HR with MATLAB bicubic (same as `liif-sr make-lr`)",
    "torch_antialias": "LR generated from the HR with torch antialiased bicubic",
}


@dataclass(frozen=True)
class Column:
    """One (set, scale) column: where its LR comes from and how it is scored."""

    set: str
    scale: int | float
    lr: str  # "given" or the resampler that generated the LR
    protocol: str  # "benchmark" (Y, shave = scale) | "div2k" (RGB, shave = scale + 6)
    shave: int
    images: int

    @property
    def label(self) -> str:
        return f"{self.set} ×{self.scale}{_MARKS.get(self.lr, '')}"


def _mean(values: Sequence[float | None]) -> float | None:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    return sum(vals) / len(vals) if vals else None


@dataclass
class EvalResults:
    """Per-image metrics of every model on every column, plus run metadata."""

    models: list[str] = field(default_factory=list)
    columns: list[Column] = field(default_factory=list)
    per_image: list[dict[str, Any]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    #: model row → protocol note (encoder-head, cell clipping) printed under the table
    model_notes: dict[str, str] = field(default_factory=dict)
    #: model row → ``{"params", "ms_per_step", "train_steps", "summary"}``; the side table "Model | params |
    #: ms/step" is printed when a row's training run left a ``summary.json``
    model_info: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: row name → why the sweep job failed (no numbers; marked rows at the end of the table)
    failed: dict[str, str] = field(default_factory=dict)

    def add(self, model: str, column: Column, image: str, psnr: float, ssim: float | None) -> None:
        """Record one image's PSNR (dB) and SSIM (None when not computed)."""
        self.per_image.append(
            {
                "model": model,
                "set": column.set,
                "scale": column.scale,
                "image": image,
                "psnr": psnr,
                "ssim": ssim,
            }
        )

    def summary(self) -> list[dict[str, Any]]:
        """One row per (model, column): mean PSNR and SSIM over the images, in model then column order."""
        groups: dict[tuple[str, str, int | float], list[dict[str, Any]]] = {}
        for r in self.per_image:
            groups.setdefault((r["model"], r["set"], r["scale"]), []).append(r)
        rows = []
        for model in self.models:
            for col in self.columns:
                recs = groups.get((model, col.set, col.scale), [])
                if not recs:
                    continue
                rows.append(
                    {
                        "model": model,
                        "set": col.set,
                        "scale": col.scale,
                        "lr": col.lr,
                        "protocol": col.protocol,
                        "psnr": _mean([r["psnr"] for r in recs]),
                        "ssim": _mean([r["ssim"] for r in recs]),
                        "images": len(recs),
                    }
                )
        return rows

    def mean(self, model: str, set_name: str, scale: float) -> float | None:
        """Mean PSNR of ``model`` on ``set_name`` at ``scale`` (None if not evaluated)."""
        return next(
            (
                r["psnr"]
                for r in self.summary()
                if (r["model"], r["set"], r["scale"]) == (model, set_name, scale)
            ),
            None,
        )


def format_markdown(results: EvalResults) -> str:
    """Markdown table (rows = models, columns = set × scale, cells ``PSNR / SSIM``; best PSNR in bold)."""
    cells = {(r["model"], r["set"], r["scale"]): r for r in results.summary()}
    best = {}
    for col in results.columns:
        vals = [
            cells[(m, col.set, col.scale)]["psnr"] for m in results.models if (m, col.set, col.scale) in cells
        ]
        best[(col.set, col.scale)] = max((v for v in vals if v is not None), default=None)
    lines = [
        "| Model | " + " | ".join(c.label for c in results.columns) + " |",
        "|---|" + "---:|" * len(results.columns),
    ]
    for model in results.models:
        row = []
        for col in results.columns:
            r = cells.get((model, col.set, col.scale))
            if r is None or r["psnr"] is None:
                row.append("–")
                continue
            text = f"{r['psnr']:.2f}"
            if len(results.models) > 1 and r["psnr"] == best[(col.set, col.scale)]:
                text = f"**{text}**"
            row.append(text + (f" / {r['ssim']:.4f}" if r["ssim"] is not None else ""))
        lines.append(f"| {model} | " + " | ".join(row) + " |")
    failed_cells = " | ".join(["failed"] * len(results.columns))
    lines += [f"| {model} | {failed_cells} |" for model in results.failed]
    with_ssim = any(r["ssim"] is not None for r in cells.values())
    notes = [
        "",
        ("PSNR (dB) / SSIM" if with_ssim else "PSNR (dB)")
        + ", mean over images. Benchmark sets: Y channel (MATLAB rgb2ycbcr), shave = scale; "
        + "DIV2K: RGB, shave = scale + 6. "
        + ("SSIM: MATLAB convention on Y with the same shave. " if with_ssim else "")
        + "Unmarked columns use the given LR files.",
    ]
    notes += [
        f"{mark} {_MARK_TEXT[k]}" for k, mark in _MARKS.items() if any(c.lr == k for c in results.columns)
    ]
    first_k = results.meta.get("first_k")
    if first_k:
        notes.append(f"Only the first {first_k} images of every set (first_k={first_k}): not comparable with "
                     "published tables.")  # fmt: skip
    if results.failed:
        notes.append(
            "Failed jobs (not evaluated): " + "; ".join(f"{m}: {r}" for m, r in results.failed.items())
        )
    if results.model_notes:
        notes.append("Rows: " + "; ".join(f"{m} = {n}" for m, n in results.model_notes.items()) + ".")
    return "\n".join(lines + notes + _info_table(results)) + "\n"


def _info_table(results: EvalResults) -> list[str]:
    """The side table ``Model | params | ms/step | train steps`` (from the runs' ``summary.json``), or []."""
    info = results.model_info
    if not any(i.get("summary") for i in info.values()):
        return []

    def cell(value: Any, fmt: str) -> str:
        return "–" if value is None else format(value, fmt)

    lines = ["", "| Model | params | ms/step | steps timed | train steps |", "|---|---:|---:|---:|---:|"]
    for model in results.models:
        if model in info:
            i = info[model]
            row = [
                cell(i.get("params"), ","),
                cell(i.get("ms_per_step"), ".1f"),
                cell(i.get("steps_timed"), "d"),
                cell(i.get("train_steps"), "d"),
            ]
            lines.append(f"| {model} | " + " | ".join(row) + " |")
    lines += [
        "",
        "params: the network's parameters; ms/step: median wall time of one training step after warm-up, "
        "measured during that run (summary.json, `train/ms_per_step`; – when no step followed the warm-up); "
        "steps timed: the steps that median is over (under 20: not a reliable speed); train steps: optimizer "
        "steps trained.",
    ]
    return lines


def write_csv(results: EvalResults, path: Path) -> Path:
    """``model,set,scale,lr,protocol,psnr,ssim,images``: one row per (model, set, scale)."""
    fields = ["model", "set", "scale", "lr", "protocol", "psnr", "ssim", "images"]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for row in results.summary():
            writer.writerow({k: ("" if row[k] is None else row[k]) for k in fields})
    return path


def write_json(results: EvalResults, path: Path) -> Path:
    """Metadata, column descriptions, means and every per-image number."""
    doc = {
        "meta": results.meta,
        "models": results.models,
        "columns": [asdict(c) for c in results.columns],
        "results": results.summary(),
        "model_info": results.model_info,
        "per_image": results.per_image,
    }
    path.write_text(json.dumps(doc, indent=1, default=str, allow_nan=True) + "\n")
    return path


def plot_psnr_vs_scale(results: EvalResults, path: Path) -> Path | None:
    """One panel per set: PSNR against scale, one curve per model (bicubic dashed). None if nothing to plot."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    sets = list(dict.fromkeys(c.set for c in results.columns))
    if not sets:
        return None
    rows = results.summary()
    n_rows = len(results.models)
    fig, axes = plt.subplots(
        1, len(sets), figsize=(4.2 * len(sets), 3.6 + 0.25 * n_rows), squeeze=False, layout="constrained"
    )
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, set_name in zip(axes[0], sets):
        for i, model in enumerate(results.models):
            pts = sorted(
                (r["scale"], r["psnr"]) for r in rows if r["model"] == model and r["set"] == set_name
            )
            pts = [p for p in pts if p[1] is not None]
            if not pts:
                continue
            style = (
                {"color": "0.35", "linestyle": "--"}
                if model == BICUBIC
                else {"color": colors[i % len(colors)]}
            )
            ax.plot(*zip(*pts), marker="o", markersize=4, label=model, **style)
        ax.set_xticks(sorted({c.scale for c in results.columns if c.set == set_name}))
        ax.set_title(set_name)
        ax.set_xlabel("scale")
        ax.set_ylabel("PSNR (dB)")
        ax.grid(True, alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:  # below the panels: never over a curve
        fig.legend(handles, labels, loc="outside lower center", fontsize="small", ncol=min(3, len(labels)))
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_reports(results: EvalResults, out_dir: Path, plot: bool = True) -> dict[str, Path]:
    """Write ``results.md``, ``results.csv``, ``results.json`` (and ``psnr_vs_scale.png``) into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"md": out_dir / "results.md"}
    paths["md"].write_text(format_markdown(results))
    paths["csv"] = write_csv(results, out_dir / "results.csv")
    paths["json"] = write_json(results, out_dir / "results.json")
    if plot:
        png = plot_psnr_vs_scale(results, out_dir / "psnr_vs_scale.png")
        if png is not None:
            paths["png"] = png
    return paths
