"""The hot loop for the commonest capture: classic pcap of Ethernet frames.

On a trunk most frames are RTP: Ethernet / IPv4 / UDP whose payload starts with a byte no
SIP, HEP or tunnel header starts with. :meth:`Decoder.feed` drops those at once, but going
through it still costs a frame object, two generators and a call per frame. Here the pcap
records are walked in place and such frames are only counted (in bulk, through
:meth:`Decoder.skipped_fast`): no bytes are copied for them. Every other frame goes to
:meth:`Decoder.feed` exactly as the plain reader would hand it over, with the same number,
so the messages and every counter are the same (tests/decode/test_fastpcap.py).

The record walk mirrors :func:`analyzer.capture.pcap._records` (same limits, same
warnings); the drop test mirrors the first lines of :meth:`Decoder.feed`.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator

from analyzer.capture.pcap import CHUNK, FILE_HEADER_LEN, MAX_RECORD, RECORD_HEADER_LEN, PcapRecords
from analyzer.capture.source import GZIP_ERRORS
from analyzer.decode.pipeline import UDP_INTERESTING, Decoder
from analyzer.sip.message import SipMessage

ETHERNET = 1


class FastRun:
    """Messages of one pcap stream of Ethernet frames; ``frames`` counts the records read."""

    def __init__(self, records: PcapRecords, decoder: Decoder, first_frame: int) -> None:
        self.records = records
        self.decoder = decoder
        self.first_frame = first_frame
        self.frames = 0
        self.progress: Callable[[int], None] | None = None

    def __iter__(self) -> Iterator[SipMessage]:
        rec = self.records
        stats = rec.stats
        unpack = struct.Struct(rec.order + "IIII").unpack_from
        read = getattr(rec.stream, "read1", rec.stream.read)
        feed, skipped_fast = self.decoder.feed, self.decoder.skipped_fast
        interesting = UDP_INTERESTING
        scale = rec.scale
        number = self.first_frame - 1
        buf = b""
        pos = 0
        offset = FILE_HEADER_LEN  # file offset of buf[0], for the truncation message
        skipped = skipped_bytes = first_skip = last_skip = 0
        try:
            while True:
                try:
                    chunk = read(CHUNK)
                except GZIP_ERRORS as exc:
                    stats.stop(f"compressed data is damaged or cut short ({exc})")
                    return
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
                    p = pos + RECORD_HEADER_LEN
                    end = p + incl
                    if end > n:
                        break
                    number += 1
                    if incl < orig:
                        stats.cut_frames += 1
                    ts = sec * 1_000_000_000 + frac * scale
                    pos = end
                    if (
                        incl > 42
                        and buf[p + 12] == 0x08
                        and buf[p + 13] == 0
                        and buf[p + 14] == 0x45
                        and buf[p + 23] == 17
                        and not (buf[p + 20] & 0x3F or buf[p + 21])
                        and not interesting[buf[p + 42]]
                    ):
                        if not skipped:
                            first_skip = ts
                        skipped += 1
                        skipped_bytes += incl
                        last_skip = ts
                        continue
                    if skipped:
                        skipped_fast(skipped, skipped_bytes, first_skip, last_skip)
                        skipped = skipped_bytes = 0
                    out = feed(number, ts, ETHERNET, buf[p:end])
                    if out:
                        yield from out
                if skipped:
                    skipped_fast(skipped, skipped_bytes, first_skip, last_skip)
                    skipped = skipped_bytes = 0
                if self.progress is not None:
                    self.progress(self.decoder.stats.bytes)
            if pos < len(buf):
                stats.stop(f"last record cut short at byte {offset + pos} ({len(buf) - pos} bytes left over)")
        finally:
            if skipped:
                skipped_fast(skipped, skipped_bytes, first_skip, last_skip)
            self.frames = number - self.first_frame + 1
