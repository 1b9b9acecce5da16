"""IP fragment reassembly in any order, with limits."""

from __future__ import annotations

from analyzer.decode.fragments import FragmentTable

KEY = (b"a", b"b", 1, 17)


def test_in_order_and_out_of_order() -> None:
    t = FragmentTable()
    assert t.add(KEY, 16, False, b"C" * 4, 3) is None
    assert t.add(KEY, 0, True, b"A" * 8, 1) is None
    assert t.add(KEY, 8, True, b"B" * 8, 2) == (b"A" * 8 + b"B" * 8 + b"C" * 4, (3, 1, 2))
    assert t.pending() == []


def test_overlap_keeps_first_copy_and_eviction_is_counted() -> None:
    t = FragmentTable(max_pending=1)
    assert t.add(KEY, 0, True, b"A" * 8, 1) is None
    assert t.add((b"x", b"y", 2, 17), 0, True, b"Z" * 8, 2) is None
    assert t.evicted == 1
    assert t.pending() == [(2,)]
