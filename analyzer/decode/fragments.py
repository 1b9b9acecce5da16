"""IP fragment reassembly for IPv4 (RFC 791 §3.2) and IPv6 (RFC 8200 §4.5).

A datagram is complete when the last fragment (MF clear) has been seen and the
pieces cover every byte before it. Overlapping pieces keep the first copy (RFC 5722
forbids overlaps in IPv6; counting them is enough for analysis). Memory is bounded:
at most ``max_pending`` datagrams and ``max_bytes`` of pieces wait, the oldest datagram
is dropped first and counted in ``evicted``; a datagram sent in more than
``max_pieces`` fragments is dropped and counted in ``refused``. The defaults are the
constants below (:class:`analyzer.limits.Limits` reads them).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

FragKey = tuple[bytes, bytes, int, int]
"""(source, destination, identification, protocol)."""

MAX_DATAGRAM = 65_535 + 40
MAX_PIECES = 64
"""Fragments one datagram may come in. Even at the IPv6 minimum MTU of 1280 bytes (RFC 8200
§5) the largest datagram needs 52; thousands of tiny overlapping fragments are an attack,
and would make each reassembly attempt cost as much as all the pieces held."""
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_PENDING = 4096


@dataclass(slots=True)
class _Pending:
    pieces: dict[int, bytes] = field(default_factory=dict)
    total: int = -1
    frames: list[int] = field(default_factory=list)
    size: int = 0
    """Bytes held in ``pieces``."""


@dataclass(slots=True)
class FragmentTable:
    max_pending: int = DEFAULT_MAX_PENDING
    max_bytes: int = DEFAULT_MAX_BYTES
    max_pieces: int = MAX_PIECES
    evicted: int = 0
    """Datagrams dropped incomplete because the table was full."""
    refused: int = 0
    """Datagrams dropped because they came in more than ``max_pieces`` fragments."""
    _pending: OrderedDict[FragKey, _Pending] = field(default_factory=OrderedDict)
    _bytes: int = 0

    def add(
        self, key: FragKey, offset: int, more: bool, data: bytes, frame: int
    ) -> tuple[bytes, tuple[int, ...]] | None:
        """Add one fragment; returns (datagram payload, frames) once it is complete."""
        entry = self._pending.get(key)
        if entry is None:
            if len(self._pending) >= self.max_pending:
                self._evict_oldest()
            entry = self._pending[key] = _Pending()
        entry.frames.append(frame)
        if len(entry.frames) > self.max_pieces:
            self._forget(key)
            self.refused += 1
            return None
        if offset + len(data) > MAX_DATAGRAM:
            return None
        if offset not in entry.pieces:
            entry.pieces[offset] = data
            entry.size += len(data)
            self._bytes += len(data)
            while self._bytes > self.max_bytes:
                self._evict_oldest()
            if key not in self._pending:  # this datagram was the oldest
                return None
        if not more:
            entry.total = offset + len(data)
        if entry.total < 0:
            return None
        payload = _assemble(entry)
        if payload is None:
            return None
        self._forget(key)
        return payload, tuple(entry.frames)

    def pending(self) -> list[tuple[int, ...]]:
        """Frames of the datagrams still incomplete (for the end-of-capture report)."""
        return [tuple(e.frames) for e in self._pending.values()]

    def _evict_oldest(self) -> None:
        key = next(iter(self._pending))
        self._forget(key)
        self.evicted += 1

    def _forget(self, key: FragKey) -> None:
        self._bytes -= self._pending.pop(key).size


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
