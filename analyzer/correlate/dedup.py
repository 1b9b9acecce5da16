"""The same SIP message seen at two capture points is one message, not two.

Captures taken on two hosts (or two interfaces) of one path hold each message twice: the
same bytes between the same addresses, a few milliseconds apart. They must not be counted
twice, nor taken for retransmissions (RFC 3261 §17: a retransmission comes from the same
capture point, at least T1 = 500 ms after the first copy over UDP; over TCP the transport
retransmits, never SIP).

A message seen at point P is a copy when, within :data:`WINDOW_NS` before it, another
point Q saw the same bytes between the same addresses and P has not already matched that
sighting. So three points that see one INVITE give one message; a retransmission seen at
both points (500 ms later) gives one retransmission.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from analyzer.sip.message import SipMessage

WINDOW_NS = 200_000_000
"""How far apart two capture points' copies of one message may be (clock skew plus the
path between them). Below T1 (500 ms), so a UDP retransmission is never taken for a copy."""

MAX_TRACKED = 1_000_000
"""Sightings kept at most (a burst denser than this per window is checked partially)."""

_Key = tuple[bytes, str, int, str, int]


@dataclass(slots=True)
class _Sighting:
    ts_ns: int
    point: int
    matched: set[int] = field(default_factory=set)


@dataclass(slots=True)
class Dedup:
    """Feed messages in time order with the capture point each came from; ``copy`` says
    whether to drop it. Memory: the sightings of the last :data:`WINDOW_NS`."""

    window_ns: int = WINDOW_NS
    copies: int = 0
    """Messages recognised as another capture point's copy."""
    _recent: dict[_Key, list[_Sighting]] = field(default_factory=dict)
    _order: deque[tuple[int, _Key]] = field(default_factory=deque)

    def copy(self, msg: SipMessage, point: int) -> bool:
        o = msg.origin
        now = o.ts_ns
        self._forget(now)
        key: _Key = (msg.raw, o.src_ip, o.src_port, o.dst_ip, o.dst_port)
        sightings = self._recent.get(key)
        if sightings is not None:
            for s in sightings:
                if s.point != point and point not in s.matched and now - s.ts_ns <= self.window_ns:
                    s.matched.add(point)
                    self.copies += 1
                    return True
        else:
            sightings = self._recent[key] = []
        sightings.append(_Sighting(now, point))
        self._order.append((now, key))
        return False

    def _forget(self, now: int) -> None:
        order, recent = self._order, self._recent
        while order and (now - order[0][0] > self.window_ns or len(order) > MAX_TRACKED):
            ts, key = order.popleft()
            sightings = recent.get(key)
            if sightings is None:
                continue
            while sightings and sightings[0].ts_ns <= ts:
                sightings.pop(0)
            if not sightings:
                del recent[key]
