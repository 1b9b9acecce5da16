"""pcapng files (draft-ietf-opsawg-pcapng): sections, interfaces, EPB/SPB/OPB, as a stream.

Several sections (each with its own byte order) and several interfaces with
different link types and timestamp resolutions are handled; blocks of other types
are skipped and counted.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from typing import BinaryIO, NamedTuple

from analyzer.capture.stats import NO_RECORD, CaptureStats, RawFrame
from analyzer.errors import CaptureCutError, CaptureFormatError

SHB = 0x0A0D0D0A
IDB = 0x00000001
OPB = 0x00000002  # obsolete Packet Block
SPB = 0x00000003
EPB = 0x00000006
BYTE_ORDER_MAGIC = 0x1A2B3C4D
CHUNK = 1 << 20
MAX_BLOCK = 16 * 1024 * 1024
OPT_TSRESOL = 9
OPT_TSOFFSET = 14


class Interface(NamedTuple):
    linktype: int
    snaplen: int
    ts_mul: int
    """Nanoseconds per timestamp unit when the resolution is a power of ten at most 1 ns."""
    ts_div: int
    ts_shift: int
    """For 2^-n resolutions: ns = (ts * 1e9) >> ts_shift."""
    ts_offset_ns: int

    def ns(self, ts: int) -> int:
        """A timestamp of this interface in nanoseconds since the epoch."""
        ns = ts * 1000000000 >> self.ts_shift if self.ts_shift else ts * self.ts_mul // self.ts_div
        return ns + self.ts_offset_ns

    def last_ts(self, ns: int) -> int:
        """The largest timestamp of this interface that is at most ``ns`` nanoseconds: :meth:`ns`
        rounds down, so ``ns(ts) <= N`` is ``ts * 1e9 < (N + 1) << shift`` (or ``ts * mul <
        (N + 1) * div``). In closed form: at 2^-64 s a nanosecond is 18 billion units."""
        after = ns - self.ts_offset_ns + 1  # the first nanosecond too late
        if self.ts_shift:
            return ((after << self.ts_shift) - 1) // 1000000000
        return (after * self.ts_div - 1) // self.ts_mul


def read_pcapng(stream: BinaryIO, head: bytes, stats: CaptureStats) -> PcapngBlocks:
    """Frames of a pcapng file whose first bytes ``head`` were already read."""
    return PcapngBlocks(stream, head, stats)


class _Done:
    """What :meth:`PcapngBlocks.step` returns at the end of the file (or where reading stopped)."""


DONE = _Done()


class PcapngBlocks:
    """The frames of one pcapng stream, read once, block by block (:meth:`step`). A reader
    that needs no frame objects for most frames can walk the blocks itself and hand the
    others to :meth:`step` (:mod:`analyzer.decode.fastpcap`)."""

    def __init__(self, stream: BinaryIO, head: bytes, stats: CaptureStats) -> None:
        self.stream = stream
        self.buf = head
        self.pos = 0
        self.offset = 0  # file offset of buf[0]
        self.stats = stats
        self.order = "<"
        self.interfaces: list[Interface] = []
        self.first = True
        self._frames: Iterator[RawFrame] | None = None
        self._ahead: RawFrame | _Done | None = None
        """The first frame (or the end), read by :meth:`first_time` and not taken yet."""

    def _fill(self, need: int) -> bool:
        """Make ``need`` bytes available at ``pos``; False at end of file."""
        while len(self.buf) - self.pos < need:
            chunk = self.stream.read(max(CHUNK, need))
            if not chunk:
                return False
            self.offset += self.pos
            self.buf = self.buf[self.pos :] + chunk
            self.pos = 0
        return True

    def __iter__(self) -> Iterator[RawFrame]:
        return self

    def __next__(self) -> RawFrame:
        if self._frames is None:
            self._frames = self.frames()
        return next(self._frames)

    def frames(self) -> Iterator[RawFrame]:
        ahead = self.take_ahead()
        if ahead is DONE:
            return
        if ahead is not None:
            yield ahead  # type: ignore[misc]  # not DONE: a frame
        while True:
            got = self.step()
            if got is DONE:
                return
            if got is not None:
                yield got  # type: ignore[misc]  # not DONE: a frame

    def first_time(self) -> int | None:
        """Time of the first frame, in ns: its blocks are read, the frame is kept for whoever
        reads on (:meth:`frames`, :meth:`take_ahead`); :data:`NO_RECORD` when there is none.
        None once frames have been taken."""
        if self._frames is not None or not self.first:
            return None
        while self._ahead is None:
            self._ahead = self.step()
        return NO_RECORD if self._ahead is DONE else self._ahead[0]  # type: ignore[index]  # a frame

    def take_ahead(self) -> RawFrame | _Done | None:
        """What :meth:`first_time` read ahead (a frame, or :data:`DONE`), once; None if nothing."""
        ahead, self._ahead = self._ahead, None
        return ahead

    def step(self) -> RawFrame | _Done | None:
        """Read one block: its frame, None for a block without one, :data:`DONE` at the end."""
        if not self._fill(12):
            if self.first:
                raise CaptureCutError(f"{self.stats.path}: pcapng section header is cut short")
            if self.pos < len(self.buf):
                self._stop(f"last block cut short at byte {self.offset + self.pos}")
            return DONE
        btype, blen = struct.unpack_from(self.order + "II", self.buf, self.pos)
        if btype == SHB:
            if not self._guarded(self._section_order):
                return DONE
            btype, blen = struct.unpack_from(self.order + "II", self.buf, self.pos)
        elif self.first:
            raise CaptureFormatError(f"{self.stats.path}: pcapng file does not start with a Section Header Block")
        self.first = False
        if blen < 12 or blen % 4 or blen > MAX_BLOCK:
            self._stop(f"block at byte {self.offset + self.pos} has a bad length {blen}")
            return DONE
        if not self._fill(blen):
            self._stop(f"last block cut short at byte {self.offset + self.pos}")
            return DONE
        if btype == EPB and blen >= 32:
            # The common block, read in place: no copy of the block body.
            pos, self.pos = self.pos, self.pos + blen
            ifid, hi, lo, caplen, origlen = struct.unpack_from(self.order + "IIIII", self.buf, pos + 8)
            return self._frame(ifid, (hi << 32) | lo, self.buf[pos + 28 : pos + 28 + min(caplen, blen - 32)], origlen)
        at = self.offset + self.pos
        body = self.buf[self.pos + 8 : self.pos + blen - 4]
        self.pos += blen
        try:
            return self._block(btype, body)
        except CaptureFormatError as exc:
            self._stop(f"block at byte {at}: {exc}")
            return DONE

    def _stop(self, why: str) -> None:
        self.stats.stop(why)

    def _guarded(self, read: Callable[[], None]) -> bool:
        """Run ``read``; a broken first section header is an error (nothing was read yet), a
        broken later one stops reading with a warning and keeps the frames before it."""
        try:
            read()
        except CaptureFormatError as exc:
            if self.first:
                raise CaptureFormatError(f"{self.stats.path}: {exc}") from None
            self._stop(f"block at byte {self.offset + self.pos}: {exc}")
            return False
        return True

    def _section_order(self) -> None:
        """Read the byte-order magic of a new section (it decides how to read the rest)."""
        if not self._fill(12):
            raise CaptureCutError("pcapng section header is cut short")
        magic = self.buf[self.pos + 8 : self.pos + 12]
        if magic == struct.pack("<I", BYTE_ORDER_MAGIC):
            self.order = "<"
        elif magic == struct.pack(">I", BYTE_ORDER_MAGIC):
            self.order = ">"
        else:
            raise CaptureFormatError("pcapng section header has a bad byte-order magic")
        self.interfaces = []  # interface ids are per section

    def _block(self, btype: int, body: bytes) -> RawFrame | None:
        if btype == EPB:
            return self._epb(body)
        if btype == SPB:
            return self._spb(body)
        if btype == IDB:
            self._idb(body)
        elif btype == OPB:
            return self._opb(body)
        elif btype != SHB:
            self.stats.skipped_blocks += 1
        return None

    def _idb(self, body: bytes) -> None:
        if len(body) < 8:
            raise CaptureFormatError("pcapng interface block is too short")
        linktype, _, snaplen = struct.unpack_from(self.order + "HHI", body, 0)
        resol, offset = 6, 0
        for code, value in _options(body[8:], self.order):
            if code == OPT_TSRESOL and value:
                resol = value[0]
            elif code == OPT_TSOFFSET and len(value) >= 8:
                offset = struct.unpack_from(self.order + "q", value)[0] * 1_000_000_000
        self.interfaces.append(_interface(linktype, snaplen, resol, offset))
        self.stats.linktypes.add(linktype)

    def _epb(self, body: bytes) -> RawFrame | None:
        if len(body) < 20:
            return None
        ifid, hi, lo, caplen, origlen = struct.unpack_from(self.order + "IIIII", body, 0)
        return self._frame(ifid, (hi << 32) | lo, body[20 : 20 + caplen], origlen)

    def _opb(self, body: bytes) -> RawFrame | None:
        if len(body) < 20:
            return None
        ifid, _, hi, lo, caplen, origlen = struct.unpack_from(self.order + "HHIIII", body, 0)
        return self._frame(ifid, (hi << 32) | lo, body[20 : 20 + caplen], origlen)

    def _spb(self, body: bytes) -> RawFrame | None:
        if len(body) < 4 or not self.interfaces:
            return None
        (origlen,) = struct.unpack_from(self.order + "I", body, 0)
        iface = self.interfaces[0]
        caplen = min(origlen, iface.snaplen or origlen, len(body) - 4)
        if caplen < origlen:
            self.stats.cut_frames += 1
        # SPB has no timestamp: the frame gets 0 ns, as Wireshark shows it.
        return (0, iface.linktype, body[4 : 4 + caplen], origlen)

    def _frame(self, ifid: int, ts: int, data: bytes, origlen: int) -> RawFrame | None:
        if ifid >= len(self.interfaces):
            self.stats.skipped_blocks += 1
            return None
        if len(data) < origlen:
            self.stats.cut_frames += 1
        i = self.interfaces[ifid]
        return (i.ns(ts), i.linktype, data, origlen)


def _interface(linktype: int, snaplen: int, resol: int, offset_ns: int) -> Interface:
    """Interface with its timestamp scale (if_tsresol: high bit set means 2^-n, else 10^-n)."""
    if resol & 0x80:  # 2^-n s; n = 0 (seconds) is no shift
        shift = resol & 0x7F
        return Interface(linktype, snaplen, 1 if shift else 10**9, 1, shift, offset_ns)
    if resol <= 9:
        return Interface(linktype, snaplen, 10 ** (9 - resol), 1, 0, offset_ns)
    return Interface(linktype, snaplen, 1, 10 ** (resol - 9), 0, offset_ns)


def _options(data: bytes, order: str) -> Iterator[tuple[int, bytes]]:
    """(code, value) of each option until opt_endofopt or the end of the data."""
    pos = 0
    while pos + 4 <= len(data):
        code, length = struct.unpack_from(order + "HH", data, pos)
        if code == 0:
            return
        yield code, data[pos + 4 : pos + 4 + length]
        pos += 4 + ((length + 3) & ~3)
