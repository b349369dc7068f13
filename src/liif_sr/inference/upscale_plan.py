"""``liif-sr upscale``'s plan: inputs → output files, every check on paths done before any work.

Rules (issue 18, class 1):

* an input is never an output: an output path that is (after ``..``, symlinks and hard links) one of the
  inputs is refused, with ``--overwrite`` and ``--skip-existing`` alike;
* an output folder is never scanned as input: a folder input that holds the output folder (``upscale d -o
  d/up --recursive``) skips it, with a note;
* ``--skip-existing`` skips an existing output only if it has the size this run would write; one of another
  size (an earlier run with another ``--scale``/``--size``) is refused rather than silently kept;
* dangling symlinks in input folders are counted in a note, as are files skipped for their names.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from liif_sr.errors import UserError

#: ``(h, w)`` of an input → ``(H, W)`` of its output (raises :class:`UserError` when there is none)
SizeRule = Callable[[tuple[int, int]], tuple[int, int]]


@dataclass
class Job:
    src: Path
    dst: Path


@dataclass
class Plan:
    jobs: list[Job]
    skipped_existing: int = 0
    notes: list[str] = field(default_factory=list)


def _visible(path: Path, root: Path) -> bool:
    return not any(part.startswith(".") for part in path.relative_to(root).parts)


def _real(path: Path) -> Path:
    """``path`` with ``..`` and every symlink resolved (also for a path that does not exist yet)."""
    return Path(os.path.realpath(path))


def _inside(path: Path, folder: Path | None) -> bool:
    """Whether ``path`` (resolved) is ``folder`` (resolved) or below it."""
    return folder is not None and (path == folder or folder in path.parents)


def _scan(folder: Path, recursive: bool, notes: list[str], exclude: Path | None = None) -> list[Path]:
    """Images in ``folder`` (like :func:`~liif_sr.data.images.scan_images`); what is left out is noted.

    ``exclude`` (resolved): the output folder, never scanned as input.
    """
    from liif_sr.data.images import IMAGE_EXTENSIONS

    def is_image(p: Path) -> bool:
        return p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()

    def excluded(p: Path) -> bool:
        return _inside(_real(p), exclude)

    if exclude is not None and _real(folder) == exclude:
        raise UserError(
            f"--output {folder} is the input folder: the outputs would mix with (or replace) the inputs "
            "and be read as inputs by the next run; write to another folder (e.g. a subfolder)"
        )
    entries = list(folder.rglob("*") if recursive else folder.iterdir())
    entries = [p for p in entries if _visible(p, folder)]
    if exclude is not None and any(excluded(p) for p in entries if p.is_dir()):
        notes.append(f"{folder}: not scanning the output folder {exclude} inside it")
        entries = [p for p in entries if not excluded(p)]
    dangling = [p for p in entries if p.is_symlink() and not p.exists()]
    if dangling:
        names = ", ".join(p.relative_to(folder).as_posix() for p in dangling[:5])
        more = f" and {len(dangling) - 5} more" if len(dangling) > 5 else ""
        notes.append(f"{folder}: skipped {len(dangling)} dangling symlink(s) (target missing): {names}{more}")
    if recursive:
        found = [p for p in entries if is_image(p)]
        if not found:
            raise UserError(
                f"no images found in {folder} or its subfolders (looked for {', '.join(IMAGE_EXTENSIONS)})"
            )
        return sorted(found, key=lambda p: p.relative_to(folder).as_posix())
    found = sorted((p for p in entries if is_image(p)), key=lambda p: p.name)
    subdirs = [p for p in entries if p.is_dir()]
    nested = sum(
        1 for d in subdirs for p in d.rglob("*") if _visible(p, d) and is_image(p) and not excluded(p)
    )
    others = [p for p in entries if p.is_file() and not is_image(p)]
    if not found:
        where = (
            f"; its {len(subdirs)} subfolder(s) hold {nested} image(s): pass --recursive" if nested else ""
        )
        raise UserError(f"no images found in {folder} (looked for {', '.join(IMAGE_EXTENSIONS)}){where}")
    if nested:
        notes.append(
            f"{folder}: skipped {len(subdirs)} subfolder(s) holding {nested} image(s) (pass --recursive to include them)"
        )
    if others:
        kinds = sorted({p.suffix.lower() or "(no suffix)" for p in others})
        notes.append(
            f"{folder}: skipped {len(others)} file(s) that are not images by name ({', '.join(kinds[:8])})"
        )
    return found


def _canonical(suffix: str) -> str:
    return {".jpeg": ".jpg", ".tiff": ".tif"}.get(suffix, suffix)


def _check_not_inputs(jobs: list[Job], sources: list[Path]) -> None:
    """Refuse any output that is one of the inputs (same path after resolving, or the same file)."""
    real_inputs = {_real(s): s for s in sources}
    files: dict[tuple[int, int], Path] = {}  # (device, inode) of every input: hard links are the same file
    for s in sources:
        with contextlib.suppress(OSError):
            st = s.stat()
            files.setdefault((st.st_dev, st.st_ino), s)
    for job in jobs:
        src = real_inputs.get(_real(job.dst))
        if src is None:
            with contextlib.suppress(OSError):
                st = job.dst.stat()
                src = files.get((st.st_dev, st.st_ino))
        if src is not None:
            raise UserError(
                f"--output {job.dst} is the input {src}: an input is never overwritten; "
                "write to another file or folder"
            )


def _existing_to_skip(jobs: list[Job], out_size: SizeRule | None) -> list[Job]:
    """The jobs whose existing output ``--skip-existing`` keeps; one of another size is refused."""
    from liif_sr.data.image_files import image_size

    existing = [j for j in jobs if j.dst.is_file() or j.dst.is_symlink()]
    if out_size is None:
        return existing
    stale: list[tuple[Job, tuple[int, int] | None, tuple[int, int]]] = []
    for job in existing:
        in_size = image_size(job.src)
        if in_size is None:  # an unreadable input: it fails (and is reported) if it is run at all
            continue
        try:
            want = out_size(in_size)
        except UserError:
            continue
        have = image_size(job.dst)
        if have != want:
            stale.append((job, have, want))
    if stale:
        job, have, want = stale[0]
        what = f"is {have[0]}x{have[1]}" if have else "is not a readable image"
        raise UserError(
            f"--skip-existing: {job.dst} {what} but this run makes {want[0]}x{want[1]} from {job.src} "
            f"({len(stale)} existing output(s) of another size: made with another --scale/--size?); "
            "pass --overwrite to redo them, or choose another output"
        )
    return existing


def plan(
    inputs: list[str],
    output: str,
    fmt: str | None,
    overwrite: bool,
    recursive: bool = False,
    skip_existing: bool = False,
    out_size: SizeRule | None = None,
) -> Plan:
    """Map inputs to output files; check every output path before any work is done.

    ``--output`` is a file when it has a suffix and is not an existing folder (the suffix must then be a
    supported format), else a folder; a missing folder is created only after every check passed.
    ``out_size`` (the run's size rule) lets ``--skip-existing`` check the size of what it keeps.
    """
    from liif_sr.data.images import IMAGE_EXTENSIONS, check_output_path

    notes: list[str] = []
    out = Path(output)
    suffix = out.suffix.lower()
    single_file = not out.is_dir() and (bool(suffix) or out.exists())
    out_folder = None if single_file else _real(out)
    sources: list[tuple[Path, Path]] = []  # (file, path of its output relative to the output folder)
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            sources += [(p, p.relative_to(path)) for p in _scan(path, recursive, notes, out_folder)]
        elif path.is_file() or path.is_symlink():
            sources.append((path, Path(path.name)))
        else:
            raise UserError(f"input not found: {path}")
    supported = ", ".join(IMAGE_EXTENSIONS)
    if single_file and suffix not in IMAGE_EXTENSIONS:
        if out.exists():
            raise UserError(f"--output {out} exists and is not a folder")
        raise UserError(
            f"--output {out}: unsupported output format {out.suffix!r} (supported: {supported}); "
            "for a new output folder give a name without a suffix"
        )
    if single_file and len(sources) != 1:
        raise UserError(
            f"--output {out} looks like a file but there are {len(sources)} inputs; give a folder"
        )
    if single_file:
        if fmt is not None and _canonical(suffix) != _canonical(f".{fmt}"):
            raise UserError(
                f"--format {fmt} does not match --output {out} (the file's suffix sets its format)"
            )
        jobs = [Job(sources[0][0], out)]
    else:
        fmt = fmt or "png"
        if not out.exists() and not out.parent.is_dir():
            raise UserError(f"output directory does not exist: {out.parent}")
        jobs, seen = [], {}
        for src, rel in sources:
            dst = out / rel.parent / f"{rel.stem}.{fmt}"
            if dst in seen:
                raise UserError(f"{src} and {seen[dst]} would both be written to {dst}")
            seen[dst] = src
            jobs.append(Job(src, dst))
    _check_not_inputs(jobs, [s for s, _ in sources])
    skipped = 0
    if skip_existing:
        keep = {id(j) for j in _existing_to_skip(jobs, out_size)}
        kept = [j for j in jobs if id(j) not in keep]
        skipped, jobs = len(jobs) - len(kept), kept
    created = not single_file and not out.exists()
    if created:
        check_output_path(out.parent / "x.png", overwrite=True)  # the folder it goes into is writable
        out.mkdir()
    try:
        for job in jobs:
            if single_file or job.dst.parent.is_dir():  # else a subfolder made at write time
                check_output_path(job.dst, overwrite)
    except UserError:
        if created:
            out.rmdir()
        raise
    return Plan(jobs, skipped, notes)
