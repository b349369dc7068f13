"""``liif-sr download div2k|benchmark [--root DIR]``: fetch, verify and extract the training/benchmark data.

Archives are downloaded to ``<root>/downloads/<file>.part`` (an interrupted transfer is resumed with an
HTTP ``Range`` request), checked against the size and sha256 of :mod:`liif_sr.data.download.manifest`, then
extracted into a temporary sibling folder and moved into place with :func:`os.replace`. A
``<folder>.complete`` marker holding the archive's sha256 is written last: a folder without it is never
treated as complete and is removed and re-extracted on the next run. Standard library + tqdm only.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import http.client
import os
import re
import time
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from liif_sr.data.download.extract import extract_archive, is_complete, marker_path
from liif_sr.data.download.manifest import (
    BASE_URL_ENV,
    DATA_DIR_ENV,
    ArchiveSpec,
    DatasetSpec,
    dataset_root,
    load_manifest,
    lookup,
    require_dataset,
    resolve_root,
    with_base_url,
)
from liif_sr.errors import UserError

__all__ = [
    "dataset_root",
    "download_dataset",
    "extract_archive",
    "fetch",
    "is_complete",
    "marker_path",
    "require_dataset",
    "run",
]

CHUNK = 1 << 20
USER_AGENT = "liif-sr-download/0.1 (+python-urllib)"


class _Interrupted(Exception):
    """The transfer stopped early or the connection failed; the ``.part`` file can be resumed."""


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _transfer(url: str, part: Path, size: int | None, timeout: float) -> None:
    """Append the rest of ``url`` to ``part`` (resuming with ``Range``); raise :class:`_Interrupted` if short."""
    offset = part.stat().st_size if part.exists() else 0
    if size is not None and offset > size:
        part.unlink()
        offset = 0
    if size is not None and offset == size:
        return
    headers = {"User-Agent": USER_AGENT, **({"Range": f"bytes={offset}-"} if offset else {})}
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # the partial file does not fit the server's file: start over
            part.unlink()
            return _transfer(url, part, size, timeout)
        if exc.code >= 500 or exc.code in (408, 429):
            raise _Interrupted(f"HTTP {exc.code} {exc.reason}") from None
        raise UserError(f"cannot download {url}: HTTP {exc.code} {exc.reason} (check --base-url)") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        raise _Interrupted(str(getattr(exc, "reason", exc) or type(exc).__name__)) from None
    with response:
        if offset and response.status == 206:
            match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) != offset:
                part.unlink()
                raise _Interrupted("server sent an unexpected Content-Range; restarting")
        elif offset:
            print(f"{part.name}: server ignored the resume request, restarting from 0")
            offset = 0
        length = response.headers.get("Content-Length")
        expected = offset + int(length) if length and length.isdigit() else size
        with (
            part.open("ab" if offset else "wb") as out,
            tqdm(total=size or expected, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
                 desc=part.name[: -len(".part")], disable=None, leave=False) as bar,
        ):  # fmt: skip
            try:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    bar.update(len(chunk))
            except (OSError, http.client.HTTPException) as exc:
                raise _Interrupted(str(exc) or type(exc).__name__) from None
    if expected is not None and part.stat().st_size < expected:
        raise _Interrupted(f"connection closed after {part.stat().st_size} of {expected} bytes")


def fetch(
    url: str, dest: Path, *, size: int | None, sha256: str | None, retries: int = 2, timeout: float = 60.0
) -> str:
    """Download ``url`` to ``dest`` (via ``dest.part``, resumable) and verify it; return its sha256.

    A checksum/size mismatch deletes the partial file and retries (at most ``retries`` times); so does a
    failed connection that made no progress. Raises :class:`UserError` with a one-line reason at the end.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    if dest.exists() and (size is None or dest.stat().st_size == size):
        sha = file_sha256(dest)
        if sha256 in (None, sha):
            return sha
    dest.unlink(missing_ok=True)
    failures, problem, network = 0, "", False
    while failures <= retries:
        before = part.stat().st_size if part.exists() else 0
        try:
            _transfer(url, part, size, timeout)
        except _Interrupted as exc:
            problem, network = f"network error: {exc}", True
            progressed = part.exists() and part.stat().st_size > before
            failures += 0 if progressed else 1
            what = "resuming" if progressed else "retrying" if failures <= retries else "giving up"
            print(f"{dest.name}: {problem}; {what}")
            if not progressed and failures <= retries:
                time.sleep(min(2.0**failures, 10.0))
            continue
        network = False
        got = part.stat().st_size
        actual = file_sha256(part) if size is None or got == size else None
        if actual is not None and sha256 in (None, actual):
            os.replace(part, dest)
            if sha256 is None:
                print(f"{dest.name}: no published sha256, could not verify the hash (size only)")
            return actual
        part.unlink()
        failures += 1
        if actual is None:
            problem = f"wrong size for {dest.name}: expected {size} bytes, got {got}"
        else:
            problem = f"checksum mismatch for {dest.name}: expected sha256 {sha256}, got {actual}"
        print(f"{dest.name}: {problem}; {'retrying' if failures <= retries else 'giving up'}")
    if network:
        raise UserError(
            f"could not download {url} ({problem}); re-run the same command to resume, "
            f"or pass --base-url (or ${BASE_URL_ENV}) to use a mirror"
        )
    raise UserError(f"{problem} ({failures} failed attempts; partial file deleted)")


