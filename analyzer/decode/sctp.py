"""SCTP (RFC 9260) common header and user-data chunks, and reassembly of fragmented messages.

SIP over SCTP (RFC 4168) sends one SIP message per SCTP user message; a message larger
than the path MTU is split over several DATA chunks (B/E flags, consecutive TSNs, RFC
9260 §6.9). :func:`parse_sctp` keeps the DATA (type 0) and I-DATA (type 64, RFC 8260)
chunks of a packet and skips every other chunk type; :class:`SctpReassembler` joins the
fragments back into messages.

The CRC32c checksum is not verified: captures taken on the sending host carry
offloaded, still-empty checksums, and a corrupted packet would not have reached the
peer's SIP stack anyway.
"""

from __future__ import annotations

import struct
from collections.abc import Hashable
from typing import NamedTuple

from analyzer.errors import DecodeError

__all__ = [
    "DEFAULT_MAX_MESSAGE",
    "DEFAULT_MAX_PENDING",
    "SctpData",
    "SctpPacket",
    "SctpReassembler",
    "parse_sctp",
]

DEFAULT_MAX_MESSAGE = 1 << 20
"""Largest reassembled user message accepted, in bytes."""
DEFAULT_MAX_PENDING = 1024
"""Most fragments held, all associations together, while waiting for the rest."""

_COMMON_HEADER = struct.Struct("!HHII")  # src port, dst port, verification tag, checksum
_CHUNK_HEADER = struct.Struct("!BBH")  # type, flags, length
_DATA_FIELDS = struct.Struct("!IHHI")  # TSN, stream id, stream seq, PPID (RFC 9260 §3.3.1)
_IDATA_FIELDS = struct.Struct("!IHxxII")  # TSN, stream id, reserved, MID, PPID/FSN (RFC 8260 §2.1)

_TYPE_DATA = 0
_TYPE_IDATA = 64

# Flag bits of DATA and I-DATA chunks (RFC 9260 §3.3.1, RFC 8260 §2.1).
_FLAG_END = 0x01
_FLAG_BEGIN = 0x02
_FLAG_UNORDERED = 0x04

_TSN_MOD = 1 << 32


class SctpData(NamedTuple):
    """The user data of one DATA or I-DATA chunk."""

    tsn: int
    stream_id: int
    stream_seq: int
    """Stream sequence number (DATA); the 32-bit Message Identifier for I-DATA."""
    ppid: int
    """Payload protocol identifier; 0 on I-DATA fragments after the first, which carry none."""
    flags_begin: bool
    flags_end: bool
    unordered: bool
    payload: bytes
    fsn: int = 0
    """I-DATA only: fragment sequence number (0 for the first fragment). 0 for DATA."""
    interleaved: bool = False
    """True when the chunk was an I-DATA chunk (fragments are then matched by MID and FSN)."""


class SctpPacket(NamedTuple):
    """An SCTP packet reduced to its common header and its user-data chunks."""

    src_port: int
    dst_port: int
    vtag: int
    chunks: tuple[SctpData, ...]


def parse_sctp(data: bytes) -> SctpPacket | None:
    """Decode an SCTP packet (the IP payload).

    Returns None when ``data`` cannot be SCTP at all (shorter than the 12-byte common
    header); raises :class:`DecodeError` (``sctp-bad-chunk``, ``sctp-truncated``) when a
    chunk is broken.
    """
    if len(data) < _COMMON_HEADER.size:
        return None
    src_port, dst_port, vtag, _ = _COMMON_HEADER.unpack_from(data)
    chunks: list[SctpData] = []
    offset = _COMMON_HEADER.size
    while offset < len(data):
        ctype, flags, length, value = _read_chunk(data, offset)
        if ctype == _TYPE_DATA:
            chunks.append(_data_chunk(flags, value))
        elif ctype == _TYPE_IDATA:
            chunks.append(_idata_chunk(flags, value))
        # RFC 9260 §3.2: chunks are padded to a multiple of 4 bytes; the padding is not
        # counted in the chunk length. A last chunk without its padding is tolerated.
        offset += (length + 3) & ~3
    return SctpPacket(src_port=src_port, dst_port=dst_port, vtag=vtag, chunks=tuple(chunks))


def _read_chunk(data: bytes, offset: int) -> tuple[int, int, int, bytes]:
    """(type, flags, length, value) of the chunk at ``offset``."""
    if len(data) - offset < _CHUNK_HEADER.size:
        raise DecodeError("sctp-truncated", f"{len(data) - offset} bytes left for a chunk header")
    ctype, flags, length = _CHUNK_HEADER.unpack_from(data, offset)
    # RFC 9260 §3.2: the length counts the 4-byte chunk header, so it is at least 4.
    if length < _CHUNK_HEADER.size:
        raise DecodeError("sctp-bad-chunk", f"chunk type {ctype} length {length}")
    if offset + length > len(data):
        raise DecodeError("sctp-truncated", f"chunk type {ctype} length {length} past the end")
    return ctype, flags, length, data[offset + _CHUNK_HEADER.size : offset + length]


def _data_chunk(flags: int, value: bytes) -> SctpData:
    # RFC 9260 §3.3.1: TSN, stream id, stream sequence number, PPID, then at least one byte.
    if len(value) <= _DATA_FIELDS.size:
        raise DecodeError("sctp-bad-chunk", f"DATA chunk with {len(value)} bytes of value")
    tsn, sid, ssn, ppid = _DATA_FIELDS.unpack_from(value)
    return SctpData(
        tsn=tsn,
        stream_id=sid,
        stream_seq=ssn,
        ppid=ppid,
        flags_begin=bool(flags & _FLAG_BEGIN),
        flags_end=bool(flags & _FLAG_END),
        unordered=bool(flags & _FLAG_UNORDERED),
        payload=value[_DATA_FIELDS.size :],
    )


