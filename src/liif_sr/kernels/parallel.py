"""Splitting a kernel call's rows over Python threads (ctypes releases the GIL while C runs)."""

from __future__ import annotations

import atexit
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import torch

_POOL: ThreadPoolExecutor | None = None
_POOL_SIZE = 0
_LOCK = threading.Lock()


def _pool(workers: int) -> ThreadPoolExecutor:
    global _POOL, _POOL_SIZE
    with _LOCK:
        if _POOL is None or workers > _POOL_SIZE:
            if _POOL is not None:
                _POOL.shutdown(wait=False)
            _POOL, _POOL_SIZE = ThreadPoolExecutor(workers, thread_name_prefix="liif_sr_kernel"), workers
        return _POOL


@atexit.register
def _shutdown() -> None:
    if _POOL is not None:
        _POOL.shutdown(wait=False)


def parallel_rows(work: Callable[[int, int], None], rows: int, min_rows: int = 4096) -> None:
    """``work(start, stop)`` over ``[0, rows)``: in this thread with one torch thread or fewer than
    ``2 * min_rows`` rows, else in ``torch.get_num_threads()`` (at most ``rows // min_rows``) contiguous
    parts on a persistent thread pool. ``work`` must write disjoint outputs per part."""
    parts = min(torch.get_num_threads(), rows // max(min_rows, 1))
    if parts <= 1:
        if rows > 0:
            work(0, rows)
        return
    bounds = [rows * i // parts for i in range(parts + 1)]
    futures = [_pool(parts).submit(work, a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    for f in futures:
        f.result()