def download_dataset(
    spec: DatasetSpec,
    root: Path,
    *,
    base_url: str | None = None,
    retries: int = 2,
    timeout: float = 60.0,
    keep_archives: bool = False,
    only: list[str] | None = None,
) -> Path:
    """Download and extract every (or every ``only``-matching) archive of ``spec``; return its folder."""
    files = select_files(spec, only)
    todo = [f for f in files if not is_complete(f, root)]
    if not todo:
        print(f"{spec.title}: already complete in {root / spec.folder}")
        return root / spec.folder
    downloads = root / "downloads"
    for i, item in enumerate(todo, 1):
        url = with_base_url(item.url, base_url)
        print(f"[{i}/{len(todo)}] {item.filename} <- {url}")
        archive = downloads / item.filename
        sha = fetch(url, archive, size=item.size, sha256=item.sha256, retries=retries, timeout=timeout)
        folder = extract_archive(archive, item, root, sha)
        print(f"[{i}/{len(todo)}] extracted {folder}")
        if not keep_archives:
            archive.unlink()
    if downloads.is_dir() and not any(downloads.iterdir()):
        downloads.rmdir()
    print(f"{spec.title}: complete in {root / spec.folder}")
    return root / spec.folder


def select_files(spec: DatasetSpec, only: list[str] | None) -> list[ArchiveSpec]:
    """The archives of ``spec`` that ``--only`` globs select (all without ``only``); none is refused."""
    files = [f for f in spec.files if not only or any(fnmatch.fnmatch(f.filename, p) for p in only)]
    if not files:
        names = ", ".join(f.filename for f in spec.files)
        raise UserError(f"--only {' '.join(only or [])} matches no file of {spec.name} ({names})")
    return files


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``download`` sub-command."""
    p = subparsers.add_parser(
        "download",
        help="download and extract DIV2K or the SR benchmark sets",
        description="Download, verify (size + sha256) and extract datasets; re-running resumes.",
    )
    p.add_argument("datasets", nargs="+", metavar="DATASET", help="div2k and/or benchmark")
    p.add_argument("--root", default=None, help=f"data root (default: ${DATA_DIR_ENV} or ./data)")
    p.add_argument("--base-url", default=None, help=f"replace the URLs' scheme+host+dir (or ${BASE_URL_ENV})")
    p.add_argument("--manifest", default=None, metavar="JSON", help="custom manifest file")
    p.add_argument("--only", action="append", metavar="GLOB", help="only archives whose file name matches")
    p.add_argument(
        "--retries", type=int, default=2, help="retries after a bad download or failed connection (default 2)"
    )
    p.add_argument("--timeout", type=float, default=60.0, help="connection timeout in seconds (default 60)")
    p.add_argument("--keep-archives", action="store_true", help="keep the archives in <root>/downloads")
    p.set_defaults(func=run)


def check_base_url(value: str, option: str) -> None:
    """Refuse a base URL that is not ``http(s)://host[/dir]`` (one line, before anything is written)."""
    from urllib.parse import urlsplit

    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UserError(f"{option} {value!r}: expected an http:// or https:// URL such as https://host/dir")


def prepare_root(root: Path, option: str) -> None:
    """Create the data root (with parents) or refuse, in one line, a root that cannot be created or written."""
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{option} {root}: cannot create the data folder ({exc.strerror or exc})") from None
    if not os.access(root, os.W_OK | os.X_OK):
        raise UserError(f"{option} {root}: the data folder is not writable")


def run(args: argparse.Namespace) -> int:
    """Entry point of ``liif-sr download``."""
    if args.retries < 0 or args.timeout <= 0:
        raise UserError("--retries must be >= 0 and --timeout > 0")
    manifest = load_manifest(args.manifest) if args.manifest else None
    specs = [lookup(name, manifest) for name in args.datasets]
    root = resolve_root(args.root)
    if args.base_url is not None:
        check_base_url(args.base_url, "--base-url")
        base_url = args.base_url
    else:
        base_url = os.environ.get(BASE_URL_ENV) or None
        if base_url:
            check_base_url(base_url, f"${BASE_URL_ENV}")
    for spec in specs:  # a selection that matches nothing is refused before the root is created
        select_files(spec, args.only)
    prepare_root(root, "--root" if args.root else "data root")
    for spec in specs:
        download_dataset(
            spec,
            root,
            base_url=base_url,
            retries=args.retries,
            timeout=args.timeout,
            keep_archives=args.keep_archives,
            only=args.only,
        )
    return 0
