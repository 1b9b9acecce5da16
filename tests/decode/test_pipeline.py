"""The decoder on real captures: every encapsulation and reassembly case we meet in the field."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from analyzer.reader import MessageReader


def read(path: Path) -> tuple[MessageReader, list[tuple[int, tuple[int, ...], str, str, str]]]:
    reader = MessageReader(path)
    rows = [(m.frame, m.origin.frames, m.origin.transport, m.origin.encap, m.label) for m in reader]
    return reader, rows


@pytest.mark.parametrize(
    ("name", "count", "kinds"),
    [
        ("sngrep/ipv6frag.pcap", 32, {("udp", "sll"): 32}),
        ("sngrep/ipip.pcap", 4, {("tcp", ""): 2, ("tcp", "ip-in-ip"): 2}),
        ("ndpi/gre.pcapng", 1, {("udp", "vlan/gre/ppp"): 1}),
        ("heplify/erspan_sip_ipv4_udp.pcapng", 140, {("udp", "gre"): 140}),
        ("arkime/gtp-iphone.pcap", 17, {("tcp", "sll/gtp"): 13, ("udp", "sll/gtp"): 4}),
        ("heplify/sip_tcp_websocket.pcap", 39, {("udp", ""): 28, ("ws", ""): 11}),
        ("heplify/sip_sctp.pcap", 4, {("sctp", "sll"): 4}),
        ("hep-wireshark/hep.pcap", 6, {("udp", "hep3"): 6}),
        ("wireshark-samplecaptures/h263-over-rtp.pcap", 4, {("udp", ""): 4}),  # BSD null link
        ("zeek/sip-long-request-response-paths.pcap", 2, {("udp", ""): 2}),  # raw IPv4 link
    ],
)
def test_encapsulations(shared_pcaps: Path, name: str, count: int, kinds: dict[tuple[str, str], int]) -> None:
    _, rows = read(shared_pcaps / name)
    assert len(rows) == count
    assert Counter((r[2], r[3]) for r in rows) == kinds


def test_ipv6_fragments_are_reassembled(shared_pcaps: Path) -> None:
    reader, rows = read(shared_pcaps / "sngrep/ipv6frag.pcap")
    assert rows[0] == (2, (1, 2), "udp", "sll", "INVITE")
    assert rows[2] == (5, (4, 5), "udp", "sll", "INVITE")
    assert reader.decoder.stats.frames_by_reason == {"sip": 32, "ip-fragment": 2}


def test_tcp_message_over_several_segments(shared_pcaps: Path) -> None:
    reader, rows = read(shared_pcaps / "suricata-verify/sip-body-large.pcap")
    assert rows == [(9, (5, 6, 7, 8, 9), "tcp", "", "INVITE"), (11, (11,), "tcp", "", "100 Trying")]
    assert reader.decoder.stats.malformed == []


def test_tcp_retransmission_is_not_a_new_message(shared_pcaps: Path) -> None:
    reader, rows = read(shared_pcaps / "heplify/sip_ipv4_tcp_retrans.pcap")
    assert len(rows) == 8
    assert reader.decoder.tcp.retransmitted == 1


def test_hep3_inner_addresses_and_time(shared_pcaps: Path) -> None:
    msgs = list(MessageReader(shared_pcaps / "hep-wireshark/hep.pcap"))
    first = msgs[0]
    o = first.origin
    assert (o.frame, o.transport, o.encap) == (1, "udp", "hep3")
    assert first.label and first.call_id


def test_every_frame_is_accounted_for_once(shared_pcaps: Path) -> None:
    reader, rows = read(shared_pcaps / "ndpi/fuzz-2006-06-26-2594.pcap")
    st = reader.decoder.stats
    assert sum(st.frames_by_reason.values()) == st.frames == 691
    assert len(rows) == 52
    # bit-flipped start lines that still look like SIP are listed, never silently dropped
    assert {m.reason for m in st.malformed} >= {"bad-request-line", "bad-status-line"}


def test_an_ip_total_length_short_of_its_headers_leaves_no_udp_payload() -> None:
    """IPv4 total length 0 (as segmentation offload writes it): no SIP, and no error (the
    fast path's payload slice would end before it starts: see analyzer.native)."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    from scapy.packet import Raw

    from analyzer.decode.pipeline import Decoder

    sip = b"OPTIONS sip:a SIP/2.0\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n\r\n"
    frame = Ether() / IP(src="127.0.0.1", dst="127.0.0.2", len=0) / UDP(sport=5060, dport=5060) / Raw(sip)
    decoder = Decoder()
    assert decoder.feed(1, 0, 1, bytes(frame)) == []
    assert decoder.stats.frames_by_reason == Counter({"udp-not-sip": 1})
