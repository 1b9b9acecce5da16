"""Write the frames of chosen calls to a new capture, byte for byte (``sipflow export``).

The capture is read again and the selected frames (numbered from 1, as sipflow and
Wireshark count them) are written unchanged: captured bytes, original length, link
type and timestamp to the nanosecond. Every frame that carried a part of a message is
included (IP fragments, TCP segments), so Wireshark reassembles the messages again.

Output format: a classic pcap when the selected frames share one link type (pcap has
one per file), microsecond when every timestamp is a whole microsecond, else
nanosecond; a pcapng with one interface per link type otherwise. The pcap is written
by scapy's ``RawPcapWriter`` (integer seconds and fractions, bytes as given: exact);
the pcapng by this module, because scapy's pcapng writer keeps time as a float in
microseconds and gives every raw-bytes packet the writer's single link type.

With a :class:`~analyzer.sip.redact.Redaction` (``sipflow export --redact``) the SIP in the
frames is masked in place, byte for byte (:func:`analyzer.sip.redact.mask_frames`): every
length and the Content-Length stay true, so Wireshark still reads it (UDP/TCP checksums
no longer match; Wireshark does not check them by default). A frame whose secret cannot
be placed (a WebSocket client's XOR-masked frame, say) is left out rather than written
unmasked. Without one, the frames are written exactly as captured.

The output is written to a temporary file beside the target, then renamed over it
(``os.replace``): a failed export leaves no half-written file and never damages an
existing one. Writing over the input capture is refused.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

from analyzer.analysis import Analysis
from analyzer.capture.source import open_stream, read_frames, read_once
from analyzer.capture.stats import CaptureStats, RawFrame
from analyzer.diagnose.verdict import CallReport
from analyzer.errors import SipflowError, UsageError
from analyzer.report.atomic import atomic_write, refuse_inputs
from analyzer.sip.message import SipMessage
from analyzer.sip.redact import Redaction, changed_runs, mask_copies, mask_frames

__all__ = ["export_frames", "frames_for"]

TIMER_B_NS = 32_000_000_000
"""64*T1 (RFC 3261 §17.1.1.2): how long after a call an ICMP error can still be about it."""
SNAPLEN = 262_144
"""Wireshark's largest snapshot length; the header's snaplen (libpcap cuts records above it)."""
PCAP_END_NS = (1 << 32) * 1_000_000_000
"""A pcap record's seconds are 32 bits: later times (or earlier than 1970) are written to pcapng."""


def frames_for(analysis: Analysis, reports: Iterable[CallReport]) -> set[int]:
    """Every frame of the chosen conversations, and the ICMP errors that explain them.

    ``report.frames`` already holds each fragment and TCP segment of every message. For
    a call broken by an unanswered request, the ICMP destination-unreachable errors about
    its destination (the evidence the ``no_final_response`` rule cites) are added too.
    """
    frames: set[int] = set()
    for r in reports:
        frames.update(r.frames)
        b = r.breaking
        if b is not None and b.code is None:
            frames.update(
                u.frame
                for u in analysis.stats.unreachable
                if u.dst == b.dst and r.start_ns <= u.ts_ns <= r.end_ns + TIMER_B_NS
            )
    return frames


def export_frames(
    capture: Path,
    frames: set[int],
    out: Path,
    *,
    redaction: Redaction | None = None,
    messages: Iterable[SipMessage] = (),
) -> int:
    """Write the frames numbered ``frames`` of ``capture`` to ``out``; returns how many.

    With ``redaction``, the SIP ``messages`` carried by those frames are masked in them, and
    frames where that cannot be done are left out (the count returned is then smaller).

    Raises :class:`UsageError` when ``out`` is the capture itself, when the capture is
    standard input (it must be read a second time), when ``frames`` is empty or names
    frames the capture does not have, or when ``out`` cannot be written; and
    :class:`analyzer.errors.CaptureError` when the capture cannot be read.
    """
    if read_once(capture):
        raise UsageError(f"export needs a capture file: {capture} is a pipe or standard input, read only once")
    if not frames:
        raise UsageError("nothing to export: no frames selected")
    _refuse_input(capture, out)
    selected = _read_selected(capture, frames)
    missing = sorted(frames - {n for n, _ in selected})
    if missing:
        shown = ", ".join(map(str, missing[:5])) + (" …" if len(missing) > 5 else "")
        raise UsageError(f"{capture}: has no frame {shown} (it holds {len(selected)} of the {len(frames)} asked for)")
    if redaction is not None:
        selected = _redacted(selected, messages, redaction)
        if not selected:
            raise UsageError("nothing to export: no frame could be redacted safely")
    records = [frame for _, frame in selected]
    linktypes = list(dict.fromkeys(lt for _, lt, _, _ in records))
    late = [(n, ts) for n, (ts, _, _, _) in selected if not 0 <= ts < PCAP_END_NS]  # a damaged time offset
    unwritable = [(n, ts) for n, ts in late if not 0 <= ts < 1 << 64]
    if unwritable:
        n, ts = unwritable[0]
        raise SipflowError(f"{capture}: frame {n}: its time ({ts} ns from 1970) fits neither a pcap nor a pcapng file")
    if len(linktypes) == 1 and not late:
        _write_atomic(out, lambda f: _write_pcap(f, records, linktypes[0]))
    else:
        _write_atomic(out, lambda f: _write_pcapng(f, records, linktypes))
    return len(records)


