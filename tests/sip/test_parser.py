"""The SIP parser: start lines, eager Call-ID/CSeq, defects, and its contract."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.errors import SipParseError
from analyzer.sip.message import Origin
from analyzer.sip.parser import call_id_of, looks_like_sip, parse_message

ORIGIN = Origin(7, (7,), 1_000, "10.0.0.1", 5060, "10.0.0.2", 5060, "udp")

INVITE = (
    b"INVITE sip:bob@example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK776asdhds\r\n"
    b"v: SIP/2.0/UDP 10.0.0.9;branch=z9hG4bKold\r\n"
    b'f: "Alice" <sip:alice@example.com>;tag=1928301774\r\n'
    b"t: <sip:bob@example.com>\r\n"
    b"i: a84b4c76e66710@pc33.example.com\r\n"
    b"CSeq:   314159   INVITE\r\n"
    b"Subject: first line\r\n"
    b"  folded second line\r\n"
    b"c: application/sdp\r\n"
    b"l: 4\r\n"
    b"\r\n"
    b"v=0\r\nEXTRA"
)


def test_request_with_compact_headers_and_folding() -> None:
    m = parse_message(INVITE, ORIGIN)
    assert (m.method, m.uri, m.status, m.reason) == ("INVITE", "sip:bob@example.com", 0, "")
    assert (m.call_id, m.cseq, m.cseq_method) == ("a84b4c76e66710@pc33.example.com", 314159, "INVITE")
    assert m.body == b"v=0\r"  # Content-Length 4: the rest of the datagram is discarded (RFC 3261 §18.3)
    assert m.defects == ()
    assert m.headers.get("Subject") == "first line folded second line"
    assert m.headers.get_all("VIA") == [
        "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK776asdhds",
        "SIP/2.0/UDP 10.0.0.9;branch=z9hG4bKold",
    ]
    assert m.headers.get("content-type") == "application/sdp"
    assert m.label == "INVITE" and m.is_request and m.frame == 7


def test_response_lf_only_and_odd_case() -> None:
    raw = b"sip/2.0 488 Not Acceptable Here\nCALL-ID: x1\ncseq: 2 invite\ncontent-length: 0\n\n"
    m = parse_message(raw, ORIGIN)
    assert (m.status, m.reason, m.call_id, m.cseq, m.cseq_method) == (
        488,
        "Not Acceptable Here",
        "x1",
        2,
        "invite",
    )
    assert m.label == "488 Not Acceptable Here"
    assert m.body == b"" and m.defects == ()


def test_space_before_colon_and_missing_headers() -> None:
    m = parse_message(b"OPTIONS sip:x SIP/2.0\r\nCall-ID  :  abc  \r\n\r\n", ORIGIN)
    assert (m.call_id, m.cseq, m.defects) == ("abc", -1, ("no-cseq",))
    m = parse_message(b"SIP/2.0 200 OK\r\nCSeq: x\r\n", ORIGIN)
    assert m.defects == ("no-blank-line", "no-call-id", "bad-cseq")


def test_content_length_larger_than_body_is_a_defect() -> None:
    m = parse_message(b"MESSAGE sip:x SIP/2.0\r\ni: 1\r\nCSeq: 1 MESSAGE\r\nl: 100\r\n\r\nhi", ORIGIN)
    assert (m.body, m.defects) == (b"hi", ("content-length-mismatch",))


def test_non_utf8_is_replaced_not_fatal() -> None:
    m = parse_message(b"SIP/2.0 200 \xff\xfeOK\r\ni: \xe9t\xe9\r\nCSeq: 1 BYE\r\n\r\n", ORIGIN)
    assert (m.reason, m.call_id) == ("\ufffd\ufffdOK", "\ufffdt\ufffd")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "bad-start-line"),
        (b"\x80\x00RTP", "bad-start-line"),
        (b"HTTP/1.1 200 OK\r\n\r\n", "bad-start-line"),
        (b"SIP/2.0 2000 OK\r\n\r\n", "bad-status-line"),
        (b"INVITE sip:0%s\x00x SIP/2.0\r\n\r\n", "bad-request-line"),
    ],
)
def test_not_sip_or_broken_start_line(data: bytes, reason: str) -> None:
    with pytest.raises(SipParseError) as err:
        parse_message(data, ORIGIN)
    assert err.value.reason == reason


def test_looks_like_sip_accepts_bare_cr_line_end_like_wireshark() -> None:
    assert looks_like_sip(b"CANCEL sip:1@x SIP/2.0\r7Via: x\r\n")
    assert not looks_like_sip(b"GET / HTTP/1.1\r\n")


@settings(max_examples=1500, deadline=None)
@given(st.binary(max_size=600) | st.builds(lambda t: INVITE[: len(t)] + t, st.binary(max_size=200)))
def test_contract_any_bytes_give_a_message_or_the_parse_error(data: bytes) -> None:
    try:
        m = parse_message(data, ORIGIN)
    except SipParseError:
        return
    assert m.raw == data
    assert isinstance(m.call_id, str) and isinstance(m.cseq, int)
    # the lazy headers obey the same contract
    list(m.headers)


@settings(max_examples=1500, deadline=None)
@given(st.binary(max_size=600) | st.builds(lambda t: INVITE[: len(t)] + t, st.binary(max_size=200)))
def test_call_id_alone_is_the_parsed_call_id(data: bytes) -> None:
    """What an ICMP error quoting a message is matched by: read alone, the Call-ID is the parser's."""
    try:
        expected: str | None = parse_message(data, ORIGIN).call_id
    except SipParseError:
        expected = None
    assert call_id_of(data) == expected


