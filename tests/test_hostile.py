"""Hostile SIP: input written to hurt the reader. It must be read in bounded memory, without
blowing up in time, and what cannot be read must be counted, not crash anything.

The captures are synthetic by nature (nobody ships a pcap of a 2^31-byte Content-Length):
they are built with scapy, written with scapy's PcapWriter in ``tmp_path``, and read back
through sipflow's own reader. Each test prints its figures (seconds and tracemalloc peak,
both measured with tracemalloc on, which slows Python down about twofold); it asserts
exact counts and a memory bound, never a time (STYLE.md habit 10).

The limits met here, all in the decode and SIP layers:

* a header block over 64 KiB or a body over 1 MiB on a stream is junk
  (``framing.DEFAULT_MAX_HEADER``, ``framing.DEFAULT_MAX_BODY``); a TCP direction holds at
  most 2 MiB (``tcp.MAX_BUFFER``) and 256 out-of-order segments (``tcp.MAX_PENDING_SEGMENTS``);
  a run of junk is reported once and its further bytes counted (``TcpTable.junk_bytes``);
* a WebSocket message or an SCTP message is at most 1 MiB;
* a datagram in more than 64 fragments is refused (``fragments.MAX_PIECES``) and fragments
  wait in at most 64 MiB (``FragmentTable.max_bytes``).
"""

from __future__ import annotations

import random
import struct
import time
import tracemalloc
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from scapy.layers.inet import IP, TCP, UDP, fragment
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw
from scapy.utils import PcapWriter

from analyzer.analysis import Analysis, analyze
from analyzer.decode import fragments
from analyzer.reader import MessageReader
from analyzer.sip import framing
from analyzer.sip.message import Origin, SipMessage
from analyzer.sip.parser import parse_message

T = TypeVar("T")
MIB = 1024 * 1024
UAC, UAS = "192.0.2.1", "192.0.2.2"
ORIGIN = Origin(1, (1,), 0, UAC, 5060, UAS, 5060, "tcp")
OPTIONS = (
    b"OPTIONS sip:100@192.0.2.2 SIP/2.0\r\nVia: SIP/2.0/TCP 192.0.2.1:40000;branch=z9hG4bKopt1\r\n"
    b"From: <sip:a@192.0.2.1>;tag=1\r\nTo: <sip:100@192.0.2.2>\r\nCall-ID: after-the-junk\r\n"
    b"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
)
# Far below every hostile input here (16 MiB and more), far above what reading needs:
# the reader's 1 MiB chunks, one 2 MiB TCP buffer, a 64 KiB header block.
READ_BOUND = 8 * MIB


@dataclass(frozen=True, slots=True)
class Figures:
    seconds: float
    peak: int


def measure(name: str, fn: Callable[[], T]) -> tuple[T, Figures]:
    tracemalloc.start()
    start = time.perf_counter()
    try:
        result = fn()
    finally:
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    print(f"\nhostile: {name}: {seconds:.2f} s, peak {peak / MIB:.1f} MiB")
    return result, Figures(seconds, peak)


@dataclass(slots=True)
class Read:
    messages: list[SipMessage]
    reader: MessageReader


def read(path: Path) -> Read:
    reader = MessageReader(path)
    return Read(list(reader), reader)


# -- building captures ---------------------------------------------------------------------------
def write(path: Path, packets: Iterable[Packet]) -> Path:
    writer = PcapWriter(str(path), linktype=1, sync=False)
    for n, pkt in enumerate(packets):
        pkt.time = 1_700_000_000 + n / 1000
        writer.write(pkt)
    writer.close()
    return path


def eth_ip(src: str = UAC, dst: str = UAS) -> Packet:
    return Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src=src, dst=dst)


def tcp_stream(data: bytes, segment: int = 16_000, fin: bool = True) -> Iterable[Packet]:
    """One direction of a TCP connection carrying ``data`` in order, then FIN. The segments
    are large, as a capture on the sending host shows them (TCP segmentation offload), and
    because scapy takes over a millisecond to build each packet."""
    seq = 1000
    for i in range(0, len(data), segment):
        chunk = data[i : i + segment]
        yield eth_ip() / TCP(sport=40000, dport=5060, flags="PA", seq=seq) / Raw(chunk)
        seq += len(chunk)
    if fin:
        yield eth_ip() / TCP(sport=40000, dport=5060, flags="FA", seq=seq)


