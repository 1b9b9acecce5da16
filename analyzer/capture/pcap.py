"""Classic libpcap files: micro- and nanosecond, either byte order, read as a stream.

Format: https://www.tcpdump.org/manpages/pcap-savefile.5.html (24-byte file header,
16-byte record headers).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import BinaryIO

from analyzer.capture.stats import NO_RECORD, CaptureStats, RawFrame
from analyzer.errors import CaptureCutError

MAGICS: dict[bytes, tuple[str, int]] = {
    b"\xd4\xc3\xb2\xa1": ("<", 1000),  # little-endian, microseconds
    b"\xa1\xb2\xc3\xd4": (">", 1000),
    b"\x4d\x3c\xb2\xa1": ("<", 1),  # little-endian, nanoseconds
    b"\xa1\xb2\x3c\x4d": (">", 1),
}
FILE_HEADER_LEN = 24
RECORD_HEADER_LEN = 16
CHUNK = 1 << 20
# A record larger than this is a lying length field, not a packet (Wireshark's limit).
MAX_RECORD = 262_144 * 4


def read_pcap(stream: BinaryIO, head: bytes, stats: CaptureStats) -> Iterator[RawFrame]:
    """Frames of a pcap file whose first bytes ``head`` were already read."""
    head += _read_exact(stream, FILE_HEADER_LEN - len(head))
    if len(head) < FILE_HEADER_LEN:
        raise CaptureCutError(f"{stats.path}: pcap file header is cut short")
    order, scale = MAGICS[head[:4]]
    _snaplen, linktype = struct.unpack(order + "II", head[16:24])
    linktype &= 0x03FF_FFFF  # upper bits hold the FCS length (pcap-linktype(7))
    stats.linktypes.add(linktype)
    return PcapRecords(stream, order, scale, linktype, stats)


class PcapRecords:
    """The records of one pcap stream, read once. Its fields let a reader that needs no
    frame objects walk the same records faster (:mod:`analyzer.decode.fastpcap`)."""

    def __init__(self, stream: BinaryIO, order: str, scale: int, linktype: int, stats: CaptureStats) -> None:
        self.stream = stream
        self.order = order
        self.scale = scale
        """Nanoseconds per unit of the record's fraction field (1000: microseconds)."""
        self.linktype = linktype
        self.stats = stats
        self._frames: Iterator[RawFrame] | None = None

    def __iter__(self) -> Iterator[RawFrame]:
        return self

    def __next__(self) -> RawFrame:
        if self._frames is None:
            self._frames = _records(self.stream, self.order, self.scale, self.linktype, self.stats)
        return next(self._frames)

    def first_time(self) -> int | None:
        """Time of the first record, in ns, read without taking it from the stream:
        :data:`NO_RECORD` at the end of the stream; None when it cannot be told (a stream
        that cannot be looked ahead in, records already taken, a record header cut short)."""
        peek = getattr(self.stream, "peek", None)
        if peek is None or self._frames is not None:
            return None
        head = peek(RECORD_HEADER_LEN)[:RECORD_HEADER_LEN]
        if not head:
            return NO_RECORD
        if len(head) < RECORD_HEADER_LEN:
            return None
        sec, frac = struct.unpack_from(self.order + "II", head)
        return int(sec * 1_000_000_000 + frac * self.scale)

    def resume(self, buffered: bytes, offset: int) -> PcapRecords:
        """Go on from where a fused loop stopped (:class:`analyzer.decode.fastpcap.FastRun`):
        ``buffered`` is what it had read of the stream beyond its last record, which starts
        at file ``offset``."""
        self._frames = _records(self.stream, self.order, self.scale, self.linktype, self.stats, buffered, offset)
        return self


def _read_exact(stream: BinaryIO, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = stream.read(n - len(out))
        if not chunk:
            break
        out += chunk
    return out


def _records(
    stream: BinaryIO,
    order: str,
    scale: int,
    linktype: int,
    stats: CaptureStats,
    buf: bytes = b"",
    offset: int = FILE_HEADER_LEN,
) -> Iterator[RawFrame]:
    """The records of ``buf`` (read from the stream already; it starts at file ``offset``,
    for the truncation message), then of the rest of the stream."""
    unpack = struct.Struct(order + "IIII").unpack_from
    read = getattr(stream, "read1", stream.read)  # read1: a pipe yields frames as they come
    pos = 0
    while True:
        n = len(buf)
        while pos + RECORD_HEADER_LEN <= n:
            sec, frac, incl, orig = unpack(buf, pos)
            if incl > MAX_RECORD:
                stats.stop(f"record at byte {offset + pos} claims {incl} bytes (corrupt length)")
                return
            end = pos + RECORD_HEADER_LEN + incl
            if end > n:
                break
            if incl < orig:
                stats.cut_frames += 1
            yield (sec * 1_000_000_000 + frac * scale, linktype, buf[pos + RECORD_HEADER_LEN : end], orig)
            pos = end
        chunk = read(CHUNK)
        if not chunk:
            break
        offset += pos
        buf = buf[pos:] + chunk
        pos = 0
    if pos < len(buf):
        stats.stop(f"last record cut short at byte {offset + pos} ({len(buf) - pos} bytes left over)")
