"""One process per run folder: ``flock`` on the folder itself (no lock file is left behind).

Only global rank 0 locks (the other ranks of a DDP run write into the same folder, re-launched by Lightning
with the same command line or started by SLURM). A lock is held until the process exits (also on SIGKILL: the kernel releases it, so there is never a stale
lock). :func:`hold` is re-entrant within a process: ``liif-sr-train resume=R`` takes the lock before Hydra
writes into ``R`` and the training task takes it again. A sweep folder is locked exclusively by a resume of
the whole sweep and shared by a resume of one of its jobs, so the two exclude each other.
"""

from __future__ import annotations

import os
from pathlib import Path

from liif_sr.errors import UserError

try:
    import fcntl
except ImportError:  # Windows: no flock; runs are not locked there
    fcntl = None  # type: ignore[assignment]

_HELD: dict[str, tuple[int, bool]] = {}


class RunLockedError(UserError):
    """Another process is training in (or resuming) this folder."""


def hold(folder: str | os.PathLike[str], what: str, shared: bool = False) -> bool:
    """Lock ``folder`` for this process (exclusive, or ``shared``); a folder that does not exist is skipped.

    Returns whether this call took the lock (False: already held by this process, nothing to lock, or a
    process of global rank > 0: the ranks of one DDP run share their folder; rank 0 holds the lock).
    Raises :class:`RunLockedError` (one line naming ``what``) when another process holds it."""
    from lightning.pytorch.utilities.rank_zero import rank_zero_only

    path = Path(folder)
    if fcntl is None or not path.is_dir() or getattr(rank_zero_only, "rank", 0) != 0:
        return False
    key = str(path.resolve())
    if key in _HELD:
        return False
    fd = os.open(key, os.O_RDONLY)
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise RunLockedError(
            f"{what}: another liif-sr-train process is training in {folder} (wait for it to end, "
            "or stop it first)"
        ) from None
    _HELD[key] = (fd, shared)
    return True


def probe(folder: str | os.PathLike[str], what: str) -> None:
    """Refuse (like :func:`hold`) if another process holds ``folder`` now; keep no lock (the jobs of a sweep
    may run in other processes, which take it themselves)."""
    if hold(folder, what):
        release(folder)


def release(folder: str | os.PathLike[str]) -> None:
    """Release this process's lock on ``folder`` (if it holds one)."""
    held = _HELD.pop(str(Path(folder).resolve()), None)
    if held is not None:
        os.close(held[0])


def release_all() -> None:
    """Release every lock of this process (tests; a process exit does the same)."""
    while _HELD:
        _, (fd, _) = _HELD.popitem()
        os.close(fd)
