"""analyzer.decode.hep against a real HEP3 capture, hand-built HEPv2/HEP3 and arbitrary bytes."""

from __future__ import annotations

import gzip
import socket
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.decode.hep import HepPacket, is_hep, parse_hep
from analyzer.errors import DecodeError

HEP_PCAP = "hep-wireshark/hep.pcap"  # under the shared_pcaps fixture (../shared/pcaps)

SIP = b"INVITE sip:bob@example.com SIP/2.0\r\nCall-ID: a@b\r\n\r\n"


def udp_payloads(path: Path) -> list[bytes]:
    """UDP payloads of every frame of a capture, in order (test helper only)."""
    from scapy.layers.inet import UDP
    from scapy.utils import rdpcap

    return [bytes(pkt[UDP].payload) for pkt in rdpcap(str(path)) if UDP in pkt]


def chunk(ctype: int, value: bytes, vendor: int = 0) -> bytes:
    """One HEP3 chunk: vendor, type, length (header included), value."""
    return struct.pack("!HHH", vendor, ctype, 6 + len(value)) + value


def hep3(*chunks: bytes) -> bytes:
    body = b"".join(chunks)
    return b"HEP3" + struct.pack("!H", 6 + len(body)) + body


def ipv4_chunks(payload: bytes = SIP) -> list[bytes]:
    """The chunks a typical agent sends for a UDP/IPv4 SIP packet."""
    return [
        chunk(0x01, b"\x02"),
        chunk(0x02, b"\x11"),
        chunk(0x03, socket.inet_aton("10.0.0.1")),
        chunk(0x04, socket.inet_aton("10.0.0.2")),
        chunk(0x07, struct.pack("!H", 5060)),
        chunk(0x08, struct.pack("!H", 5080)),
        chunk(0x09, struct.pack("!I", 1_700_000_000)),
        chunk(0x0A, struct.pack("!I", 123_456)),
        chunk(0x0B, b"\x01"),
        chunk(0x0C, struct.pack("!I", 42)),
        chunk(0x0F, payload),
    ]


def hep2(payload: bytes = SIP, *, v6: bool = False, proto: int = 17, usec: int = 250_000) -> bytes:
    """HEPv2 as Kamailio/OpenSIPS hep.h lays it out (time header in host = little-endian order)."""
    if v6:
        fixed = struct.pack("!BBBBHH", 2, 40, 10, proto, 5060, 5061)
        addrs = socket.inet_pton(socket.AF_INET6, "2001:db8::1") + socket.inet_pton(socket.AF_INET6, "2001:db8::2")
    else:
        fixed = struct.pack("!BBBBHH", 2, 16, 2, proto, 5060, 5061)
        addrs = socket.inet_aton("192.0.2.1") + socket.inet_aton("192.0.2.2")
    return fixed + addrs + struct.pack("<IIH2x", 1_600_000_000, usec, 7) + payload


# -- the real capture (HEPgen.js sending to 9060) -------------------------------------------


def test_capture_first_packet_every_field(shared_pcaps: Path) -> None:
    first = udp_payloads(shared_pcaps / HEP_PCAP)[0]
    packet = parse_hep(first)
    assert packet is not None
    assert packet.payload.startswith(b"INVITE sip:nodejs@127.0.0.1 SIP/2.0\nCall-ID: qgf3dm9rudi@127.0.0.1\n")
    assert packet == HepPacket(
        version=3,
        family=4,
        ip_proto=17,
        src_ip="192.168.1.1",
        dst_ip="192.168.1.2",
        src_port=5060,
        dst_port=5060,
        ts_ns=1_481_455_196_000_100_000,
        capture_id=2001,
        auth_key="myHep",
        correlation_id="qgf3dm9rudi@127.0.0.1",
        payload_type=1,
        payload=packet.payload,
        node_name=None,
    )
    assert len(packet.payload) == 638


