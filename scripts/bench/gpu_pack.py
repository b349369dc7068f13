"""``gpu_tools.py pack OUT``: fit ``OUT`` into what the device tool brings back (at most 8 files).

The summary, the copy of ``BENCHMARKS.md`` and the fine-tuned weights stay as they are; every other file
(logs, JSON, the evaluation folder) goes into one ``results.tar.gz``, whose members keep their paths
relative to ``OUT``. Written atomically; the originals are removed only once the archive is complete.
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

ARCHIVE = "results.tar.gz"
KEEP = ("summary.md", "summary.json", "BENCHMARKS.md")


def _kept(path: Path, out: Path) -> bool:
    return path.parent == out and (path.name in KEEP or path.suffix == ".safetensors" or path.name == ARCHIVE)


def pack(out: Path) -> int:
    """Move every file of ``out`` but the kept ones into ``out/results.tar.gz``; 0 on success."""
    files = sorted(p for p in out.rglob("*") if p.is_file() or p.is_symlink())
    rest = [p for p in files if not _kept(p, out)]
    if not rest:
        return 0
    tmp = out / f".{ARCHIVE}.tmp"
    with tarfile.open(tmp, "w:gz") as tar:
        if (out / ARCHIVE).exists():  # an earlier pack of the same folder: keep its members
            with tarfile.open(out / ARCHIVE) as old:
                for member in old.getmembers():
                    tar.addfile(member, old.extractfile(member))
        for path in rest:
            tar.add(path, arcname=str(path.relative_to(out)), recursive=False)
    os.replace(tmp, out / ARCHIVE)
    for path in rest:
        path.unlink()
    for folder in sorted((p for p in out.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        if not any(folder.iterdir()):
            folder.rmdir()
    left = sorted(p.name for p in out.iterdir())
    print(f"gpu_tools pack: {len(rest)} file(s) into {ARCHIVE}; {out} holds {len(left)}: {', '.join(left)}")
    return 0
