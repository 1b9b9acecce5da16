"""Work shared out over forked processes: items merged in order, results and errors back."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from analyzer.errors import CaptureOpenError, SipflowError
from analyzer.parallel import BATCH, Sharded


def _evens_and_odds(shard: int, put: Callable[[int], None], tick: Callable[[int], None]) -> str:
    for n in range(shard, 3 * BATCH, 2):  # more than one batch each
        put(n)
        tick(n)
    return f"shard {shard}"


def test_items_come_back_merged_and_results_in_process_order() -> None:
    seen: list[int] = []
    run: Sharded[int, str] = Sharded(2, _evens_and_odds, lambda n: n, seen.append)
    assert list(run) == list(range(3 * BATCH))
    assert run.ends == ["shard 0", "shard 1"]
    assert seen and all(0 <= n < 3 * BATCH for n in seen)  # the first process's progress


def _fails(shard: int, put: Callable[[int], None], tick: Callable[[int], None]) -> None:
    put(shard)
    if shard == 1:
        raise CaptureOpenError("x.pcap: not a capture")
    if shard == 2:
        raise KeyError("boom")


def test_a_sipflow_error_in_a_process_is_raised_as_it_is() -> None:
    with pytest.raises(CaptureOpenError, match=r"x\.pcap: not a capture"):
        list(Sharded(2, _fails, lambda n: n))


def test_any_other_error_names_the_process() -> None:
    with pytest.raises(SipflowError, match=r"worker 2: KeyError\('boom'\)"):
        list(Sharded(3, lambda k, put, tick: _fails(2 if k == 2 else 0, put, tick), lambda n: n))