def test_call_id_alone() -> None:
    assert call_id_of(INVITE) == "a84b4c76e66710@pc33.example.com"
    assert call_id_of(b"SIP/2.0 200 OK\nCALL-ID :  x y \nI: second\n\n") == "x y"
    assert call_id_of(b"OPTIONS sip:a SIP/2.0\r\nVia: x\r\n\r\ni: in the body\r\n") == ""
    assert call_id_of(b"HTTP/1.1 200 OK\r\nCall-ID: x\r\n\r\n") is None


def test_on_demand_fields() -> None:
    raw = (
        b"SIP/2.0 503 Service Unavailable\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKx, SIP/2.0/TCP 10.0.0.2:5070\r\n"
        b'From: <sip:a@x>;tag=f1\r\nTo: "B" <sip:b@y>;tag=t2\r\ni: c1\r\nCSeq: 5 INVITE\r\n'
        b"Retry-After: 120 (maintenance);duration=60\r\nServer: trunk/1.0\r\n"
        b'Warning: 399 gw "no circuits"\r\nReason: Q.850;cause=34;text="No circuit"\r\n'
        b"Content-Type: application/SDP; charset=x\r\n\r\n"
    )
    m = parse_message(raw, ORIGIN)
    assert m.from_ is not None and m.from_.tag == "f1"
    assert m.to is not None and (m.to.display, m.to.tag) == ("B", "t2")
    assert [(v.host, v.port, v.branch) for v in m.vias] == [("10.0.0.1", None, "z9hG4bKx"), ("10.0.0.2", 5070, "")]
    assert [(r.protocol, r.cause, r.text) for r in m.reasons] == [("Q.850", 34, "No circuit")]
    assert [(w.code, w.agent, w.text) for w in m.warnings] == [(399, "gw", "no circuits")]
    assert (m.int_header("retry-after"), m.user_agent, m.content_type) == (120, "trunk/1.0", "application/sdp")


def test_a_message_without_header_lines() -> None:
    """The blank line right after the start line: an empty header block (which ends, as
    found, before it starts: never sliced so, see analyzer.native)."""
    msg = parse_message(b"OPTIONS sip:a SIP/2.0\r\n\r\n", ORIGIN)
    assert msg.headers.block()[1:] == (23, 23)
    assert msg.headers.items() == []
    assert msg.headers.get("via") is None and msg.headers.first_line("via") is None
    assert msg.headers == parse_message(b"OPTIONS sip:a SIP/2.0\r\n\r\n", ORIGIN).headers
    assert msg.defects == ("no-call-id", "no-cseq")