def _refuse_input(capture: Path, out: Path) -> None:
    """Writing the export over its own input would destroy the capture being read."""
    refuse_inputs(out, [capture])
    if Path(out).is_dir():
        raise UsageError(f"{out}: is a directory; give the output file's name")


def _read_selected(capture: Path, frames: set[int]) -> list[tuple[int, RawFrame]]:
    """(number, frame) of each selected frame, in capture order; stops after the last one."""
    last = max(frames)
    out: list[tuple[int, RawFrame]] = []
    with open_stream(capture) as stream:
        for number, frame in enumerate(read_frames(stream, CaptureStats(str(capture))), 1):
            if number in frames:
                out.append((number, frame))
            if number >= last:
                break
    return out


def _redacted(
    selected: list[tuple[int, RawFrame]], messages: Iterable[SipMessage], redaction: Redaction
) -> list[tuple[int, RawFrame]]:
    """``selected`` with each message's secrets masked in its frames; a frame that carries no
    message (an ICMP error quoting one) has its header-like lines masked and loses every copy
    of a secret seen in the others."""
    data = {n: frame[2] for n, frame in selected}
    dropped: set[int] = set()
    secrets: list[bytes] = []
    carriers: set[int] = set()
    for msg in messages:
        numbers = [n for n in msg.origin.frames if n in data]
        carriers.update(numbers)
        masked = redaction.raw(msg.raw)
        if masked == msg.raw:
            continue
        secrets += changed_runs(msg.raw, masked)
        result = mask_frames(msg.raw, masked, [data[n] for n in numbers])
        if result is None or len(numbers) < len(msg.origin.frames):
            dropped.update(numbers)
            continue
        data.update(zip(numbers, result, strict=True))
    out = []
    for n, (ts, lt, _, orig) in selected:
        if n in dropped:
            continue
        body = data[n] if n in carriers else mask_copies(redaction.loose(data[n]), secrets)
        out.append((n, (ts, lt, body, orig)))
    return out


def _write_atomic(out: Path, write: Callable[[BinaryIO], None]) -> None:
    try:
        atomic_write(Path(out), write, binary=True)
    except OSError as exc:
        raise UsageError(f"{out}: cannot write ({exc.strerror or exc})") from None


def _write_pcap(f: BinaryIO, records: list[RawFrame], linktype: int) -> None:
    """A libpcap file (pcap-savefile(5)): micro- or nanosecond, whichever keeps every timestamp."""
    from scapy.utils import RawPcapWriter  # scapy is slow to import; only export needs it

    nano = any(ts % 1000 for ts, _, _, _ in records)
    snaplen = max([SNAPLEN, *(len(data) for _, _, data, _ in records)])
    writer = RawPcapWriter(f, endianness="<", nano=nano, snaplen=snaplen)
    writer.linktype = linktype  # set here: its constructor ignores linktype 0 (DLT_NULL)
    writer.write_header(None)
    for ts, _, data, orig in records:
        sec, frac = divmod(ts, 1_000_000_000)
        writer.write_packet(data, sec=sec, usec=frac if nano else frac // 1000, caplen=len(data), wirelen=orig)
    writer.flush()


# pcapng (draft-ietf-opsawg-pcapng §4.1 SHB, §4.2 IDB, §4.3 EPB), little-endian.
_SHB = 0x0A0D0D0A
_IDB = 1
_EPB = 6
_BYTE_ORDER_MAGIC = 0x1A2B3C4D
_OPT_TSRESOL = 9
_TSRESOL_NS = 9  # if_tsresol 9: timestamps in 10^-9 s


def _block(btype: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    length = 12 + len(body)
    return struct.pack("<II", btype, length) + body + struct.pack("<I", length)


def _write_pcapng(f: BinaryIO, records: list[RawFrame], linktypes: list[int]) -> None:
    """One section, one interface per link type (nanosecond resolution), one EPB per frame."""
    f.write(_block(_SHB, struct.pack("<IHHq", _BYTE_ORDER_MAGIC, 1, 0, -1)))
    snaplen = max([SNAPLEN, *(len(data) for _, _, data, _ in records)])
    tsresol = struct.pack("<HHB3x", _OPT_TSRESOL, 1, _TSRESOL_NS) + struct.pack("<HH", 0, 0)
    for lt in linktypes:
        f.write(_block(_IDB, struct.pack("<HHI", lt, 0, snaplen) + tsresol))
    interface = {lt: i for i, lt in enumerate(linktypes)}
    for ts, lt, data, orig in records:
        head = struct.pack("<IIIII", interface[lt], ts >> 32, ts & 0xFFFF_FFFF, len(data), orig)
        f.write(_block(_EPB, head + data))
