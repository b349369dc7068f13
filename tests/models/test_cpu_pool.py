"""The LIIF head's CPU thread pool (``models/heads/cpu_pool.py``): every block runs once, and torch's thread
count is the caller's again afterwards, also when a block fails."""

from __future__ import annotations

import pytest
import torch

from liif_sr.models.heads.cpu_pool import run_blocks, single_threaded


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_every_block_runs_and_the_thread_count_is_restored(threads):
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        seen: list[tuple[int, int]] = []
        run_blocks(lambda start: seen.append((start, torch.get_num_threads())), range(0, 10, 2))
        assert sorted(s for s, _ in seen) == [0, 2, 4, 6, 8]
        if threads > 1:  # the workers run single-threaded ops
            assert {n for _, n in seen} == {1}
        assert torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(before)


def test_thread_count_restored_when_a_block_fails():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:

        def work(start: int) -> None:
            if start == 4:
                raise RuntimeError("block failed")

        with pytest.raises(RuntimeError, match="block failed"):
            run_blocks(work, range(0, 8, 2))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("threads", [1, 2])
def test_single_threaded_meanwhile_and_restored_also_on_error(threads):
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with single_threaded():
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == threads
        with pytest.raises(ValueError), single_threaded():
            raise ValueError("boom")
        assert torch.get_num_threads() == threads
        seen: list[int] = []
        run_blocks(lambda s: seen.append(s), range(3))  # the lock was released
        assert sorted(seen) == [0, 1, 2]
    finally:
        torch.set_num_threads(before)
