"""Stream framing by Content-Length (RFC 3261 §18.3)."""

from __future__ import annotations

from analyzer.sip import framing

MSG = b"SIP/2.0 200 OK\r\ni: 1\r\nCSeq: 1 BYE\r\nContent-Length: 5\r\n\r\nhello"


def test_whole_message_then_need() -> None:
    assert framing.frame_message(MSG + b"SIP/2.0", 0) == ("message", len(MSG))
    assert framing.frame_message(MSG[:-1], 0) == ("need", 0)
    assert framing.frame_message(MSG[:20], 0) == ("need", 0)


def test_missing_content_length_means_empty_body() -> None:
    msg = b"BYE sip:x SIP/2.0\r\ni: 1\r\n\r\n"
    assert framing.frame_message(msg + b"xx", 0) == ("message", len(msg))


def test_junk_resyncs_to_next_start_line() -> None:
    buf = b"garbage line\r\nmore\r\n" + MSG
    assert framing.frame_message(buf, 0) == ("junk", 20)
    assert framing.frame_message(buf, 20) == ("message", len(buf))


def test_keepalives_are_skipped() -> None:
    assert framing.skip_keepalives(b"\r\n\r\nSIP", 0) == 4


def test_oversized_body_is_junk() -> None:
    buf = b"MESSAGE sip:x SIP/2.0\r\nl: 99999999\r\n\r\n"
    assert framing.frame_message(buf, 0) == ("junk", len(buf))
