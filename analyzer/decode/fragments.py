"""IP fragment reassembly for IPv4 (RFC 791 §3.2) and IPv6 (RFC 8200 §4.5).

A datagram is complete when the last fragment (MF clear) has been seen and the
pieces cover every byte before it. Overlapping pieces keep the first copy (RFC 5722
forbids overlaps in IPv6; counting them is enough for analysis). Memory is bounded:
at most ``max_pending`` datagrams wait, the oldest is dropped first and counted.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

FragKey = tuple[bytes, bytes, int, int]
"""(source, destination, identification, protocol)."""

MAX_DATAGRAM = 65_535 + 40


@dataclass(slots=True)
class _Pending:
    pieces: dict[int, bytes] = field(default_factory=dict)
    total: int = -1
    frames: list[int] = field(default_factory=list)


@dataclass(slots=True)
class FragmentTable:
    max_pending: int = 4096
    evicted: int = 0
    """Datagrams dropped incomplete because the table was full."""
    _pending: OrderedDict[FragKey, _Pending] = field(default_factory=OrderedDict)

    def add(
        self, key: FragKey, offset: int, more: bool, data: bytes, frame: int
    ) -> tuple[bytes, tuple[int, ...]] | None:
        """Add one fragment; returns (datagram payload, frames) once it is complete."""
        entry = self._pending.get(key)
        if entry is None:
            if len(self._pending) >= self.max_pending:
                self._pending.popitem(last=False)
                self.evicted += 1
            entry = self._pending[key] = _Pending()
        entry.frames.append(frame)
        if offset + len(data) > MAX_DATAGRAM:
            return None
        entry.pieces.setdefault(offset, data)
        if not more:
            entry.total = offset + len(data)
        if entry.total < 0:
            return None
        payload = _assemble(entry)
        if payload is None:
            return None
        del self._pending[key]
        return payload, tuple(entry.frames)

    def pending(self) -> list[tuple[int, ...]]:
        """Frames of the datagrams still incomplete (for the end-of-capture report)."""
        return [tuple(e.frames) for e in self._pending.values()]


def _assemble(entry: _Pending) -> bytes | None:
    """The whole datagram when the pieces cover ``[0, total)``, else None."""
    covered = 0
    for off in sorted(entry.pieces):
        if off > covered:
            return None
        covered = max(covered, off + len(entry.pieces[off]))
    if covered < entry.total:
        return None
    buf = bytearray(entry.total)
    for off in sorted(entry.pieces, reverse=True):  # earlier pieces win on overlap
        piece = entry.pieces[off][: max(0, entry.total - off)]
        buf[off : off + len(piece)] = piece
    return bytes(buf)
