"""pcapng interfaces: timestamp resolutions and the last timestamp before a time."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from analyzer.capture.pcapng import _interface

# if_tsresol: 10^-n for n up to 19, 2^-n (high bit) for n up to 127
RESOLUTIONS = st.one_of(st.integers(0, 19), st.integers(0x80, 0xFF))


@given(RESOLUTIONS, st.integers(-(10**18), 10**18), st.integers(0, 2**63))
def test_last_ts_is_the_last_timestamp_at_most_that_time(resol: int, offset_ns: int, ns: int) -> None:
    iface = _interface(1, 65535, resol, offset_ns)
    ts = iface.last_ts(ns)
    assert iface.ns(ts) <= ns < iface.ns(ts + 1)


def test_a_two_to_the_minus_64_resolution_is_answered_at_once() -> None:
    iface = _interface(1, 65535, 0x80 | 64, 0)
    # the last unit before one second and one nanosecond: 2^64 units a second, 18,446,744,073.7 a ns
    assert iface.last_ts(1_000_000_000) == 2**64 + 18_446_744_073
    assert iface.ns(2**64) == 1_000_000_000


def test_resolutions() -> None:
    one_second = {resol: _interface(1, 65535, resol, 0).ns(1) for resol in (0, 3, 6, 9, 12, 0x80, 0x81, 0x8A)}
    assert one_second == {0: 10**9, 3: 10**6, 6: 1000, 9: 1, 12: 0, 0x80: 10**9, 0x81: 5 * 10**8, 0x8A: 976562}
