"""analyzer.decode.sctp against a real SIP-over-SCTP capture, hand-built packets and arbitrary bytes."""

from __future__ import annotations

import random
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.decode.sctp import SctpData, SctpPacket, SctpReassembler, parse_sctp
from analyzer.errors import DecodeError

SCTP_PCAP = "heplify/sip_sctp.pcap"  # under the shared_pcaps fixture (../shared/pcaps)


def sctp_payloads(path: Path) -> list[tuple[str, str, bytes]]:
    """(src ip, dst ip, SCTP bytes) of every IPv4/SCTP frame, in order (test helper only)."""
    from scapy.layers.inet import IP
    from scapy.utils import rdpcap

    out = []
    for pkt in rdpcap(str(path)):
        ip = pkt[IP]
        if ip.proto == 132:
            out.append((ip.src, ip.dst, bytes(ip)[ip.ihl * 4 : ip.len]))
    return out


def common_header(sport: int = 5060, dport: int = 5060, vtag: int = 0xDEADBEEF) -> bytes:
    return struct.pack("!HHII", sport, dport, vtag, 0)


def raw_chunk(ctype: int, flags: int, value: bytes, pad: bool = True) -> bytes:
    body = struct.pack("!BBH", ctype, flags, 4 + len(value)) + value
    return body + b"\x00" * (-len(body) % 4 if pad else 0)


def data_chunk(tsn: int, payload: bytes, flags: int = 0x03, sid: int = 0, ssn: int = 0, ppid: int = 0) -> bytes:
    return raw_chunk(0, flags, struct.pack("!IHHI", tsn, sid, ssn, ppid) + payload)


def idata_chunk(tsn: int, payload: bytes, flags: int, sid: int, mid: int, ppid_or_fsn: int) -> bytes:
    return raw_chunk(64, flags, struct.pack("!IHHII", tsn, sid, 0, mid, ppid_or_fsn) + payload)


def data(tsn: int, payload: bytes, begin: bool, end: bool, sid: int = 0, unordered: bool = False) -> SctpData:
    return SctpData(
        tsn=tsn,
        stream_id=sid,
        stream_seq=0,
        ppid=0,
        flags_begin=begin,
        flags_end=end,
        unordered=unordered,
        payload=payload,
    )


def idata(tsn: int, payload: bytes, mid: int, fsn: int, begin: bool, end: bool) -> SctpData:
    return SctpData(
        tsn=tsn,
        stream_id=1,
        stream_seq=mid,
        ppid=0,
        flags_begin=begin,
        flags_end=end,
        unordered=False,
        payload=payload,
        fsn=fsn,
        interleaved=True,
    )


# -- the real capture (an INVITE over two DATA chunks, answered 100 then 403) ---------------


def test_capture_packets(shared_pcaps: Path) -> None:
    summary = []
    for _, _, raw in sctp_payloads(shared_pcaps / SCTP_PCAP):
        packet = parse_sctp(raw)
        assert packet is not None
        summary.append(
            (
                packet.src_port,
                packet.dst_port,
                packet.vtag,
                [
                    (
                        c.tsn,
                        c.stream_id,
                        c.stream_seq,
                        c.ppid,
                        c.flags_begin,
                        c.flags_end,
                        c.unordered,
                        len(c.payload),
                    )
                    for c in packet.chunks
                ],
            )
        )
    assert summary == [
        (57098, 5060, 0x138D67A4, [(43003199, 0, 0, 0, True, False, True, 1452)]),
        (57098, 5060, 0x138D67A4, [(43003200, 0, 0, 0, False, True, True, 312)]),
        (5060, 5060, 0xF7AB41D3, [(3649385352, 0, 40846, 0, True, True, False, 365)]),
        (5060, 5060, 0xF7AB41D3, [(3649385353, 0, 40847, 0, True, True, False, 457)]),
        (57098, 5060, 0x138D67A4, [(43003201, 0, 0, 0, True, True, True, 440)]),
    ]


def test_capture_reassembled_messages(shared_pcaps: Path) -> None:
    reassembler = SctpReassembler()
    messages = []
    for src, dst, raw in sctp_payloads(shared_pcaps / SCTP_PCAP):
        packet = parse_sctp(raw)
        assert packet is not None
        key = (src, packet.src_port, dst, packet.dst_port, packet.vtag)
        for chunk in packet.chunks:
            message = reassembler.feed(key, chunk)
            if message is not None:
                messages.append((src, packet.src_port, dst, packet.dst_port, len(message), message.split(b"\r\n")[0]))
    assert messages == [
        (
            "10.249.30.11",
            57098,
            "10.108.207.113",
            5060,
            1764,
            b"INVITE sip:9275890000@VMSSM;user=phone SIP/2.0",
        ),
        ("10.108.207.113", 5060, "10.249.30.11", 5060, 365, b"SIP/2.0 100 Giving a try"),
        ("10.108.207.113", 5060, "10.249.30.11", 5060, 457, b"SIP/2.0 403 The reason is nocallee"),
        ("10.249.30.11", 57098, "10.108.207.113", 5060, 440, b"ACK sip:9275890000@VMSSM;user=phone SIP/2.0"),
    ]
    assert reassembler.pending_fragments == 0


def test_capture_fragment_alone_is_held(shared_pcaps: Path) -> None:
    _, _, first = sctp_payloads(shared_pcaps / SCTP_PCAP)[0]
    packet = parse_sctp(first)
    assert packet is not None
    reassembler = SctpReassembler()
    assert reassembler.feed("assoc", packet.chunks[0]) is None
    assert reassembler.pending_fragments == 1


# -- hand-built packets -----------------------------------------------------------------------


def test_only_data_chunks_kept_padding_skipped() -> None:
    sack = raw_chunk(3, 0, struct.pack("!IIHH", 7, 65535, 0, 0))
    heartbeat = raw_chunk(4, 0, struct.pack("!HH", 1, 9) + b"hbinfo\x00")
    pkt = (
        common_header(5061, 5062, 1)
        + sack
        + data_chunk(10, b"abc", flags=0x07, sid=2, ssn=9, ppid=0x12345678)  # 3 bytes + 1 pad
        + heartbeat
        + data_chunk(11, b"defgh", flags=0x02, sid=3, ssn=4)
    )
    assert parse_sctp(pkt) == SctpPacket(
        src_port=5061,
        dst_port=5062,
        vtag=1,
        chunks=(
            SctpData(10, 2, 9, 0x12345678, True, True, True, b"abc"),
            SctpData(11, 3, 4, 0, True, False, False, b"defgh"),
        ),
    )


def test_last_chunk_without_padding_tolerated() -> None:
    pkt = common_header() + raw_chunk(0, 0x03, struct.pack("!IHHI", 1, 0, 0, 0) + b"x", pad=False)
    packet = parse_sctp(pkt)
    assert packet is not None and packet.chunks[0].payload == b"x"


def test_no_chunks() -> None:
    assert parse_sctp(common_header(1, 2, 3)) == SctpPacket(1, 2, 3, ())


def test_idata_chunks() -> None:
    pkt = (
        common_header()
        + idata_chunk(100, b"first", flags=0x02, sid=1, mid=77, ppid_or_fsn=0x2A)
        + idata_chunk(101, b"second", flags=0x05, sid=1, mid=77, ppid_or_fsn=1)
    )
    packet = parse_sctp(pkt)
    assert packet is not None
    assert packet.chunks == (
        SctpData(100, 1, 77, 0x2A, True, False, False, b"first", fsn=0, interleaved=True),
        SctpData(101, 1, 77, 0, False, True, True, b"second", fsn=1, interleaved=True),
    )


@pytest.mark.parametrize(
    ("pkt", "reason"),
    [
        (common_header() + b"\x00\x03", "sctp-truncated"),  # not even a chunk header
        (common_header() + struct.pack("!BBH", 0, 3, 3), "sctp-bad-chunk"),  # length < 4
        (common_header() + struct.pack("!BBH", 0, 3, 40) + b"\x00" * 20, "sctp-truncated"),
        (common_header() + raw_chunk(0, 3, struct.pack("!IHHI", 1, 0, 0, 0)), "sctp-bad-chunk"),  # no data
        (common_header() + raw_chunk(0, 3, b"\x00" * 8), "sctp-bad-chunk"),
        (common_header() + raw_chunk(64, 3, b"\x00" * 16), "sctp-bad-chunk"),
    ],
)
def test_broken(pkt: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as info:
        parse_sctp(pkt)
    assert info.value.reason == reason


@pytest.mark.parametrize("size", [0, 1, 11])
def test_too_short_is_not_sctp(size: int) -> None:
    assert parse_sctp(common_header()[:size]) is None


# -- reassembly -------------------------------------------------------------------------------


def test_out_of_order_and_duplicate_fragments() -> None:
    r = SctpReassembler()
    assert r.feed("a", data(12, b"CC", begin=False, end=True)) is None
    assert r.feed("a", data(10, b"AA", begin=True, end=False)) is None
    assert r.feed("a", data(10, b"AA", begin=True, end=False)) is None  # retransmission
    assert r.pending_fragments == 2
    assert r.feed("a", data(11, b"BB", begin=False, end=False)) == b"AABBCC"
    assert r.pending_fragments == 0


def test_streams_and_associations_kept_apart() -> None:
    r = SctpReassembler()
    assert r.feed("a", data(1, b"s0-", begin=True, end=False, sid=0)) is None
    assert r.feed("a", data(2, b"s1-", begin=True, end=False, sid=1)) is None
    assert r.feed("b", data(2, b"other", begin=False, end=True, sid=0)) is None
    # TSN 3 on stream 1 follows TSN 2 on stream 1; stream 0's message still misses TSN 2.
    assert r.feed("a", data(3, b"end", begin=False, end=True, sid=1)) == b"s1-end"
    assert r.feed("a", data(3, b"end", begin=False, end=True, sid=0)) is None
    assert r.pending_fragments == 3


def test_tsn_wraps() -> None:
    r = SctpReassembler()
    assert r.feed("a", data(0, b"2", begin=False, end=True)) is None
    assert r.feed("a", data(0xFFFFFFFE, b"0", begin=True, end=False)) is None
    assert r.feed("a", data(0xFFFFFFFF, b"1", begin=False, end=False)) == b"012"


def test_fragments_of_different_messages_not_joined() -> None:
    r = SctpReassembler()
    # TSN 5 ends message X, TSN 6 begins message Y: no message spans them.
    assert r.feed("a", data(5, b"x-end", begin=False, end=True)) is None
    assert r.feed("a", data(6, b"y-begin", begin=True, end=False)) is None
    assert r.pending_fragments == 2


def test_idata_by_fsn_with_interleaved_messages() -> None:
    r = SctpReassembler()
    assert r.feed("a", idata(1, b"A0", mid=1, fsn=0, begin=True, end=False)) is None
    assert r.feed("a", idata(2, b"B0", mid=2, fsn=0, begin=True, end=False)) is None
    assert r.feed("a", idata(3, b"A1", mid=1, fsn=1, begin=False, end=False)) is None
    assert r.feed("a", idata(4, b"B1", mid=2, fsn=1, begin=False, end=True)) == b"B0B1"
    assert r.feed("a", idata(5, b"A2", mid=1, fsn=2, begin=False, end=True)) == b"A0A1A2"
    assert r.pending_fragments == 0


def test_unfragmented_passes_straight_through() -> None:
    r = SctpReassembler(max_message=1, max_pending=0)
    assert r.feed("a", data(1, b"whole message", begin=True, end=True)) == b"whole message"


def test_max_message() -> None:
    r = SctpReassembler(max_message=10)
    assert r.feed("a", data(1, b"123456", begin=True, end=False)) is None
    with pytest.raises(DecodeError) as info:
        r.feed("a", data(2, b"789012", begin=False, end=False))
    assert info.value.reason == "sctp-too-large"
    assert r.pending_fragments == 0
    assert r.feed("a", data(3, b"345", begin=False, end=True)) is None


def test_max_pending_drops_oldest() -> None:
    r = SctpReassembler(max_pending=3)
    for tsn in (100, 200, 300, 400):  # four first fragments whose rest never comes
        assert r.feed("a", data(tsn, b"x", begin=True, end=False)) is None
    assert (r.pending_fragments, r.dropped_fragments) == (3, 1)
    assert r.feed("a", data(101, b"y", begin=False, end=True)) is None  # its start aged out
    assert (r.pending_fragments, r.dropped_fragments) == (3, 2)
    assert r.feed("a", data(401, b"y", begin=False, end=True)) == b"xy"


# -- the contract ----------------------------------------------------------------------------


@settings(max_examples=400, deadline=1000)
@given(st.binary(max_size=400))
def test_any_bytes(data_: bytes) -> None:
    try:
        result = parse_sctp(data_)
    except DecodeError as exc:
        assert exc.reason in {"sctp-truncated", "sctp-bad-chunk"}
        return
    assert result is None or isinstance(result, SctpPacket)


@settings(max_examples=300, deadline=1000)
@given(st.lists(st.tuples(st.integers(0, 255), st.integers(0, 255), st.binary(max_size=40)), max_size=8))
def test_any_chunk_sequence(chunks: list[tuple[int, int, bytes]]) -> None:
    pkt = common_header() + b"".join(raw_chunk(t, f, v) for t, f, v in chunks)
    try:
        result = parse_sctp(pkt)
    except DecodeError as exc:
        assert exc.reason == "sctp-bad-chunk"
        return
    assert result is not None
    r = SctpReassembler(max_message=64, max_pending=4)
    for c in result.chunks:
        try:
            message = r.feed("k", c)
        except DecodeError as exc:
            assert exc.reason == "sctp-too-large"
            continue
        assert message is None or isinstance(message, bytes)
        assert r.pending_fragments <= 4


@settings(max_examples=200, deadline=1000)
@given(st.binary(min_size=1, max_size=200), st.integers(1, 8), st.integers(0, 2**32 - 1), st.randoms())
def test_any_fragment_order(message: bytes, parts: int, first_tsn: int, rnd: random.Random) -> None:
    cut = max(1, -(-len(message) // parts))
    pieces = [message[i : i + cut] for i in range(0, len(message), cut)]
    frags = [
        data((first_tsn + n) % 2**32, piece, begin=n == 0, end=n == len(pieces) - 1) for n, piece in enumerate(pieces)
    ]
    rnd.shuffle(frags)
    r = SctpReassembler()
    results = [r.feed("k", f) for f in frags]
    assert [m for m in results if m is not None] == [message]
    assert results[-1] == message
    assert r.pending_fragments == 0
