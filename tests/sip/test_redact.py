"""analyzer.sip.redact: masking on text and on bytes, exact results."""

from __future__ import annotations

import pytest

from analyzer.errors import UsageError
from analyzer.sip.message import Origin
from analyzer.sip.parser import parse_message
from analyzer.sip.redact import (
    DEFAULT,
    REDACTED,
    Redaction,
    changed_runs,
    mask_copies,
    mask_credentials,
    mask_frames,
    scrub,
)

MSG = (
    b"INVITE sip:bob@b.example SIP/2.0\r\n"
    b'f: "Alice" <sip:alice@a.example>;tag=a1b2\r\n'
    b"To: <sip:bob@b.example>\r\n"
    b"P-Asserted-Identity: <sip:+15550100@a.example>\r\n"
    b"x-account: 4711\r\n"
    b"X-ACCOUNT: 4712,\r\n"
    b"  4713\r\n"
    b'Proxy-Authorization: Digest username="alice", realm="a.example",\r\n'
    b'\tnonce="n0nce", uri="sip:bob@b.example", response="0123abcd", qop=auth, cnonce="c0"\r\n'
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 32\r\n"
    b"\r\n"
    b"X-Account: 9999\r\n"
    b"Authorization: x\r\n"
)


def test_of_resolves_case_and_compact_forms() -> None:
    r = Redaction.of(["P-Asserted-Identity", "X-Account", "f", "I"])
    assert r.headers == frozenset({"p-asserted-identity", "x-account", "from", "call-id"})
    assert r.masks("FROM") and r.masks("f") and not r.masks("authorization")
    assert r.touches("authorization") and r.touches("Proxy-Authorization") and not r.touches("to")
    with pytest.raises(UsageError, match="not a header name"):
        Redaction.of(["Bad Name"])
    with pytest.raises(UsageError):
        Redaction.of([""])


def test_raw_keeps_length_and_masks_only_the_header_block() -> None:
    r = Redaction.of(["x-account", "P-Asserted-Identity", "From"])
    out = r.raw(MSG)
    assert len(out) == len(MSG)
    assert (
        out
        == (
            b"INVITE sip:bob@b.example SIP/2.0\r\n"
            b"f: xxxxxxx " + b"x" * 30 + b"\r\n"  # '"Alice" <sip:alice@a.example>;tag=a1b2'
            b"To: <sip:bob@b.example>\r\n"
            b"P-Asserted-Identity: " + b"x" * 25 + b"\r\n"
            b"x-account: xxxx\r\n"
            b"X-ACCOUNT: xxxxx\r\n"
            b"  xxxx\r\n"
            b'Proxy-Authorization: Digest username="alice", realm="a.example",\r\n'
            b'\tnonce="xxxxx", uri="sip:bob@b.example", response="xxxxxxxx", qop=auth, cnonce="xx"\r\n'
            b"Content-Type: application/sdp\r\n"
            b"Content-Length: 32\r\n"
            b"\r\n"
            b"X-Account: 9999\r\n"
            b"Authorization: x\r\n"
        )
    )


def test_raw_credentials_by_default_and_whole_when_named() -> None:
    basic = (
        b"REGISTER sip:a SIP/2.0\nAuthorization: Basic QWxhZGRpbjpvcGVu==\n"
        b"Authorization: Digest weird junk, response=abc\n\n"
    )
    assert DEFAULT.raw(basic) == (
        b"REGISTER sip:a SIP/2.0\nAuthorization: Basic xxxxxxxxxxxxxxxx==\n"
        b"Authorization: Digest xxxxx xxxx, response=xxx\n\n"
    )
    assert Redaction.of(["authorization"]).raw(basic) == (
        b"REGISTER sip:a SIP/2.0\nAuthorization: xxxxx xxxxxxxxxxxxxxxxxx\n"
        b"Authorization: xxxxxx xxxxx xxxxx xxxxxxxxxxxx\n\n"
    )
    plain = b"OPTIONS sip:a SIP/2.0\r\nVia: x\r\n\r\n"
    assert DEFAULT.raw(plain) is plain