def _idata_chunk(flags: int, value: bytes) -> SctpData:
    # RFC 8260 §2.1: the last field is the PPID on the first fragment, the FSN on the others.
    if len(value) <= _IDATA_FIELDS.size:
        raise DecodeError("sctp-bad-chunk", f"I-DATA chunk with {len(value)} bytes of value")
    tsn, sid, mid, ppid_or_fsn = _IDATA_FIELDS.unpack_from(value)
    begin = bool(flags & _FLAG_BEGIN)
    return SctpData(
        tsn=tsn,
        stream_id=sid,
        stream_seq=mid,
        ppid=ppid_or_fsn if begin else 0,
        flags_begin=begin,
        flags_end=bool(flags & _FLAG_END),
        unordered=bool(flags & _FLAG_UNORDERED),
        payload=value[_IDATA_FIELDS.size :],
        fsn=0 if begin else ppid_or_fsn,
        interleaved=True,
    )


_Group = tuple[Hashable, ...]


class SctpReassembler:
    """Joins fragmented SCTP user messages, bounded in memory.

    ``key`` names the association and direction (e.g. addresses, ports and verification
    tag); the caller chooses it. DATA fragments of one message have consecutive TSNs
    (RFC 9260 §6.9), so they are kept per (key, stream, U flag) by TSN, and a message is
    complete when a B fragment, an E fragment and every TSN between them are present.
    I-DATA fragments are kept per (key, stream, U flag, MID) by FSN (RFC 8260 §2.1).

    Bounds: a partial message growing past ``max_message`` raises ``sctp-too-large`` and
    its fragments are dropped; past ``max_pending`` held fragments (each at most 64 KiB,
    the chunk length being 16-bit) the oldest fragment is dropped and counted in
    :attr:`dropped_fragments`, so fragments whose siblings were never captured age out.
    """

    __slots__ = ("_groups", "_order", "dropped_fragments", "max_message", "max_pending")

    def __init__(self, max_message: int = DEFAULT_MAX_MESSAGE, max_pending: int = DEFAULT_MAX_PENDING) -> None:
        self.max_message = max_message
        self.max_pending = max_pending
        self.dropped_fragments = 0
        """Fragments thrown away to stay within ``max_pending``."""
        self._groups: dict[_Group, dict[int, SctpData]] = {}
        """Held fragments by group, then by TSN (DATA) or FSN (I-DATA)."""
        self._order: dict[tuple[_Group, int], None] = {}
        """Every held fragment, oldest first (a dict as an ordered set)."""

    @property
    def pending_fragments(self) -> int:
        """Fragments held now, waiting for the rest of their message."""
        return len(self._order)

    def feed(self, key: Hashable, chunk: SctpData) -> bytes | None:
        """Add one chunk; return the whole user message when this chunk completes it."""
        if chunk.flags_begin and chunk.flags_end:
            return chunk.payload
        group: _Group
        if chunk.interleaved:
            group, seq = (key, chunk.stream_id, chunk.unordered, chunk.stream_seq), chunk.fsn
        else:
            group, seq = (key, chunk.stream_id, chunk.unordered), chunk.tsn
        held = self._groups.setdefault(group, {})
        held[seq] = chunk  # a retransmitted fragment simply replaces itself
        self._order[(group, seq)] = None
        run, complete = _run_around(held, seq)
        if complete:
            message = b"".join(held[s].payload for s in run)
            self._forget(group, run)
            return message
        if sum(len(held[s].payload) for s in run) > self.max_message:
            self._forget(group, run)
            raise DecodeError("sctp-too-large", f"partial message over {self.max_message} bytes")
        self._evict()
        return None

    def _forget(self, group: _Group, seqs: list[int]) -> None:
        held = self._groups[group]
        for seq in seqs:
            del held[seq]
            del self._order[(group, seq)]
        if not held:
            del self._groups[group]

    def _evict(self) -> None:
        while len(self._order) > self.max_pending:
            group, seq = next(iter(self._order))
            self._forget(group, [seq])
            self.dropped_fragments += 1


def _run_around(held: dict[int, SctpData], seq: int) -> tuple[list[int], bool]:
    """The fragments next to ``seq`` that can belong to its message, and whether they are all of it.

    Walks back to a B fragment and forward to an E fragment over consecutive sequence
    numbers (32-bit serial numbers, RFC 9260 §1.6, so the walk wraps); a gap, or an E
    met going back (B going forward), ends the walk without a complete message.
    """
    start = seq
    chunk = held[seq]
    while not chunk.flags_begin:
        prev = held.get((start - 1) % _TSN_MOD)
        if prev is None or prev.flags_end:
            break
        start = (start - 1) % _TSN_MOD
        chunk = prev
    begun = chunk.flags_begin
    run = [start]
    cur = start
    chunk = held[start]
    while not chunk.flags_end:
        nxt = held.get((cur + 1) % _TSN_MOD)
        if nxt is None or nxt.flags_begin:
            break
        cur = (cur + 1) % _TSN_MOD
        run.append(cur)
        chunk = nxt
    return run, begun and chunk.flags_end
