"""A message packed as plain values and back (what ``analyze --jobs`` hands between processes)."""

from __future__ import annotations

import pickle
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.errors import SipParseError
from analyzer.reader import read_messages
from analyzer.sip.headers import Headers
from analyzer.sip.message import Origin, SipMessage, packed, unpacked
from analyzer.sip.parser import parse_message
from tests.sip.test_parser import INVITE, ORIGIN

SAMPLES = Path(__file__).resolve().parents[2] / "sample_pcaps"


def _same(a: SipMessage, b: SipMessage) -> bool:
    """Equal, of the same types (a plain tuple equals a NamedTuple), and so are what is not
    compared by ``==`` (the header lookups)."""
    same_types = type(a) is type(b) and type(a.origin) is type(b.origin)
    return (
        same_types and a == b and a.headers.items() == b.headers.items() and a.body == b.body and a.origin == b.origin
    )


def test_a_cut_body_comes_back_cut() -> None:
    msg = parse_message(INVITE, ORIGIN._replace(frames=(5, 6, 7), encap="vlan"))
    values = packed(msg)
    assert values[19] == b"v=0\r"  # Content-Length 4: not the tail of the raw bytes, so sent as it is
    back = unpacked(pickle.loads(pickle.dumps(values, pickle.HIGHEST_PROTOCOL)))
    assert _same(back, msg)
    assert back.headers.get("subject") == "first line folded second line"


def test_a_body_at_the_end_goes_as_its_length() -> None:
    msg = parse_message(INVITE.replace(b"l: 4", b"l: 10"), ORIGIN)
    assert packed(msg)[19] == 10 and _same(unpacked(packed(msg)), msg)


def test_headers_of_other_bytes_go_with_them() -> None:
    """A message built by hand (the tshark engine's) may keep its header block apart."""
    msg = SipMessage(ORIGIN, "OPTIONS", 0, "", "sip:a", "c", 1, "OPTIONS", Headers(b"\nCall-ID: c\n", 1), b"", b"x")
    values = packed(msg)
    assert values[16] == b"\nCall-ID: c\n" and _same(unpacked(values), msg)


def test_every_message_of_the_samples_comes_back_equal() -> None:
    for capture in ("tcp_large_invite.pcap", "udp_fragmented.pcap", "ipv6_fragmented.pcap", "sll_call.pcap"):
        messages = list(read_messages(SAMPLES / capture))
        assert messages and all(_same(unpacked(pickle.loads(pickle.dumps(packed(m)))), m) for m in messages)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600) | st.builds(lambda t: INVITE[: len(t)] + t, st.binary(max_size=200)))
def test_any_message_the_parser_makes_comes_back_equal(data: bytes) -> None:
    try:
        msg = parse_message(data, Origin(1, (1,), 0, "::1", 1, "::2", 2, "tcp"))
    except SipParseError:
        return
    assert _same(unpacked(pickle.loads(pickle.dumps(packed(msg)))), msg)
