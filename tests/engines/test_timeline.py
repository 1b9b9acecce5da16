"""Frame numbers of several captures merged in time order, as the local engine gives them."""

from __future__ import annotations

import heapq

import numpy as np
import pyarrow as pa
import pytest

from analyzer.engines.table import to_table
from analyzer.engines.timeline import first_and_last, frame_numbers, merged_order, renumber
from analyzer.sip.message import Origin, SipMessage
from analyzer.sip.parser import parse_message


def as_merged_reader(stamps: list[list[int]]) -> list[tuple[int, int]]:
    """(file, frame) in the order MergedReader's heapq.merge on (time, file) gives them."""
    tagged = [[(ts, f, n) for n, ts in enumerate(s, 1)] for f, s in enumerate(stamps)]
    return [(f, n) for _, f, n in heapq.merge(*tagged, key=lambda t: (t[0], t[1]))]


def numbered(stamps: list[list[int]]) -> list[tuple[int, int]]:
    numbers = frame_numbers([np.array(s, dtype=np.int64) for s in stamps])
    pairs = [(numbers.of(f, n), (f, n)) for f, s in enumerate(stamps) for n in range(1, len(s) + 1)]
    return [fn for _, fn in sorted(pairs)]


@pytest.mark.parametrize(
    "stamps",
    [
        [[0, 10, 20], [5, 10, 30]],  # interleaved, a tie: the earlier file first
        [[100, 200], [0, 50], []],  # rotated pieces given in reverse, an empty file
        [[5, 1, 7], [3, 4, 2], [6]],  # times going backwards: heapq.merge's own order
        [[3, 3, 1, 3], [3, 2, 3]],
    ],
)
def test_numbers_as_heapq_merge(stamps: list[list[int]]) -> None:
    assert numbered(stamps) == as_merged_reader(stamps)


def test_random_files_going_backwards_now_and_then() -> None:
    rng = np.random.default_rng(7)
    for _ in range(50):
        stamps = [
            sorted(rng.integers(0, 40, rng.integers(0, 12)).tolist(), key=lambda t: t + rng.integers(-5, 5))
            for _ in range(rng.integers(1, 5))
        ]
        assert numbered(stamps) == as_merged_reader(stamps)


def test_first_and_last_frames_of_the_merge() -> None:
    stamps = [np.array(s, dtype=np.int64) for s in ([7, 1], [3])]
    assert first_and_last(frame_numbers(stamps), stamps) == (3, 1)
    assert first_and_last(frame_numbers([]), []) == (None, None)


def _message(call_id: str, frame: int, frames: tuple[int, ...], ts_ns: int) -> SipMessage:
    raw = f"OPTIONS sip:a@example.com SIP/2.0\r\nCall-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    return parse_message(raw.encode(), Origin(frame, frames, ts_ns, "192.0.2.1", 5060, "192.0.2.2", 5060, "tcp"))


def test_rows_renumbered_and_in_merged_order() -> None:
    # file 0's frames at 0, 10, 20, 30; file 1's at 5, 15, 25: merged 1 3 5 7 and 2 4 6
    numbers = frame_numbers([np.array([0, 10, 20, 30], dtype=np.int64), np.array([5, 15, 25], dtype=np.int64)])
    first = to_table(
        [_message("a", 2, (1, 2), 10), _message("b", 4, (4,), 30), _message("t", 3, (3,), 20)], file=0, tail_from=2
    )
    second = to_table([_message("c", 1, (1,), 5), _message("d", 3, (2, 3), 25)], file=1)
    rows = merged_order(renumber(pa.concat_tables([first.slice(1), first.slice(0, 1), second]), numbers))
    got = list(
        zip(
            rows.column("call_id").to_pylist(),
            rows.column("frame").to_pylist(),
            rows.column("frames").to_pylist(),
            strict=True,
        )
    )
    assert got == [("c", 2, [2]), ("a", 3, [1, 3]), ("d", 6, [4, 6]), ("b", 7, [7]), ("t", 5, [5])]
    assert rows.schema == first.schema
