"""``gpu_tools.py pack``: a GPU run's output folder fits the device tool's 8 returned files, losing nothing."""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

RUN = {
    "summary.md": "# GPU run summary\n",
    "summary.json": "{}",
    "BENCHMARKS.md": "# Benchmarks\n",
    "finetuned-edsr-baseline-liif.safetensors": "weights",
    "bench_train.json": "{}",
    "bench_train.log": "train",
    "bench_infer.json": "{}",
    "bench_infer.log": "infer",
    "bench_lmf.log": "lmf",
    "check.log": "ok",
    "env.json": "{}",
    "run.log": "log",
    "steps.tsv": "check\t0",
    "eval/results.md": "| x |",
    "eval/.hydra/config.yaml": "a: 1",
}


def _pack(out: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(ROOT / "scripts/gpu_tools.py"), "pack", str(out)]
    return subprocess.run(cmd, capture_output=True, text=True, check=True)


def test_pack_keeps_summary_and_weights_and_archives_the_rest(tmp_path):
    for name, text in RUN.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert len([p for p in tmp_path.rglob("*") if p.is_file()]) > 8  # what the device tool would cut
    _pack(tmp_path)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(
        [
            "summary.md",
            "summary.json",
            "BENCHMARKS.md",
            "results.tar.gz",
            *[n for n in RUN if n.endswith(".safetensors")],
        ]
    )
    with tarfile.open(tmp_path / "results.tar.gz") as tar:
        members = {m.name: tar.extractfile(m).read().decode() for m in tar.getmembers() if m.isfile()}
    kept = {"summary.md", "summary.json", "BENCHMARKS.md", "finetuned-edsr-baseline-liif.safetensors"}
    assert members == {n: t for n, t in RUN.items() if n not in kept}


def test_pack_twice_keeps_the_first_archive(tmp_path):
    (tmp_path / "a.log").write_text("first")
    _pack(tmp_path)
    (tmp_path / "b.log").write_text("second")
    _pack(tmp_path)
    with tarfile.open(tmp_path / "results.tar.gz") as tar:
        assert sorted(m.name for m in tar.getmembers()) == ["a.log", "b.log"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.tar.gz"]