def udp(payload: bytes) -> Packet:
    return eth_ip() / UDP(sport=5060, dport=5060) / Raw(payload)


def vias_invite(n: int) -> bytes:
    vias = b"".join(b"Via: SIP/2.0/TCP 192.0.2.%d:5060;branch=z9hG4bK%06d\r\n" % (i % 250, i) for i in range(n))
    return (
        b"INVITE sip:100@192.0.2.2 SIP/2.0\r\n" + vias + b"From: <sip:a@192.0.2.1>;tag=1\r\n"
        b"To: <sip:100@192.0.2.2>\r\nCall-ID: many-vias\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    )


def labels(messages: list[SipMessage]) -> list[tuple[str, str]]:
    return [(m.label, m.call_id) for m in messages]


# -- Content-Length 2^31 -------------------------------------------------------------------------
BIG_CL = (
    b"INVITE sip:100@192.0.2.2 SIP/2.0\r\nCall-ID: huge-body\r\nCSeq: 1 INVITE\r\n"
    b"Content-Type: application/sdp\r\nContent-Length: 2147483648\r\n\r\n"
)


def test_content_length_2_31_on_udp(tmp_path: Path) -> None:
    path = write(tmp_path / "cl.pcap", [udp(BIG_CL + b"v=0\r\n")])
    got, _ = measure("Content-Length 2^31, UDP", lambda: read(path))
    assert labels(got.messages) == [("INVITE", "huge-body")]
    assert (got.messages[0].defects, got.messages[0].body) == (("content-length-mismatch",), b"v=0\r\n")


def test_content_length_2_31_on_tcp_is_junk_and_the_stream_goes_on(tmp_path: Path) -> None:
    """The stream does not wait for 2 GiB: the message is junk, and so is what follows
    (16 MiB with no line break), until the next start line."""
    junk = b"y" * (16 * MIB)
    path = write(tmp_path / "cl-tcp.pcap", tcp_stream(BIG_CL + junk + b"\r\n" + OPTIONS))
    got, fig = measure("Content-Length 2^31 + 16 MiB, TCP", lambda: read(path))
    assert labels(got.messages) == [("OPTIONS", "after-the-junk")]
    malformed = got.reader.decoder.stats.malformed
    assert [(m.reason, m.detail) for m in malformed] == [("tcp-junk", BIG_CL[:60].decode())]
    # The first report is the INVITE's header block; the run of junk after it is counted.
    assert got.reader.decoder.tcp.junk_bytes == len(junk) + len(b"\r\n")
    assert fig.peak < READ_BOUND


# -- headers without end ---------------------------------------------------------------------------
FLOOD_LINE = b"X-Flood: " + b"a" * 67 + b"\r\n"


def endless_headers(size: int) -> bytes:
    return b"INVITE sip:100@192.0.2.2 SIP/2.0\r\nCall-ID: endless\r\n" + FLOOD_LINE * (size // len(FLOOD_LINE))


def test_headers_without_end_on_tcp(tmp_path: Path) -> None:
    data = endless_headers(16 * MIB)
    path = write(tmp_path / "endless.pcap", tcp_stream(data))
    got, fig = measure("headers without end, 16 MiB, TCP", lambda: read(path))
    assert got.messages == []
    malformed = got.reader.decoder.stats.malformed
    assert [(m.reason, m.detail) for m in malformed] == [("tcp-junk", data[:60].decode())]
    assert got.reader.decoder.stats.frames_by_reason == {"tcp-sip-segment": 1_049, "tcp-no-payload": 1}
    assert fig.peak < READ_BOUND


def test_headers_without_end_on_udp(tmp_path: Path) -> None:
    """One 60 KB datagram: a message (it has a start line) whose defect says what is wrong."""
    data = endless_headers(60_000)
    path = write(tmp_path / "endless-udp.pcap", [udp(data)])
    got, _ = measure("headers without end, 60 KB, UDP", lambda: read(path))
    assert labels(got.messages) == [("INVITE", "endless")]
    assert got.messages[0].defects == ("no-blank-line", "no-cseq")
    assert len(got.messages[0].headers) == 1 + 60_000 // len(FLOOD_LINE) == 770


def test_a_header_folded_300000_times() -> None:
    """RFC 3261 §7.3.1 continuation lines: unfolding them one by one took 42 s for this
    2.4 MB block (quadratic); they are joined once now."""
    data = (
        b"MESSAGE sip:100@192.0.2.2 SIP/2.0\r\nCall-ID: folded\r\nCSeq: 1 MESSAGE\r\nSubject: a"
        + b"\r\n bcdefg" * 300_000
        + b"\r\nContent-Length: 0\r\n\r\n"
    )
    msg = parse_message(data, ORIGIN)
    subject, fig = measure("a header folded 300,000 times", lambda: msg.headers.get("subject"))
    assert subject is not None and len(subject) == 1 + 7 * 300_000
    assert subject[:15] == "a bcdefg bcdefg"
    assert fig.peak < 24 * len(data)  # one str per line while splitting: linear, about 20x


# -- 10,000 Via headers ----------------------------------------------------------------------------
def test_ten_thousand_via_headers_parsed(tmp_path: Path) -> None:
    data = vias_invite(10_000)
    msg, fig = measure("10,000 Via headers, parse_message + vias", lambda: parse_message(data, ORIGIN))
    vias, fig_vias = measure("10,000 Via headers, .vias", lambda: msg.vias)
    assert len(vias) == 10_000
    assert (vias[0].host, vias[0].branch, vias[-1].host, vias[-1].branch) == (
        "192.0.2.0",
        "z9hG4bK000000",
        "192.0.2.249",
        "z9hG4bK009999",
    )
    assert (msg.call_id, msg.from_ is not None, msg.to is not None) == ("many-vias", True, True)
    assert fig.peak + fig_vias.peak < 32 * MIB  # 555 KB of message


def test_ten_thousand_via_headers_on_tcp_are_junk(tmp_path: Path) -> None:
    """556 KB of header block is over the 64 KiB a stream accepts: one junk report."""
    data = vias_invite(10_000)
    assert len(data) > framing.DEFAULT_MAX_HEADER
    path = write(tmp_path / "vias-tcp.pcap", tcp_stream(data))
    got, fig = measure("10,000 Via headers, TCP", lambda: read(path))
    assert got.messages == []
    assert [m.reason for m in got.reader.decoder.stats.malformed] == ["tcp-junk"]
    assert fig.peak < READ_BOUND


def test_ten_thousand_via_headers_over_websocket(tmp_path: Path) -> None:
    """A WebSocket message may be 1 MiB (RFC 7118 carries one SIP message per message): read."""
    handshake = (
        b"GET / HTTP/1.1\r\nHost: 192.0.2.2\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: sip\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )
    data = vias_invite(10_000)
    key = b"\x01\x02\x03\x04"
    mask = (key * (len(data) // 4 + 1))[: len(data)]
    masked = (int.from_bytes(data, "big") ^ int.from_bytes(mask, "big")).to_bytes(len(data), "big")
    frame = b"\x82\xff" + struct.pack("!Q", len(data)) + key + masked  # FIN, binary, masked (RFC 6455 §5.2)
    path = write(tmp_path / "vias-ws.pcap", tcp_stream(handshake + frame))
    got, fig = measure("10,000 Via headers, WebSocket", lambda: read(path))
    assert labels(got.messages) == [("INVITE", "many-vias")]
    assert (got.messages[0].origin.transport, len(got.messages[0].vias)) == ("ws", 10_000)
    assert fig.peak < READ_BOUND


# -- a TCP stream that never frames ---------------------------------------------------------------
def test_tcp_stream_that_never_frames(tmp_path: Path) -> None:
    """A start line, then 16 MiB of bytes with no line break, then nothing."""
    noise = random.Random(7).randbytes(16 * MIB).replace(b"\n", b"n")
    data = b"REGISTER sip:192.0.2.2 SIP/2.0\r\n" + noise
    path = write(tmp_path / "noise.pcap", tcp_stream(data, fin=False))
    got, fig = measure("TCP stream that never frames, 16 MiB", lambda: read(path))
    assert got.messages == []
    # One report for the run of junk, one for the unfinished line the capture ends in.
    assert [m.reason for m in got.reader.decoder.stats.malformed] == ["tcp-junk", "tcp-incomplete"]
    # 16 MiB + 32 bytes, less the first report (the first 64 KiB and a little) and the tail.
    assert got.reader.decoder.tcp.junk_bytes == 16_719_968
    assert fig.peak < READ_BOUND


def test_many_tiny_fragments_are_refused(tmp_path: Path) -> None:
    """4,000 overlapping 8-byte fragments of one datagram (2.4 s for it before MAX_PIECES, as
    every piece made a new reassembly attempt over all the others; 8,000 took 12.8 s), then a
    genuine fragmented SIP datagram, which is read."""
    hostile: list[Packet] = []
    for i in range(4_000):
        ip = IP(src=UAC, dst=UAS, id=7, proto=17, flags="MF", frag=i)
        hostile.append(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / ip / Raw(b"\0" * 8))
    genuine = IP(src=UAC, dst=UAS, id=8) / UDP(sport=5060, dport=5060) / Raw(OPTIONS.replace(b"TCP", b"UDP"))
    parts = [Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / p for p in fragment(genuine, fragsize=128)]  # type: ignore[no-untyped-call]
    path = write(tmp_path / "frags.pcap", [*hostile, *parts])
    got, fig = measure("4,000 tiny fragments + a fragmented datagram", lambda: read(path))
    assert labels(got.messages) == [("OPTIONS", "after-the-junk")]
    assert (got.reader.decoder.fragments.refused, len(parts)) == (4_000 // (fragments.MAX_PIECES + 1), 2)
    assert fig.peak < READ_BOUND


# -- a flood of unique Call-IDs -----------------------------------------------------------------
def flood(path: Path, calls: int) -> Path:
    """``calls`` one-message calls (OPTIONS, each its own Call-ID) as UDP datagrams. One frame
    is built by scapy; the others differ only in an 8-digit token, so their lengths and IP
    checksum stay right (the UDP checksum is 0: none, RFC 768)."""
    sip = (
        b"OPTIONS sip:100@192.0.2.2 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKTOKEN___\r\n"
        b"From: <sip:scan@192.0.2.1>;tag=1\r\nTo: <sip:100@192.0.2.2>\r\nCall-ID: TOKEN___\r\n"
        b"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
    frame = bytes(eth_ip() / UDP(sport=5060, dport=5060, chksum=0) / Raw(sip))
    writer = PcapWriter(str(path), linktype=1, sync=False)
    writer.write_header(frame)
    for i in range(calls):
        writer.write_packet(frame.replace(b"TOKEN___", b"%08d" % i), sec=1_700_000_000 + i // 1000, usec=i % 1000)
    writer.close()
    return path


def test_flood_of_unique_call_ids_decoder_stays_bounded(tmp_path: Path) -> None:
    path = flood(tmp_path / "flood.pcap", 200_000)

    def count() -> tuple[int, int]:
        n = wrong = 0
        for n, msg in enumerate(MessageReader(path), 1):
            wrong += msg.call_id != f"{n - 1:08d}"
        return n, wrong

    (n, wrong), fig = measure("200,000 one-message calls, decoder", count)
    assert (n, wrong) == (200_000, 0)
    assert fig.peak < READ_BOUND


def test_flood_of_unique_call_ids_analysis_stays_bounded(tmp_path: Path) -> None:
    """Open conversations are capped (``max_open``, ``--max-open-calls``): the excess is judged
    early and counted; what is left growing is one small report per conversation."""
    small = flood(tmp_path / "small.pcap", 2_000)
    large = flood(tmp_path / "large.pcap", 8_000)

    def run(path: Path) -> Analysis:
        return analyze(path, keep_messages=False, max_open=500)

    a_small, fig_small = measure("2,000 one-message calls, analyze", lambda: run(small))
    a_large, fig_large = measure("8,000 one-message calls, analyze", lambda: run(large))
    assert (len(a_small.calls), len(a_large.calls)) == (2_000, 8_000)
    assert a_large.evicted > 0
    # 6,000 more conversations cost their reports (about 1.2 KiB each), not open state (4 KiB)
    assert fig_large.peak - fig_small.peak < 6_000 * 1_600