def test_text_for_people() -> None:
    r = Redaction.of(["x-account", "from"])
    text = MSG.decode()
    assert r.text(text) == (
        "INVITE sip:bob@b.example SIP/2.0\r\n"
        f"f: {REDACTED}\r\n"
        "To: <sip:bob@b.example>\r\n"
        "P-Asserted-Identity: <sip:+15550100@a.example>\r\n"
        f"x-account: {REDACTED}\r\n"
        f"X-ACCOUNT: {REDACTED}\r\n"
        'Proxy-Authorization: Digest username="alice",realm="a.example",'
        f'nonce="{REDACTED}",uri="sip:bob@b.example",response="{REDACTED}",qop=auth,cnonce="{REDACTED}"\r\n'
        "Content-Type: application/sdp\r\n"
        "Content-Length: 32\r\n"
        "\r\n"
        "X-Account: 9999\r\n"
        "Authorization: x\r\n"
    )
    assert mask_credentials("Authorization:") == f"Authorization: {REDACTED}"
    assert r.value("F", "x") == REDACTED
    assert r.value("authorization", 'Digest username="u", response="r"') == f'Digest username="u",response="{REDACTED}"'
    assert r.value("to", "<sip:b@c>") == "<sip:b@c>"


def test_loose_masks_lines_anywhere() -> None:
    quoted = b"\x45\x00junk\nSIP/2.0 200 OK\r\nX-Account: 42\r\n\r\nX-Account: 43\r\nAuthorization: Basic ab"
    assert Redaction.of(["x-account"]).loose(quoted) == (
        b"\x45\x00junk\nSIP/2.0 200 OK\r\nX-Account: xx\r\n\r\nX-Account: xx\r\nAuthorization: Basic xx"
    )


def test_secrets_are_the_values_and_their_parts() -> None:
    msg = parse_message(MSG, Origin(1, (1,), 0, "10.0.0.1", 5060, "10.0.0.2", 5060, "udp"))
    r = Redaction.of(["from", "x-account"])
    assert r.secrets(msg) == {
        '"Alice" <sip:alice@a.example>;tag=a1b2',
        "Alice",
        "sip:alice@a.example",
        "alice",
        "alice@a.example",
        "a1b2",
        "4711",
        "4712, 4713",
        "4712",
        "4713",
        "n0nce",
        "0123abcd",
    }
    assert DEFAULT.secrets(msg) == {"n0nce", "0123abcd"}
    assert scrub("from alice@a.example (alice)", {"alice", "alice@a.example"}) == f"from {REDACTED} ({REDACTED})"


def test_mask_frames_across_segments() -> None:
    r = Redaction.of(["x-account"])
    masked = r.raw(MSG)
    cut1, cut2 = 60, 150  # the second cut falls inside X-ACCOUNT's folded value
    frames = [b"HDR1" + MSG[:cut1], b"HDR2" + MSG[cut1:cut2], b"HDR3" + MSG[cut2:] + b"\0\0pad"]
    assert mask_frames(MSG, masked, frames) == [
        b"HDR1" + masked[:cut1],
        b"HDR2" + masked[cut1:cut2],
        b"HDR3" + masked[cut2:] + b"\0\0pad",
    ]
    # XOR-masked (WebSocket) payload: the message cannot be placed, nothing is returned.
    assert mask_frames(MSG, masked, [bytes(b ^ 0x5A for b in MSG)]) is None
    # A retransmitted copy that got no share still holds the secret: refused.
    assert mask_frames(MSG, masked, [MSG, b"dup " + MSG[100:]]) is None
    assert mask_frames(MSG, MSG, frames) == frames


def test_changed_runs_and_copies() -> None:
    masked = DEFAULT.raw(MSG)
    assert changed_runs(MSG, masked) == [b"n0nce", b"0123abcd"]
    assert mask_copies(b"icmp quote nonce=n0nce response=0123a", [b"n0nce", b"0123abcd"]) == (
        b"icmp quote nonce=xxxxx response=xxxxx"
    )
