"""Classic libpcap files: micro- and nanosecond, either byte order, read as a stream.

Format: https://www.tcpdump.org/manpages/pcap-savefile.5.html (24-byte file header,
16-byte record headers).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import BinaryIO

from analyzer.capture.stats import CaptureStats, RawFrame
from analyzer.errors import CaptureFormatError

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
        raise CaptureFormatError(f"{stats.path}: pcap file header is cut short")
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


def _read_exact(stream: BinaryIO, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = stream.read(n - len(out))
        if not chunk:
            break
        out += chunk
    return out


def _records(stream: BinaryIO, order: str, scale: int, linktype: int, stats: CaptureStats) -> Iterator[RawFrame]:
    unpack = struct.Struct(order + "IIII").unpack_from
    read = getattr(stream, "read1", stream.read)  # read1: a pipe yields frames as they come
    buf = b""
    pos = 0
    offset = FILE_HEADER_LEN  # file offset of buf[0], for the truncation message
    while True:
        chunk = read(CHUNK)
        if not chunk:
            break
        offset += pos
        buf = buf[pos:] + chunk
        pos = 0
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
    if pos < len(buf):
        stats.stop(f"last record cut short at byte {offset + pos} ({len(buf) - pos} bytes left over)")