def test_capture_all_packets(shared_pcaps: Path) -> None:
    summary = []
    for data in udp_payloads(shared_pcaps / HEP_PCAP):
        assert is_hep(data)
        p = parse_hep(data)
        assert p is not None
        assert (p.version, p.family, p.ip_proto, p.capture_id, p.auth_key) == (3, 4, 17, 2001, "myHep")
        first_line = p.payload.split(b"\n", 1)[0][:40]
        summary.append(
            (p.payload_type, p.src_ip, p.src_port, p.dst_ip, p.dst_port, p.ts_ns, len(p.payload), first_line)
        )
    assert summary == [
        (1, "192.168.1.1", 5060, "192.168.1.2", 5060, 1481455196000100000, 638,
         b"INVITE sip:nodejs@127.0.0.1 SIP/2.0"),
        (1, "192.168.1.2", 5060, "192.168.1.1", 5060, 1481455196000325000, 322, b"SIP/2.0 100 Trying"),
        (1, "192.168.1.2", 5060, "192.168.1.1", 5060, 1481455197000126000, 432,
         b"SIP/2.0 407 Proxy Authentication Require"),
        (1, "192.168.1.1", 5060, "192.168.1.2", 5060, 1481455198000127000, 298,
         b"OPTIONS sip:127.0.0.1 SIP/2.0"),
        (100, "192.168.1.1", 0, "192.168.1.2", 0, 1481455199000126000, 83,
         b"SYSLOG: Processing OPTIONS request from "),
        (1, "192.168.1.2", 5060, "192.168.1.1", 5060, 1481455200000326000, 409, b"SIP/2.0 200 Alive"),
        (1, "192.168.1.1", 5060, "192.168.1.2", 5060, 1481455201000627000, 813,
         b"PUBLISH sip:nodejs@127.0.0.1:5999;transp"),
        (5, "192.168.1.1", 0, "192.168.1.2", 0, 1481455202000927000, 333,
         b'{"sender_information":{"ntp_timestamp_se'),
    ]  # fmt: skip


def test_capture_cut_short_is_truncated(shared_pcaps: Path) -> None:
    first = udp_payloads(shared_pcaps / HEP_PCAP)[0]
    with pytest.raises(DecodeError) as info:
        parse_hep(first[:300])
    assert info.value.reason == "hep-truncated"


def test_capture_every_prefix(shared_pcaps: Path) -> None:
    first = udp_payloads(shared_pcaps / HEP_PCAP)[0]
    for n in range(len(first)):
        try:
            result = parse_hep(first[:n])
        except DecodeError as exc:
            assert (n, exc.reason) == (n, "hep-truncated")
            continue
        assert (n, result) == (n, None)
        assert n < 4  # only a prefix shorter than the magic is "not HEP"


# -- HEPv3 built by hand ----------------------------------------------------------------------


def test_hep3_minimal_ipv4() -> None:
    p = parse_hep(hep3(*ipv4_chunks()))
    assert p == HepPacket(
        version=3,
        family=4,
        ip_proto=17,
        src_ip="10.0.0.1",
        dst_ip="10.0.0.2",
        src_port=5060,
        dst_port=5080,
        ts_ns=1_700_000_000_123_456_000,
        capture_id=42,
        auth_key=None,
        correlation_id=None,
        payload_type=1,
        payload=SIP,
        node_name=None,
    )


def test_hep3_ipv6_tcp_with_strings() -> None:
    data = hep3(
        chunk(0x01, b"\x0a"),
        chunk(0x02, b"\x06"),
        chunk(0x05, socket.inet_pton(socket.AF_INET6, "2001:db8::10")),
        chunk(0x06, socket.inet_pton(socket.AF_INET6, "fe80::1:2")),
        chunk(0x07, struct.pack("!H", 5061)),
        chunk(0x08, struct.pack("!H", 40000)),
        chunk(0x0E, b"secret\x00"),  # C agents may send the terminating NUL
        chunk(0x11, b"call-1@host"),
        chunk(0x13, b"sbc-east-1"),
        chunk(0x0F, SIP),
    )
    p = parse_hep(data)
    assert p is not None
    assert (p.family, p.ip_proto, p.src_ip, p.dst_ip, p.src_port, p.dst_port) == (
        6,
        6,
        "2001:db8::10",
        "fe80::1:2",
        5061,
        40000,
    )
    assert (p.auth_key, p.correlation_id, p.node_name) == ("secret", "call-1@host", "sbc-east-1")
    assert (p.ts_ns, p.capture_id, p.payload_type) == (None, None, None)


