"""Checkpoint integrity: a ``<name>.sha256`` sidecar beside every checkpoint, checked before it is loaded.

:class:`~liif_sr.training.checkpoint_io.AtomicCheckpointIO` writes the sidecar with each checkpoint
(``sha256sum -c last.ckpt.sha256`` checks it by hand). The order makes a kill at any moment safe: the new
sidecar names both the new and the previous digest before the checkpoint is renamed into place, and only
the new one afterwards. :func:`check_integrity` refuses a file whose digest is in neither (flipped bytes, a partial
copy) with one line that names the newest intact checkpoint of the folder.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from liif_sr.errors import CheckpointError

SUFFIX = ".sha256"


def sidecar(path: str | os.PathLike[str]) -> Path:
    """``<path>.sha256``."""
    path = Path(path)
    return path.with_name(path.name + SUFFIX)


def digest(path: str | os.PathLike[str]) -> str:
    """The sha256 of a file (hex), computed once per version of the file in a process
    (:mod:`liif_sr.file_cache`: the resume plan, the preflight and the task check the same checkpoints)."""
    from liif_sr.file_cache import remembered

    return remembered("sha256", path, lambda: file_sha256(path))


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The sha256 of the file's bytes as they are now (hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def recorded(path: str | os.PathLike[str]) -> set[str] | None:
    """The digests the sidecar of ``path`` accepts, or None without a (readable) sidecar."""
    side = sidecar(path)
    try:
        lines = side.read_text().splitlines()
    except OSError:
        return None
    found = {line.split()[0] for line in lines if line.strip()}
    return found or None


def write_sidecar(path: Path, digests: list[str]) -> None:
    """Write ``<path>.sha256`` atomically: one ``<digest>  <name>`` line per digest (``sha256sum`` format)."""
    side = sidecar(path)
    tmp = side.with_name(f".{side.name}.{os.getpid()}.tmp")
    tmp.write_text("".join(f"{d}  {path.name}\n" for d in dict.fromkeys(digests)))
    os.replace(tmp, side)


def is_intact(path: str | os.PathLike[str]) -> bool | None:
    """True / False when ``path`` has a sidecar (digest matches or not), None without one."""
    accepted = recorded(path)
    if accepted is None:
        return None
    return digest(path) in accepted


def newest_intact(folder: Path, exclude: Path | None = None) -> Path | None:
    """The most recently written checkpoint of ``folder`` whose sidecar matches (``exclude`` left out)."""
    candidates = sorted(folder.glob("*.ckpt"), key=lambda p: p.stat().st_mtime, reverse=True)
    for candidate in candidates:
        if exclude is not None and candidate.resolve() == exclude.resolve():
            continue
        if is_intact(candidate):
            return candidate
    return None


def check_integrity(path: str | os.PathLike[str], what: str) -> None:
    """Refuse a checkpoint whose bytes differ from its sidecar (files without a sidecar pass: older runs)."""
    path = Path(path)
    if is_intact(path) is not False:
        return
    intact = newest_intact(path.parent, exclude=path)
    advice = (
        f"the newest intact checkpoint is {intact}: continue from it with ckpt_path={intact} (a new run folder)"
        if intact is not None
        else "no intact checkpoint is left in that folder"
    )
    raise CheckpointError(
        f"{what}: {path} is damaged (its sha256 differs from {sidecar(path).name}, written with it); {advice}"
    )


def remove_stale_temps(folder: Path) -> list[Path]:
    """Remove the temp files our atomic writers leave when their process is killed mid-write
    (``.<name>.<pid>.tmp``, ``.<name>.sha256.<pid>.tmp``) from a checkpoint folder; the removed paths.

    Call it only while holding the run's lock (no live writer of ours in that folder). A save sweeps the temp
    files of the checkpoint it writes; this covers a run resumed with nothing left to save.
    """
    if not folder.is_dir():
        return []
    stale = [p for p in folder.glob(".*.tmp") if p.is_file() and p.name.split(".")[-2].isdigit()]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale
