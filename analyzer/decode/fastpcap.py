"""The hot loops for the commonest captures: classic pcap of Ethernet frames, and pcapng.

On a trunk most frames are RTP: Ethernet / IPv4 / UDP whose payload starts with a byte no
SIP, HEP or tunnel header starts with. :meth:`Decoder.feed` drops those at once, but going
through it still costs a frame object, two generators and a call per frame. Here the pcap
records are walked in place and such frames are only counted (in bulk, through
:meth:`Decoder.skipped_fast`): no bytes are copied for them. Every other frame goes to
:meth:`Decoder.feed` exactly as the plain reader would hand it over, with the same number,
so the messages and every counter are the same (tests/decode/test_fastpcap.py).

The record walk mirrors :func:`analyzer.capture.pcap._records` (same limits, same
warnings); the drop test mirrors the first lines of :meth:`Decoder.feed`. For pcapng,
:class:`FastPcapngRun` drops Enhanced Packet Blocks the same way and leaves every other
block to the reader's own :meth:`analyzer.capture.pcapng.PcapngBlocks.step`.

Both can stop before the first frame later than a given time (``until_ns``) and hand over
the rest of the file as plain frames (``rest_frames``): rotated files are read in turn this
way, and merged frame by frame only from where they overlap (:class:`analyzer.reader.MergedReader`).
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Callable, Iterator
from typing import Any

from analyzer.capture.pcap import CHUNK, FILE_HEADER_LEN, MAX_RECORD, RECORD_HEADER_LEN, PcapRecords
from analyzer.capture.pcapng import DONE, EPB, MAX_BLOCK, Interface, PcapngBlocks
from analyzer.capture.source import GZIP_ERRORS
from analyzer.capture.stats import NO_RECORD, CaptureStats, RawFrame
from analyzer.decode.pipeline import SIP_FIRST, TUNNEL_PORTS, UDP_INTERESTING, Decoder
from analyzer.sip.message import SipMessage

ETHERNET = 1
_HEAD_LEN = RECORD_HEADER_LEN + 43
"""A record header and an Ethernet/IPv4/UDP frame's first 43 bytes (one payload byte)."""
_NG_HEAD_LEN = 28 + 43
"""An Enhanced Packet Block's header and fields, and the same 43 bytes of its frame."""


class _FusedRun:
    """What both fused loops hold: where their frame numbers start, the share of the work
    (``share``), where to stop (``until_ns``), and ``frames``, the frames read (once done)."""

    def __init__(self, decoder: Decoder, first_frame: int, share: tuple[int, int] | None, until_ns: int | None) -> None:
        self.decoder = decoder
        self.first_frame = first_frame
        self.share = share
        """(k, n): this process is k of n that list one capture together (see :class:`FastRun`)."""
        self.until_ns = until_ns
        """Stop before the first frame later than this (:class:`analyzer.reader.MergedReader`:
        the next file starts then); :meth:`rest_frames` then goes on from there."""
        self.frames = 0
        self.progress: Callable[[int], None] | None = None

    def __iter__(self) -> Iterator[SipMessage]:
        for _, out in self.by_frame():
            yield from out

    def by_frame(self) -> Iterator[tuple[int, list[SipMessage]]]:
        """The frames that completed messages: (frame number, its messages)."""
        raise NotImplementedError

    def _elsewhere(self, number: int, plain: bool, nbytes: int, ts_ns: int) -> bool:
        """With a ``share``: whether frame ``number`` is another process's to decode (a plain
        SIP datagram of another, counted here as a frame by process 0; anything but a plain
        SIP datagram, for all but process 0)."""
        mine, procs = self.share or (0, 1)
        if plain and not owns_frame(number, mine, procs):
            if not mine:  # counted as a frame here, by reason by its owner
                self.decoder.counted_elsewhere(nbytes, ts_ns)
            return True
        return bool(mine) and not plain  # process 0's


class FastRun(_FusedRun):
    """Messages of one pcap stream of Ethernet frames; ``frames`` counts the records read.

    ``share`` (k, n) makes this process k of n that list one capture's messages together
    (``sipflow messages --jobs``). Plain SIP datagrams (Ethernet / IPv4 / UDP, not a
    fragment, a letter first, not a tunnel port: decoding them needs no state) are shared
    out by frame number (:func:`owns_frame`); each process decodes only its own. Process 0
    decodes every other frame too and counts every frame, but not the others' datagrams
    by reason: their owners do. The others decode and count nothing but their datagrams.
    """

    def __init__(
        self,
        records: PcapRecords,
        decoder: Decoder,
        first_frame: int,
        share: tuple[int, int] | None = None,
        until_ns: int | None = None,
    ) -> None:
        super().__init__(decoder, first_frame, share, until_ns)
        self.records = records
        self.rest: tuple[bytes, int] | None = None
        """Where a run stopped by ``until_ns`` left the stream: the bytes read beyond the last
        record taken, and their file offset (:meth:`PcapRecords.resume` goes on from there)."""

    def rest_frames(self) -> Iterator[RawFrame] | None:
        """The frames from where ``until_ns`` stopped the run; None when it did not."""
        return None if self.rest is None else self.records.resume(*self.rest)

    def by_frame(self) -> Iterator[tuple[int, list[SipMessage]]]:
        """The frames that completed messages: (frame number, its messages)."""
        rec = self.records
        stats = rec.stats
        order = rec.order
        # The hot loop reads, in one struct call, what the drop test needs of a record whose
        # frame is Ethernet / IPv4 / UDP: captured and original lengths, EtherType, IPv4
        # version/IHL, flags/fragment offset, protocol, first payload byte. The times of a run
        # of dropped records are read only at its ends. Every other record goes through the
        # plain walk below, which also reads the record header and the UDP ports. Two-byte
        # fields come in the file's byte order, so the constants do too.
        drop_head = struct.Struct(order + "I4xII12xHB5xHxB18xB").unpack_from
        head = struct.Struct(order + "IIII12xHB5xHxB10xHH4xB").unpack_from
        unpack = struct.Struct(order + "IIII").unpack_from
        ipv4, frag_mask = (0x0008, 0xFF3F) if order == "<" else (0x0800, 0x3FFF)
        tunnel_ports = {int.from_bytes(p.to_bytes(2, "big"), "little" if order == "<" else "big") for p in TUNNEL_PORTS}
        # Read into one buffer, used again and again: a new megabyte object per chunk costs
        # the kernel a page fault per 4 KiB (a third of the run on a 300 MB capture).
        stream: Any = rec.stream  # a binary file, gzip or standard input: each can read into a buffer
        read_into: Callable[[memoryview], int | None] = getattr(stream, "readinto1", None) or stream.readinto
        work = bytearray(2 * CHUNK)
        view = memoryview(work)
        n = 0
        decoder = self.decoder
        feed = decoder.feed
        interesting, sip_first = UDP_INTERESTING, SIP_FIRST
        mine, procs = self.share if self.share is not None else (0, 0)
        scale = rec.scale
        number = self.first_frame - 1
        pos = 0
        offset = FILE_HEADER_LEN  # file offset of work[0], for the truncation message
        run = _Dropped(decoder, stats, order, scale, counts=not mine)
        until = self.until_ns
        # Records of a second before this one cannot be later than ``until``: the hot loop
        # compares seconds, the plain walk the exact time.
        until_sec = (1 << 62) if until is None else until // 1_000_000_000
        header_len, max_record = RECORD_HEADER_LEN, MAX_RECORD  # locals: read on every record
        alike = alike_records
        timed = _pcap_alike(order, until_sec)
        try:
            while True:
                left = n - pos  # a record cut by the end of the last chunk: moved to the front
                if left + CHUNK > len(work):  # a record longer than a chunk: room for it
                    view.release()
                    work = work[pos:n] + bytes(CHUNK)
                    view = memoryview(work)
                elif left and pos:
                    work[:left] = work[pos:n]
                offset += pos
                pos = 0
                try:
                    got = read_into(view[left : left + CHUNK])
                except GZIP_ERRORS as exc:
                    n = left
                    stats.stop(f"compressed data is damaged or cut short ({exc})")
                    return
                if not got:
                    n = left
                    break
                n = left + got
                fits = n - _HEAD_LEN  # records from here on are read with the plain header
                while pos + RECORD_HEADER_LEN <= n:
                    # A run of records the drop test drops: only counted (when they are this
                    # process's to count; process 0 counts them when several share the file).
                    first_drop = pos
                    skipped = cut = same = 0  # same: the length of the last record dropped
                    while pos <= fits:
                        sec, incl, orig, eth, vihl, frag, proto, first = drop_head(work, pos)
                        end = pos + incl + header_len
                        if not (
                            sec < until_sec
                            and eth == ipv4
                            and vihl == 0x45
                            and proto == 17
                            and 42 < incl <= max_record
                            and end <= n
                            and not frag & frag_mask
                            and not interesting[first]
                        ):
                            break
                        last_drop = pos
                        skipped += 1
                        cut += incl < orig
                        pos = end
                        if incl == same:  # two alike: perhaps a run of them (RTP)
                            step = incl + header_len
                            spec = timed(sec)
                            many = alike(work, last_drop, step, min(fits, n - step), spec) if spec else 0
                            if many:
                                skipped += many
                                cut += many * (incl < orig)
                                last_drop += many * step
                                pos += many * step
                        same = incl
                    if skipped:
                        number += skipped
                        captured = pos - first_drop - header_len * skipped  # the records lie end to end
                        run.count(work, first_drop, last_drop, skipped, captured, cut)
                        continue
                    # Any other record: walked one at a time.
                    if pos <= fits:
                        sec, frac, incl, orig, eth, vihl, frag, proto, sport, dport, first = head(work, pos)
                    else:
                        sec, frac, incl, orig = unpack(work, pos)
                        eth = 0  # too near the end of the buffer to look: the decoder does
                    if incl > MAX_RECORD:
                        stats.stop(f"record at byte {offset + pos} claims {incl} bytes (corrupt length)")
                        return
                    p = pos + RECORD_HEADER_LEN
                    end = p + incl
                    if end > n:
                        break
                    ts_ns = sec * 1_000_000_000 + frac * scale
                    if until is not None and ts_ns > until:
                        self.rest = (bytes(work[pos:n]), offset + pos)
                        return
                    number += 1
                    if incl < orig:
                        stats.cut_frames += 1
                    fast = eth == ipv4 and incl > 42 and vihl == 0x45 and proto == 17 and not frag & frag_mask
                    if fast and not interesting[first]:  # in the second ``until`` falls in
                        run.count(work, pos, pos, 1, incl, 0)
                        pos = end
                        continue
                    pos = end
                    if procs:
                        plain = fast and sip_first[first] and sport not in tunnel_ports and dport not in tunnel_ports
                        if self._elsewhere(number, bool(plain), incl, ts_ns):
                            continue
                    out = feed(number, ts_ns, ETHERNET, view[p:end].tobytes())
                    if out:
                        yield number, out
                if self.progress is not None:
                    self.progress(self.decoder.stats.bytes)
            if pos < n:
                stats.stop(f"last record cut short at byte {offset + pos} ({n - pos} bytes left over)")
        finally:
            self.frames = number - self.first_frame + 1


_FRAG_KEPT = bytes(1 if b & 0x3F else 0 for b in range(256))
"""IPv4's flags and high bits of the fragment offset: 1 for a fragment (an offset or MF)."""
_FIRST_KEPT = bytes(1 if UDP_INTERESTING[b] else 0 for b in range(256))
"""A UDP payload's first byte: 1 for one the drop test keeps."""
_PCAP_ALIKE = ((8, 9, 10, 11, 12, 13, 14, 15, 28, 29, 30, 37, 39), ((36, _FRAG_KEPT), (58, _FIRST_KEPT)))
"""What :func:`alike_records` reads of a pcap record: the bytes that are the same in every
record of a run (its two lengths, the EtherType, IPv4 version/IHL, the fragment offset's low
byte, the protocol), and those that may vary, with a table that makes each value the drop test
keeps a 1 (the flags and the offset's high bits, the payload's first byte)."""
_PCAPNG_ALIKE = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 20, 21, 22, 23, 24, 25, 26, 27, 40, 41, 42, 49, 51),
    ((48, _FRAG_KEPT), (70, _FIRST_KEPT)),
)
"""The same of an Enhanced Packet Block: its type and length, the interface, the two lengths,
then the frame's bytes as in a pcap record."""
_ALIKE_MOST = 512

Alike = tuple[tuple[int, ...], tuple[tuple[int, bytes], ...]]


def _before(alike: Alike, high: tuple[int, ...], low: int, limit: int) -> Callable[[int], Alike | None]:
    """What :func:`alike_records` reads of a record when records at or after a time must not
    be taken: ``limit``, in units of the byte at offset ``low`` of the record's time, whose
    higher bytes are at ``high``. For a run whose first record's time in those units is
    ``t``: besides ``alike``, the higher bytes, the same as the first record's (a run ends
    where they change), and when they are ``limit``'s too, a byte at ``low`` below ``limit``'s;
    None (no run) when ``t`` is not below ``limit``."""
    before = (alike[0] + high, alike[1])
    just_before = (before[0], (*before[1], (low, bytes(0 if b < (limit & 0xFF) else 1 for b in range(256)))))
    return lambda t: before if t >> 8 < limit >> 8 else just_before if t < limit else None


def _pcap_alike(order: str, until_sec: int) -> Callable[[int], Alike | None]:
    """For a pcap record, by the seconds of a run's first record: records of ``until_sec`` or
    later are not taken (the three high bytes of the seconds, then the low byte)."""
    if until_sec >= 1 << 32:  # no time to stop at
        return lambda sec: _PCAP_ALIKE
    return _before(_PCAP_ALIKE, (1, 2, 3) if order == "<" else (0, 1, 2), 0 if order == "<" else 3, until_sec)


def _pcapng_alike(order: str, latest: int) -> Callable[[int], Alike | None]:
    """For an Enhanced Packet Block, by its timestamp >> 16: blocks after ``latest`` (in the
    interface's units) are not taken; nor, to be sure, those within 65,536 units before it
    (the five high bytes of the timestamp, then the next one)."""
    if latest >= NO_RECORD:
        return lambda t: _PCAPNG_ALIKE
    high, low = ((12, 13, 14, 15, 19), 18) if order == "<" else ((12, 13, 14, 15, 16), 17)
    return _before(_PCAPNG_ALIKE, high, low, latest >> 16)


def alike_records(buf: bytes | bytearray, first: int, step: int, last_start: int, alike: Alike) -> int:
    """How many records after the one at ``first`` (which the drop test dropped), lying end to
    end ``step`` bytes apart and starting at most at ``last_start``, the drop test drops too
    (at most ``_ALIKE_MOST``): on a trunk, runs of RTP packets of one length.

    Each byte the drop test reads (``alike``: :data:`_PCAP_ALIKE`, :data:`_PCAPNG_ALIKE`) is
    read from all the records at once, by a slice with a step (that byte of each record), and
    compared with the first record's, or mapped through its table, in one call."""
    start = first + step
    many = min((last_start - start) // step + 1, _ALIKE_MOST)
    if many <= 0:
        return 0
    same, kept = alike
    for at in same:
        column = buf[start + at : start + many * step : step]
        value = buf[first + at : first + at + 1]
        if column != value * many:
            many -= len(column.lstrip(value))
            if not many:
                return 0
    for at, table in kept:
        stop = buf[start + at : start + many * step : step].translate(table).find(1)
        if stop == 0:
            return 0
        if stop > 0:
            many = stop
    return many


class _Dropped:
    """Counts runs of records that :class:`FastRun`'s drop test drops, as
    :meth:`Decoder.feed` would have counted them (through :meth:`Decoder.skipped_fast`),
    reading the times of a run's first and last records only."""

    def __init__(self, decoder: Decoder, stats: CaptureStats, order: str, scale: int, counts: bool) -> None:
        self.decoder = decoder
        self.stats = stats
        self.times = struct.Struct(order + "II").unpack_from
        self.scale = scale
        self.counts = counts
        """False in a process that leaves counting them to process 0."""

    def count(self, buf: bytearray, first: int, last: int, frames: int, nbytes: int, cut: int) -> None:
        """``frames`` dropped records, the first and last at those offsets of ``buf``."""
        self.stats.cut_frames += cut
        if self.counts:
            sec, frac = self.times(buf, first)
            first_ns = sec * 1_000_000_000 + frac * self.scale
            if last != first:
                sec, frac = self.times(buf, last)
            self.decoder.skipped_fast(frames, nbytes, first_ns, sec * 1_000_000_000 + frac * self.scale)


def _latest(iface: Interface, until_ns: int | None) -> int:
    """The last timestamp of ``iface`` whose frames FastPcapngRun may drop in bulk: none (-1)
    for an interface that is not Ethernet, the last at most ``until_ns`` when it is set."""
    if iface.linktype != ETHERNET:
        return -1
    return NO_RECORD if until_ns is None else iface.last_ts(until_ns)


_PLAIN_HEAD = struct.Struct("!12xHB5xHxB10xHH4xB").unpack_from
"""What :func:`plain_sip` reads of an Ethernet frame, as FastRun's ``head`` reads it."""


def plain_sip(frame: bytes) -> bool:
    """Whether an Ethernet frame is a plain SIP datagram, as :class:`FastRun` tells them
    apart for ``share``: IPv4 without options, UDP, not a fragment, a payload that starts with
    a letter, no tunnel port."""
    if len(frame) <= 42:
        return False
    eth, vihl, frag, proto, sport, dport, first = _PLAIN_HEAD(frame)
    return (
        eth == 0x0800
        and vihl == 0x45
        and proto == 17
        and not frag & 0x3FFF
        and bool(SIP_FIRST[first])
        and sport not in TUNNEL_PORTS
        and dport not in TUNNEL_PORTS
    )


def owns_frame(number: int, process: int, processes: int) -> bool:
    """Whether process ``process`` of ``processes`` decodes plain SIP datagram ``number``
    (runs of 16 frames in turn)."""
    return (number >> 4) % processes == process


class FastPcapngRun(_FusedRun):
    """Messages of one pcapng stream: Enhanced Packet Blocks of Ethernet interfaces that the
    drop test drops are walked in place and only counted, as :class:`FastRun` does for pcap;
    every other block is read by the stream's own :meth:`PcapngBlocks.step`, and its frame
    goes to :meth:`Decoder.feed` with the number the plain reader would give it."""

    def __init__(
        self,
        blocks: PcapngBlocks,
        decoder: Decoder,
        first_frame: int,
        share: tuple[int, int] | None = None,
        until_ns: int | None = None,
    ) -> None:
        super().__init__(decoder, first_frame, share, until_ns)
        self.blocks = blocks
        self.rest: RawFrame | None = None
        """The frame, read already, before which ``until_ns`` stopped the run."""

    def rest_frames(self) -> Iterator[RawFrame] | None:
        """The frames from where ``until_ns`` stopped the run; None when it did not."""
        return None if self.rest is None else itertools.chain((self.rest,), self.blocks.frames())

    def by_frame(self) -> Iterator[tuple[int, list[SipMessage]]]:
        """The frames that completed messages: (frame number, its messages)."""
        rd = self.blocks
        stats = rd.stats
        decoder = self.decoder
        feed, skipped_fast = decoder.feed, decoder.skipped_fast
        interesting = UDP_INTERESTING
        mine, procs = self.share if self.share is not None else (0, 0)
        number = self.first_frame - 1
        order = ""
        head: Callable[..., tuple[Any, ...]] = struct.Struct("<I").unpack_from
        stamp: Callable[..., tuple[Any, ...]] = head
        ipv4 = frag_mask = 0
        until = self.until_ns
        latest: list[int] = []  # per interface, the last timestamp at most ``until``
        timed: list[Callable[[int], Alike | None]] = []  # per interface, what runs read
        latest_of: list[Interface] | None = None
        epb, max_block = EPB, MAX_BLOCK  # locals: read on every block
        alike = alike_records
        ahead = rd.take_ahead()  # a frame first_time() read
        try:
            while True:
                if ahead is None:
                    if rd.order != order:  # a new section may change it
                        order = rd.order
                        # Block type and length, the EPB's fields, then what the drop test reads
                        # of the frame (as FastRun reads it), in one struct call. The times of a
                        # run of dropped blocks are turned into ns only at its ends.
                        head = struct.Struct(order + "IIIIIII12xHB5xHxB18xB").unpack_from
                        stamp = struct.Struct(order + "8xIII").unpack_from
                        ipv4, frag_mask = (0x0008, 0xFF3F) if order == "<" else (0x0800, 0x3FFF)
                    buf, pos, ifaces = rd.buf, rd.pos, rd.interfaces
                    if ifaces is not latest_of or len(latest) != len(ifaces):  # a new section or interface
                        latest_of = ifaces
                        latest = [_latest(i, until) for i in ifaces]
                        timed = [_pcapng_alike(order, t) for t in latest]
                    nbuf, nif = len(buf), len(latest)
                    last = nbuf - _NG_HEAD_LEN  # a block from here on is left to step()
                    first_drop = pos
                    skipped = skipped_bytes = cut = same = 0  # same: the length of the last block dropped
                    while pos <= last and not rd.first:
                        btype, blen, ifid, hi, lo, caplen, origlen, eth, vihl, frag, proto, first = head(buf, pos)
                        if not (
                            btype == epb
                            and 32 <= blen <= max_block
                            and not blen % 4
                            and pos + blen <= nbuf
                            and ifid < nif
                            and 42 < caplen <= blen - 32
                            and eth == ipv4
                            and vihl == 0x45
                            and proto == 17
                            and not frag & frag_mask
                            and not interesting[first]
                            and (hi << 32 | lo) <= latest[ifid]
                        ):
                            break
                        last_drop = pos
                        pos += blen
                        skipped += 1
                        skipped_bytes += caplen
                        cut += caplen < origlen
                        if blen == same:  # two alike: perhaps a run of them (RTP)
                            spec = timed[ifid]((hi << 32 | lo) >> 16)
                            many = alike(buf, last_drop, blen, min(last, nbuf - blen), spec) if spec else 0
                            if many:
                                skipped += many
                                skipped_bytes += many * caplen
                                cut += many * (caplen < origlen)
                                last_drop += many * blen
                                pos += many * blen
                        same = blen
                    rd.pos = pos
                    if skipped:
                        number += skipped
                        stats.cut_frames += cut
                    if skipped and not mine:  # (process 0 counts them when several share the file)
                        ifid, hi, lo = stamp(buf, first_drop)
                        first_ns = ifaces[ifid].ns((hi << 32) | lo)
                        ifid, hi, lo = stamp(buf, last_drop)
                        skipped_fast(skipped, skipped_bytes, first_ns, ifaces[ifid].ns((hi << 32) | lo))
                    try:
                        got = rd.step()
                    except GZIP_ERRORS as exc:
                        stats.stop(f"compressed data is damaged or cut short ({exc})")
                        break
                else:
                    got, ahead = ahead, None
                if got is DONE:
                    break
                if got is None:
                    continue
                ts_ns, linktype, data, _orig = got  # type: ignore[misc]  # not DONE: a frame
                if until is not None and ts_ns > until:
                    self.rest = got  # type: ignore[assignment]  # a frame
                    break
                number += 1
                if procs and self._elsewhere(number, linktype == ETHERNET and plain_sip(data), len(data), ts_ns):
                    continue
                out = feed(number, ts_ns, linktype, data)
                if out:
                    yield number, out
                if self.progress is not None and not number & 0x1FFF:
                    self.progress(decoder.stats.bytes)
        finally:
            self.frames = number - self.first_frame + 1


def fast_run(
    source: PcapRecords | PcapngBlocks,
    decoder: Decoder,
    first_frame: int,
    *,
    share: tuple[int, int] | None = None,
    until_ns: int | None = None,
) -> FastRun | FastPcapngRun:
    """The fused loop for ``source``: :class:`FastRun` for a classic pcap of Ethernet frames,
    :class:`FastPcapngRun` for pcapng."""
    if isinstance(source, PcapRecords):
        return FastRun(source, decoder, first_frame, share, until_ns)
    return FastPcapngRun(source, decoder, first_frame, share, until_ns)
