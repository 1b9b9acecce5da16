"""Write a pcap that holds a capture N times over, each copy later in time and with its own calls.

Used by make_captures.sh to build rtp_heavy_x4.pcap from rtp_heavy.pcap. Copy k (from 0) has:

* every timestamp moved by k x (duration of the capture + 1 s), so the file stays in time order;
* the token ``sfb0`` replaced by ``sfb<k>`` in the UDP payloads to or from the SIP port. The
  benchmark UAC scenario puts that token in the Call-ID, the From tag and the Via branches, so
  the copies are distinct dialogs and transactions (RFC 3261 sections 12 and 17.2.3), not
  retransmissions of the first one. The token has the same length in every copy, so no length
  field changes; the UDP checksum of a rewritten datagram is set to 0, "no checksum" for UDP
  over IPv4 (RFC 768).

Only what tcpdump writes on ``lo`` is handled: classic pcap, Ethernet link type, IPv4.
Stdlib only: it runs before any project package is installed.
"""

from __future__ import annotations

import argparse
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

_MAGIC_US = 0xA1B2C3D4
_MAGIC_NS = 0xA1B23C4D
_LINKTYPE_ETHERNET = 1
_ETHERTYPE_IPV4 = 0x0800
_IPPROTO_UDP = 17
_TOKEN = b"sfb0"
_GAP_S = 1


@dataclass(frozen=True, slots=True)
class Record:
    """One packet record: its timestamp in ticks of the file's resolution, and its bytes."""

    ts: int
    orig_len: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Capture:
    """A whole classic pcap file in memory (the benchmark captures are a few tens of MB)."""

    endian: str
    header: bytes
    ticks_per_s: int
    records: tuple[Record, ...]


def read_pcap(path: Path) -> Capture:
    """Read a classic pcap file; refuse anything else rather than guess."""
    raw = path.read_bytes()
    if len(raw) < 24:
        raise ValueError(f"{path}: too short for a pcap header")
    endian = ""
    for candidate in ("<", ">"):
        magic = struct.unpack_from(candidate + "I", raw, 0)[0]
        if magic in (_MAGIC_US, _MAGIC_NS):
            endian = candidate
            break
    if not endian:
        raise ValueError(f"{path}: not a classic pcap file (pcapng is not handled)")
    magic, linktype = struct.unpack_from(endian + "I16xI", raw, 0)
    if linktype & 0x0FFFFFFF != _LINKTYPE_ETHERNET:
        raise ValueError(f"{path}: link type {linktype}, only Ethernet (1) is handled")
    ticks = 1_000_000 if magic == _MAGIC_US else 1_000_000_000
    return Capture(endian, raw[:24], ticks, tuple(_records(raw, endian, ticks)))


def _records(raw: bytes, endian: str, ticks: int) -> list[Record]:
    records: list[Record] = []
    pos = 24
    # A cut last record is dropped: tcpdump stopped by SIGINT writes whole records only.
    while pos + 16 <= len(raw):
        sec, frac, incl, orig = struct.unpack_from(endian + "IIII", raw, pos)
        pos += 16
        if pos + incl > len(raw):
            break
        records.append(Record(sec * ticks + frac, orig, raw[pos : pos + incl]))
        pos += incl
    return records


def rewrite_sip(frame: bytes, sip_port: int, token: bytes) -> bytes:
    """Return the frame with ``sfb0`` replaced by ``token`` if it is UDP to/from ``sip_port``."""
    if len(frame) < 14 + 20 + 8 or struct.unpack_from("!H", frame, 12)[0] != _ETHERTYPE_IPV4:
        return frame
    ihl = (frame[14] & 0x0F) * 4
    if frame[14 + 9] != _IPPROTO_UDP:
        return frame
    udp = 14 + ihl
    sport, dport = struct.unpack_from("!HH", frame, udp)
    if sip_port not in (sport, dport) or _TOKEN not in frame[udp + 8 :]:
        return frame
    payload = frame[udp + 8 :].replace(_TOKEN, token)
    return frame[: udp + 6] + b"\x00\x00" + payload


def repeat(capture: Capture, copies: int, sip_port: int) -> bytes:
    """The bytes of a pcap holding ``copies`` shifted, re-tokened copies of ``capture``."""
    if not capture.records:
        raise ValueError("the capture holds no packet")
    first = capture.records[0].ts
    span = capture.records[-1].ts - first + _GAP_S * capture.ticks_per_s
    out = bytearray(capture.header)
    for k in range(copies):
        token = b"sfb" + str(k).encode()
        for rec in capture.records:
            data = rewrite_sip(rec.data, sip_port, token) if k else rec.data
            sec, frac = divmod(rec.ts + k * span, capture.ticks_per_s)
            out += struct.pack(capture.endian + "IIII", sec, frac, len(data), rec.orig_len)
            out += data
    return bytes(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("dest", type=Path)
    parser.add_argument("--copies", type=int, default=4, help="1 to 10 (default 4)")
    parser.add_argument("--sip-port", type=int, required=True, help="UDP port SIP was sent on")
    args = parser.parse_args(argv)
    if not 1 <= args.copies <= 10:
        parser.error("--copies must be 1..10 (the token keeps one digit)")
    try:
        data = repeat(read_pcap(args.source), args.copies, args.sip_port)
    except (OSError, ValueError) as exc:
        print(f"repeat_capture: {exc}", file=sys.stderr)
        return 1
    args.dest.write_bytes(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
