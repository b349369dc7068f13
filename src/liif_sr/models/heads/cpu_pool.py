"""Running independent blocks of CPU inference work on a thread pool (the LIIF, LTE and MetaSR heads' CPU decode).

``torch`` intra-op threading on small blocks is ~3x slower on a shared CPU than spreading the blocks over
worker threads that each run single-threaded ops (no per-op barrier: a core taken by another process does not
stall the others). :func:`run_blocks` does that: it sets ``torch.set_num_threads(1)`` for the duration and
restores the caller's thread count afterwards, also on error. The setting is process-wide, so a lock keeps two
callers from interleaving their changes; work that needs no pool (one thread, one block) never touches it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
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


@contextlib.contextmanager
def single_threaded() -> Iterator[None]:
    """Torch single-threaded meanwhile (then restored), for chunk-level elementwise work between
    :func:`run_blocks` calls: two intra-op threads on a loaded 2-core machine make each op over a 65536-query
    chunk ~50x slower (every op waits for the other core). Do not call :func:`run_blocks` inside."""
    threads = torch.get_num_threads()
    if threads == 1:
        yield
        return
    with _LOCK:
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(threads)


def _cpu_autocast() -> tuple[bool, torch.dtype]:
    try:
        return torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")
    except TypeError:  # torch < 2.4
        return torch.is_autocast_cpu_enabled(), torch.get_autocast_cpu_dtype()


def caller_modes() -> Callable[[], contextlib.AbstractContextManager]:
    """A context factory that re-enters the calling thread's inference mode, ``no_grad`` and CPU autocast
    (all thread-local) in a worker thread of :func:`run_blocks` (call it in the caller, enter it in the work)."""
    inference = torch.is_inference_mode_enabled()
    cast_on, cast_dtype = _cpu_autocast()

    @contextlib.contextmanager
    def enter() -> Iterator[None]:
        with (
            torch.inference_mode(inference),
            torch.no_grad(),
            torch.autocast("cpu", dtype=cast_dtype, enabled=cast_on),
        ):
            yield

    return enter
