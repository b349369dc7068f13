"""What ``liif-sr download`` fetches: archive URLs, sizes, sha256 and where each archive's content goes.

Also home of :func:`dataset_root` and :func:`require_dataset`, which the data configs use to find a
dataset (and to tell the user which command downloads it when it is missing).
"""

from __future__ import annotations

import json
import os
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path

from liif_sr.errors import DatasetMissingError, UserError

#: environment variable holding the default data root (else ``./data``)
DATA_DIR_ENV = "LIIF_SR_DATA_DIR"
#: environment variable that replaces the scheme+host+directory part of every download URL
BASE_URL_ENV = "LIIF_SR_DOWNLOAD_BASE"
DEFAULT_DATA_DIR = "data"
#: suffix of the marker written next to a fully extracted folder (``X2`` -> ``X2.complete``)
MARKER_SUFFIX = ".complete"


@dataclass(frozen=True)
class ArchiveSpec:
    """One downloadable archive.

    ``extract_to`` is the folder (relative to the data root) the archive's members are relative to;
    ``target`` is the folder (relative to the data root, inside ``extract_to``) that the archive
    provides: it is created atomically and marked complete as a unit.
    """

    url: str
    filename: str
    size: int | None
    sha256: str | None
    extract_to: str
    target: str


@dataclass(frozen=True)
class DatasetSpec:
    """A named dataset: its title for messages, its folder under the data root and its archives."""

    name: str
    title: str
    folder: str
    files: tuple[ArchiveSpec, ...]


_DIV2K_URL = "https://data.vision.ee.ethz.ch/cvl/DIV2K/"
# Sizes and sha256 of the DIV2K zips: TensorFlow Datasets, tensorflow_datasets/datasets/div2k/checksums.tsv
# (github.com/tensorflow/datasets, commit 64fa5464e5ccd52efa9bf2541e4b0235fc79d649; the HR and X2 rows
# also match the older tensorflow_datasets/url_checksums/div2k.txt).
_DIV2K_FILES: tuple[tuple[str, int, str, str], ...] = (
    # (zip name, size in bytes, sha256, folder it provides under div2k/)
    ("DIV2K_train_HR.zip", 3530603713, "9d0b9c463f6e35b6c62cc6a930ee2224f670b34c1df841a57670f9acf0f6c335", "DIV2K_train_HR"),
    ("DIV2K_valid_HR.zip", 448993893, "20dd31fd84d777bc1cf5d6b7654a3f569c0aec74458ae094122ad1d0489900fc", "DIV2K_valid_HR"),
    ("DIV2K_train_LR_bicubic_X2.zip", 925390592, "a53a424317575838dadce4bcd97cf7b744d6855f43740ed5f0245af3cf4bd850", "DIV2K_train_LR_bicubic/X2"),
    ("DIV2K_train_LR_bicubic_X3.zip", 427847282, "ad5c8e5507e2765823d3c2c5bd0934842efcd487c5370604c224090898b3163a", "DIV2K_train_LR_bicubic/X3"),
    ("DIV2K_train_LR_bicubic_X4.zip", 246914039, "f006b837f4eb52b82909aa01478e6d6d199eefce932179491d0c9dbb706dde3a", "DIV2K_train_LR_bicubic/X4"),
    ("DIV2K_valid_LR_bicubic_X2.zip", 117763600, "60eed9875c697df51204aa579e2a699e1d5215095788a097ff54dd17e2664d57", "DIV2K_valid_LR_bicubic/X2"),
    ("DIV2K_valid_LR_bicubic_X3.zip", 54513392, "04b9a2ed3b4a0715d3924d3ae8514830c3328fac8d30512ce716d6f419e052a3", "DIV2K_valid_LR_bicubic/X3"),
    ("DIV2K_valid_LR_bicubic_X4.zip", 31505881, "a50a5d1c4b88de4e8d300d8fb2b904c52fe93b2b298a4899697760d7cbb6d553", "DIV2K_valid_LR_bicubic/X4"),
)  # fmt: skip

DATASETS: dict[str, DatasetSpec] = {
    "div2k": DatasetSpec(
        name="div2k",
        title="DIV2K",
        folder="div2k",
        files=tuple(
            ArchiveSpec(_DIV2K_URL + zip_name, zip_name, size, sha, "div2k", f"div2k/{folder}")
            for zip_name, size, sha, folder in _DIV2K_FILES
        ),
    ),
    "benchmark": DatasetSpec(
        name="benchmark",
        title="SR benchmark (Set5, Set14, B100, Urban100)",
        folder="benchmark",
        files=(
            # The EDSR authors publish no checksum. Size and sha256 as pinned (and checked against a
            # download) by github.com/YeapJieShen/single-image-super-resolution in
            # tests/reference/fetch_urban100.py and tests/utils/test_imresize.py: a single third-party source.
            ArchiveSpec(
                url="https://cv.snu.ac.kr/research/EDSR/benchmark.tar",
                filename="benchmark.tar",
                size=250112000,
                sha256="80c21c333bbf6ceb5308b7243761f8284478274413a97b96f1d63e9045fd93e8",
                extract_to="",
                target="benchmark",
            ),
        ),
    ),
}

