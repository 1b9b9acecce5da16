"""The catalogue of columns: how each value is written."""

from __future__ import annotations

from analyzer.report.columns import iso_time


def test_a_time_past_what_a_calendar_can_say_is_still_text() -> None:
    assert iso_time(1_700_000_000_123_456_789) == "2023-11-14T22:13:20.123456Z"
    assert iso_time(-1) == "1969-12-31T23:59:59.999999Z"
    assert iso_time(2**62 * 10**9) == f"(out of range: {2**62 * 10**9} ns from 1970)"  # a damaged pcapng time offset
