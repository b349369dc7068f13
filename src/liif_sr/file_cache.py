"""What a process has read from a checkpoint file, kept so that the start-up checks and the run read each file
once (``liif-sr-train resume=...``: the plan, the preflight, the task; ``liif-sr-eval``: the preflight, the run).

Entries are keyed by the file's path and its version: device, inode, size and mtime (ns). A file replaced
(checkpoints are written to a temp file and renamed: a new inode) or rewritten is read again. As git does
with its index, a file modified less than :data:`RACY_S` seconds before it was read is not remembered: on a
file system with coarse timestamps a second write within the same tick would keep the version.

* :func:`remembered`: small results (a sha256, a checkpoint's progress, its model config), read once;
* :func:`hand_over` / :func:`take`: one large result (a loaded model) passed from a check to the run once.
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

#: a file modified this recently (seconds) is read again each time (its version may not show a change)
RACY_S = 3.0

Version = tuple[int, int, int, int]
_MEMO: dict[tuple[str, str], tuple[Version, Any]] = {}
_HANDED: dict[tuple[str, str], tuple[Version, Any]] = {}


def version(path: str | os.PathLike[str]) -> Version | None:
    """The file's (device, inode, size, mtime ns), or None when it cannot be stat'ed."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def _key(kind: str, path: str | os.PathLike[str]) -> tuple[str, str]:
    return kind, str(Path(path).resolve())


def _settled(ver: Version | None, started_ns: int) -> bool:
    return ver is not None and ver[3] <= started_ns - int(RACY_S * 1e9)


def remembered(kind: str, path: str | os.PathLike[str], read: Callable[[], T]) -> T:
    """``read()`` (what ``kind`` means for the file at ``path``) once per version of the file. A mutable
    result is returned as a copy; an exception is not remembered (the next call reads again)."""
    key, started = _key(kind, path), time.time_ns()
    ver = version(path)
    hit = _MEMO.get(key)
    if hit is not None and ver is not None and hit[0] == ver:
        return copy.deepcopy(hit[1])
    value = read()
    if _settled(ver, started) and version(path) == ver:  # unchanged while it was read
        _MEMO[key] = (ver, copy.deepcopy(value))  # type: ignore[assignment]
    return value


def remember(kind: str, path: str | os.PathLike[str], value: Any, ver: Version | None) -> None:
    """Keep ``value`` (read from ``path`` at version ``ver``) as :func:`remembered` would."""
    if _settled(ver, time.time_ns()) and version(path) == ver:
        _MEMO[_key(kind, path)] = (ver, copy.deepcopy(value))  # type: ignore[assignment]


def hand_over(kind: str, path: str | os.PathLike[str], value: Any, ver: Version | None) -> None:
    """Leave ``value`` (read from ``path`` at version ``ver``) for one later :func:`take` in this process."""
    if ver is not None and version(path) == ver:
        _HANDED[_key(kind, path)] = (ver, value)


def take(kind: str, path: str | os.PathLike[str]) -> Any | None:
    """What :func:`hand_over` left for ``path`` if the file is still that version (once), else None."""
    found = _HANDED.pop(_key(kind, path), None)
    if found is None or version(path) != found[0]:
        return None
    return found[1]


def forget() -> None:
    """Drop everything kept (tests)."""
    _MEMO.clear()
    _HANDED.clear()
