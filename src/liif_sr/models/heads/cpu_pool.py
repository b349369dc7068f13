"""Running independent blocks of CPU inference work on a thread pool (used by the LIIF head's fast path).

``torch`` intra-op threading on small blocks is ~3x slower on a shared CPU than spreading the blocks over
worker threads that each run single-threaded ops (no per-op barrier: a core taken by another process does not
stall the others). :func:`run_blocks` does that: it sets ``torch.set_num_threads(1)`` for the duration and
restores the caller's thread count afterwards, also on error. The setting is process-wide, so a lock keeps two
callers from interleaving their changes; work that needs no pool (one thread, one block) never touches it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import torch

_LOCK = threading.Lock()  # guards the temporary torch.set_num_threads(1)


def run_blocks(work: Callable[[int], None], starts: Sequence[int]) -> None:
    """``work(start)`` for every start: in this thread when torch uses one thread or there is one block,
    else on ``min(torch threads, blocks)`` workers with torch single-threaded meanwhile (then restored)."""
    threads = torch.get_num_threads()
    if threads == 1 or len(starts) <= 1:
        for start in starts:
            work(start)
        return
    with _LOCK:
        torch.set_num_threads(1)
        try:
            with ThreadPoolExecutor(min(threads, len(starts))) as pool:
                list(pool.map(work, starts))
        finally:
            torch.set_num_threads(threads)