def test_hep3_skips_vendor_and_unknown_chunks() -> None:
    chunks = ipv4_chunks()
    extra = [
        chunk(0x0F, b"not the payload", vendor=3),
        chunk(0x0023, b"\x00\x01\x02"),
        chunk(0x0012, b"\x00\x07"),
    ]
    p = parse_hep(hep3(*extra, *chunks))
    assert p is not None and p.payload == SIP


def test_hep3_usec_without_seconds_gives_no_time() -> None:
    chunks = [c for c in ipv4_chunks() if c[2:4] != b"\x00\x09"]
    p = parse_hep(hep3(*chunks))
    assert p is not None and p.ts_ns is None


def test_hep3_keepalive_without_payload() -> None:
    chunks = [c for c in ipv4_chunks() if c[2:4] != b"\x00\x0f"]
    p = parse_hep(hep3(*chunks))
    assert p is not None and p.payload == b""


def test_hep3_trailing_bytes_after_total_length_ignored() -> None:
    p = parse_hep(hep3(*ipv4_chunks()) + b"\x00\x00\x00")
    assert p is not None and p.payload == SIP


@pytest.mark.parametrize("compress", [zlib.compress, gzip.compress], ids=["zlib", "gzip"])
def test_hep3_compressed_payload(compress: Callable[[bytes], bytes]) -> None:
    chunks = [c for c in ipv4_chunks() if c[2:4] != b"\x00\x0f"]
    p = parse_hep(hep3(*chunks, chunk(0x10, compress(SIP * 20))))
    assert p is not None and p.payload == SIP * 20


def test_hep3_plain_payload_wins_over_compressed() -> None:
    p = parse_hep(hep3(*ipv4_chunks(), chunk(0x10, b"garbage, never inflated")))
    assert p is not None and p.payload == SIP


def test_hep3_compressed_payload_bounded() -> None:
    chunks = [c for c in ipv4_chunks() if c[2:4] != b"\x00\x0f"]
    bomb = zlib.compress(b"\x00" * (4 << 20))  # 4 MiB of zeros in about 4 KiB
    with pytest.raises(DecodeError) as info:
        parse_hep(hep3(*chunks, chunk(0x10, bomb)))
    assert info.value.reason == "hep-payload-too-large"
    exact = zlib.compress(b"x" * 1000)
    p = parse_hep(hep3(*chunks, chunk(0x10, exact)), max_payload=1000)
    assert p is not None and len(p.payload) == 1000
    with pytest.raises(DecodeError) as info:
        parse_hep(hep3(*chunks, chunk(0x10, exact)), max_payload=999)
    assert info.value.reason == "hep-payload-too-large"


def test_hep3_plain_payload_bounded() -> None:
    with pytest.raises(DecodeError) as info:
        parse_hep(hep3(*ipv4_chunks()), max_payload=len(SIP) - 1)
    assert info.value.reason == "hep-payload-too-large"