#: other names accepted by :func:`require_dataset` / :func:`dataset_root`
ALIASES: dict[str, str] = dict.fromkeys(("set5", "set14", "b100", "bsd100", "urban100"), "benchmark")

_SHA256_RE = re.compile(r"[0-9a-f]{64}")


def resolve_root(root: str | Path | None = None) -> Path:
    """The data root: ``root`` if given, else ``$LIIF_SR_DATA_DIR``, else ``./data``."""
    if root is None or str(root) == "":
        root = os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR
    return Path(root).expanduser()


def lookup(name: str, manifest: dict[str, DatasetSpec] | None = None) -> DatasetSpec:
    """The dataset called ``name`` (case-insensitive, benchmark set names accepted) in ``manifest``."""
    manifest = DATASETS if manifest is None else manifest
    key = name.lower()
    key = key if key in manifest else ALIASES.get(key, key)
    if key not in manifest:
        raise UserError(f"unknown dataset {name!r}; choose from: {', '.join(sorted(manifest))}")
    return manifest[key]


def dataset_root(name: str, root: str | Path | None = None) -> Path:
    """Folder of dataset ``name`` under the data root, e.g. ``data/div2k`` or ``data/benchmark``."""
    return resolve_root(root) / lookup(name).folder


def require_dataset(path: Path, name: str) -> None:
    """Raise :class:`DatasetMissingError` naming the download command unless ``path`` is a non-empty folder."""
    path = Path(path)
    if path.is_dir() and any(path.iterdir()):
        return
    try:
        spec = lookup(name)
    except UserError:
        raise DatasetMissingError(f"{name} not found at {path}") from None
    root = next((p.parent for p in (path, *path.parents) if p.name == spec.folder), None)
    command = f"liif-sr download {spec.name}" + (f" --root {root}" if root is not None else "")
    raise DatasetMissingError(f"{spec.title.split(' (')[0]} not found at {path}: run `{command}`")


def with_base_url(url: str, base: str | None) -> str:
    """Replace everything up to the last ``/`` of ``url`` with ``base`` (no-op when ``base`` is empty)."""
    if not base:
        return url
    return base.rstrip("/") + "/" + url.rsplit("/", 1)[-1]


def _relative(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string")
    norm = value.replace("\\", "/").strip("/")
    if value.startswith(("/", "\\")) or ".." in norm.split("/") or re.match(r"[A-Za-z]:", norm):
        raise ValueError(f"{what} {value!r} must be a relative path inside the data root")
    return posixpath.normpath(norm) if norm else ""


def _archive_from_json(entry: object) -> ArchiveSpec:
    if not isinstance(entry, dict) or not isinstance(entry.get("url"), str):
        raise ValueError("each file needs at least a 'url' string")
    url: str = entry["url"]
    size, sha = entry.get("size"), entry.get("sha256")
    if size is not None and (not isinstance(size, int) or size < 0):
        raise ValueError(f"size of {url} must be a non-negative integer or null")
    if sha is not None and (not isinstance(sha, str) or not _SHA256_RE.fullmatch(sha.lower())):
        raise ValueError(f"sha256 of {url} must be 64 hex digits or null")
    extract_to = _relative(entry.get("extract_to", ""), "extract_to")
    target = _relative(entry.get("target"), "target")
    if not target or (extract_to and not target.startswith(extract_to + "/")):
        raise ValueError(f"target {target!r} must be a folder inside extract_to {extract_to!r}")
    filename = entry.get("filename") or url.rsplit("/", 1)[-1]
    if not isinstance(filename, str) or not filename or "/" in filename or filename in (".", ".."):
        raise ValueError(f"bad filename {filename!r}")
    return ArchiveSpec(url, filename, size, sha.lower() if sha else None, extract_to, target)


def load_manifest(path: str | Path) -> dict[str, DatasetSpec]:
    """Read a manifest JSON: ``{name: {"title"?, "folder"?, "files": [{url, filename?, size, sha256,
    extract_to, target}]}}`` (``size``/``sha256`` may be null)."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(raw, dict) or not raw:
            raise ValueError("expected a non-empty JSON object mapping dataset names to datasets")
        manifest = {}
        for name, body in raw.items():
            if not isinstance(body, dict) or not isinstance(body.get("files"), list) or not body["files"]:
                raise ValueError(f"dataset {name!r} needs a non-empty 'files' list")
            files = tuple(_archive_from_json(f) for f in body["files"])
            folder = _relative(body.get("folder", name), "folder")
            manifest[name.lower()] = DatasetSpec(name.lower(), str(body.get("title", name)), folder, files)
    except (OSError, ValueError) as exc:  # json.JSONDecodeError is a ValueError
        raise UserError(f"bad manifest {path}: {exc}") from None
    return manifest
