"""Work shared out over forked processes: items merged in order, results and errors back."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable

import pytest

from analyzer import parallel
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


def test_a_process_may_run_ahead_of_the_merge() -> None:
    """The second process sends all it has (far more than a pipe holds) before the first sends
    anything, and the first waits for the second to end: the merge takes in what the second
    sent while it waits for the first's first item, instead of holding the second back."""
    second_done = multiprocessing.get_context("fork").Event()

    def work(shard: int, put: Callable[[int], None], tick: Callable[[int], None]) -> int:
        if shard == 1:
            for n in range(1, 40 * BATCH, 2):
                put(n)
            second_done.set()
            return 1
        if not second_done.wait(30):
            raise RuntimeError("the second process was held back")
        for n in range(0, 40 * BATCH, 2):
            put(n)
        return 0

    run: Sharded[int, int] = Sharded(2, work, lambda n: n)
    assert list(run) == list(range(40 * BATCH))
    assert run.ends == [0, 1]


def test_a_process_too_far_ahead_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parallel, "AHEAD_BYTES", 1)  # no batch may wait: every process keeps pace
    run: Sharded[int, str] = Sharded(2, _evens_and_odds, lambda n: n)
    assert list(run) == list(range(3 * BATCH))
    assert run.ends == ["shard 0", "shard 1"]


def test_the_merge_does_not_wait_on_a_quiet_process() -> None:
    """A process that sends no items (the security watch of analyze --jobs) ends when it likes:
    items flow before it does, and what it returns is read all the same."""
    first_out = multiprocessing.get_context("fork").Event()
    started: list[bool] = []

    def work(shard: int, put: Callable[[int], None], tick: Callable[[int], None]) -> str:
        if shard == 0:
            return "saw items flow" if first_out.wait(30) else "held back"
        for n in range(3 * BATCH):
            put(n)
        return "sent"

    run: Sharded[int, str] = Sharded(2, work, lambda n: n, started=lambda: started.append(True), quiet=1)
    out = []
    for n in run:
        out.append(n)
        first_out.set()
    assert out == list(range(3 * BATCH)) and run.ends == ["saw items flow", "sent"] and started == [True]