@pytest.mark.parametrize(
    "packed",
    [b"not zlib at all", zlib.compress(SIP)[:-6]],
    ids=["garbage", "cut-stream"],
)
def test_hep3_bad_compression(packed: bytes) -> None:
    chunks = [c for c in ipv4_chunks() if c[2:4] != b"\x00\x0f"]
    with pytest.raises(DecodeError) as info:
        parse_hep(hep3(*chunks, chunk(0x10, packed)))
    assert info.value.reason == "hep-bad-compression"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"HEP3", "hep-truncated"),
        (b"HEP3\x00\x05", "hep-bad-length"),
        (b"HEP3\x00\x40" + b"\x00" * 10, "hep-truncated"),
        (b"HEP3\x00\x09\x00\x00\x00", "hep-bad-chunk"),  # 3 stray bytes, no room for a chunk header
        (b"HEP3\x00\x0c\x00\x00\x00\x01\x00\x05", "hep-bad-chunk"),  # chunk length < 6
        (b"HEP3\x00\x0d\x00\x00\x00\x01\x00\x08\x02", "hep-bad-chunk"),  # chunk past the total length
        (hep3(chunk(0x01, b"\x02\x00")), "hep-bad-chunk"),  # family must be one byte
        (hep3(chunk(0x07, b"\x13")), "hep-bad-chunk"),  # port must be two bytes
        (hep3(chunk(0x01, b"\x07")), "hep-bad-chunk"),  # no such family
        (hep3(chunk(0x0F, SIP)), "hep-missing-chunk"),
    ],
)
def test_hep3_broken(data: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as info:
        parse_hep(data)
    assert info.value.reason == reason


@pytest.mark.parametrize("missing", [0x01, 0x02, 0x03, 0x04, 0x07, 0x08])
def test_hep3_missing_required_chunk(missing: int) -> None:
    chunks = [c for c in ipv4_chunks() if c[2:4] != struct.pack("!H", missing)]
    with pytest.raises(DecodeError) as info:
        parse_hep(hep3(*chunks))
    assert info.value.reason == "hep-missing-chunk"


def test_hep3_family_and_address_chunks_must_agree() -> None:
    chunks = [chunk(0x01, b"\x0a"), *ipv4_chunks()[1:]]  # says IPv6, carries IPv4 addresses
    with pytest.raises(DecodeError) as info:
        parse_hep(hep3(*chunks))
    assert info.value.reason == "hep-missing-chunk"


# -- HEPv2 ------------------------------------------------------------------------------------


def test_hep2_ipv4() -> None:
    data = hep2()
    assert is_hep(data)
    assert parse_hep(data) == HepPacket(
        version=2,
        family=4,
        ip_proto=17,
        src_ip="192.0.2.1",
        dst_ip="192.0.2.2",
        src_port=5060,
        dst_port=5061,
        ts_ns=1_600_000_000_250_000_000,
        capture_id=7,
        auth_key=None,
        correlation_id=None,
        payload_type=None,
        payload=SIP,
        node_name=None,
    )


def test_hep2_ipv6_tcp_response() -> None:
    reply = b"SIP/2.0 180 Ringing\r\n\r\n"
    p = parse_hep(hep2(reply, v6=True, proto=6))
    assert p is not None
    assert (p.version, p.family, p.ip_proto, p.src_ip, p.dst_ip) == (2, 6, 6, "2001:db8::1", "2001:db8::2")
    assert (p.src_port, p.dst_port, p.capture_id, p.payload) == (5060, 5061, 7, reply)


@pytest.mark.parametrize(
    "data",
    [
        hep2(b"\x80\x00\x12\x34 RTP-ish"),  # payload is not SIP
        hep2(b""),  # nothing after the header
        hep2(usec=1_000_000),  # not a gettimeofday() value
        hep2(proto=1),  # ICMP is not something an agent encapsulates
        b"\x02\x10\x0a\x11" + hep2()[4:],  # IPv6 family with the IPv4 header length
        b"\x01\x10\x02\x11" + hep2()[4:],  # HEPv1 is not recognised
        b"\x80\x08\x12\x34" + b"\x00" * 200,  # an RTP packet
        b"",
        b"\x02",
        b"OPTIONS sip:a SIP/2.0\r\n\r\n",
    ],
)
def test_not_hep(data: bytes) -> None:
    assert not is_hep(data)
    assert parse_hep(data) is None


def test_hep2_truncated() -> None:
    with pytest.raises(DecodeError) as info:
        parse_hep(hep2()[:20])
    assert info.value.reason == "hep-truncated"


# -- the contract: any bytes give a packet, None or DecodeError ----------------------------


def _contract(data: bytes) -> None:
    try:
        result = parse_hep(data, max_payload=4096)
    except DecodeError as exc:
        assert exc.reason.startswith("hep-")
        return
    assert result is None or isinstance(result, HepPacket)
    assert is_hep(data) == (result is not None) or data[:4] == b"HEP3"


@settings(max_examples=400, deadline=1000)
@given(st.binary(max_size=512))
def test_any_bytes(data: bytes) -> None:
    _contract(data)


@settings(max_examples=400, deadline=1000)
@given(st.lists(st.tuples(st.integers(0, 0x14), st.binary(max_size=20)), max_size=12), st.binary(max_size=8))
def test_any_chunks(chunks: list[tuple[int, bytes]], tail: bytes) -> None:
    _contract(hep3(*(chunk(t, v) for t, v in chunks)) + tail)
    _contract(hep3(*(chunk(t, v) for t, v in chunks), chunk(0x10, tail)))


@settings(max_examples=200, deadline=1000)
@given(st.binary(max_size=64), st.sampled_from([b"\x02\x10\x02\x11", b"\x02\x28\x0a\x06", b"HEP3"]))
def test_any_bytes_behind_a_signature(rest: bytes, prefix: bytes) -> None:
    _contract(prefix + rest)
