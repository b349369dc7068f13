"""Safe, atomic archive extraction for ``liif-sr download`` (re-exported by :mod:`liif_sr.data.download.fetch`).

An archive is extracted into a temporary sibling folder after every member was checked (no absolute paths,
no ``..``, no special files), then moved into place with :func:`os.replace`; the ``<folder>.complete`` marker
holding the archive's sha256 is written last, so a folder without it is never treated as complete.
"""

from __future__ import annotations

import os
import posixpath
import re
import shutil
import tarfile
import zipfile
from pathlib import Path

from liif_sr.data.download.manifest import MARKER_SUFFIX, ArchiveSpec
from liif_sr.errors import UserError

__all__ = ["extract_archive", "is_complete", "marker_path"]


def _check_member(archive: Path, name: str, link: str | None = None) -> None:
    for value in filter(None, (name, link)):
        norm = value.replace("\\", "/")
        if norm.startswith("/") or re.match(r"[A-Za-z]:", norm) or ".." in norm.split("/"):
            raise UserError(f"refusing to extract {archive.name}: unsafe member path {value!r} in {name!r}")


def _unpack(archive: Path, into: Path) -> None:
    """Extract ``archive`` (zip or tar) into ``into`` after checking every member is safe."""
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                for name in zf.namelist():
                    _check_member(archive, name)
                zf.extractall(into)
            return
        with tarfile.open(archive) as tf:
            members = tf.getmembers()
            for m in members:
                if not (m.isfile() or m.isdir() or m.issym() or m.islnk()):
                    raise UserError(f"refusing to extract {archive.name}: special file {m.name!r}")
                _check_member(archive, m.name, m.linkname if (m.issym() or m.islnk()) else None)
            if hasattr(tarfile, "data_filter"):
                tf.extractall(into, members=members, filter="data")
            else:  # pragma: no cover - Python < 3.11.4, members were checked above
                tf.extractall(into, members=members)
    except (tarfile.TarError, zipfile.BadZipFile) as exc:
        raise UserError(
            f"cannot extract {archive}: not a valid zip or tar archive ({str(exc).splitlines()[0]})"
        ) from None


def marker_path(target: Path) -> Path:
    """The completion marker of an extracted folder: ``<folder>.complete`` next to it."""
    return target.with_name(target.name + MARKER_SUFFIX)


def is_complete(spec: ArchiveSpec, root: Path) -> bool:
    """Whether ``spec``'s folder is fully extracted (marker present and, if known, holding its sha256)."""
    target, marker = root / spec.target, marker_path(root / spec.target)
    if not (target.is_dir() and marker.is_file()):
        return False
    return spec.sha256 is None or marker.read_text().strip() == spec.sha256


def extract_archive(archive: Path, spec: ArchiveSpec, root: Path, sha256: str) -> Path:
    """Atomically extract ``archive`` into ``root / spec.target``; write the marker last; return the folder."""
    base, target = root / spec.extract_to, root / spec.target
    marker, tmp = marker_path(target), base / f".{spec.filename}.extracting"
    base.mkdir(parents=True, exist_ok=True)
    marker.unlink(missing_ok=True)
    shutil.rmtree(tmp, ignore_errors=True)
    if target.exists():
        print(f"removing incomplete {target}")
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        else:
            target.unlink()
    tmp.mkdir()
    try:
        _unpack(archive, tmp)
        inner = posixpath.relpath(spec.target, spec.extract_to or ".")
        if not (tmp / inner).is_dir():
            raise UserError(f"{archive.name} does not contain the expected folder {inner}/")
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp / inner, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    marker_tmp = marker.with_name(marker.name + ".tmp")
    marker_tmp.write_text(sha256 + "\n")
    os.replace(marker_tmp, marker)
    return target
