"""TCP reassembly: order, retransmission, several messages per segment, gaps."""

from __future__ import annotations

from analyzer.decode.tcp import TcpStream, TcpTable

A = b"INVITE sip:b@x SIP/2.0\r\ni: 1\r\nCSeq: 1 INVITE\r\nContent-Length: 3\r\n\r\nabc"
B = b"SIP/2.0 100 Trying\r\ni: 1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
KEY = (b"\x01\x02\x03\x04", 5060, b"\x05\x06\x07\x08", 5060)


def kinds(pieces: list) -> list[tuple[str, bytes, tuple[int, ...]]]:  # type: ignore[type-arg]
    return [(p.kind, p.data, p.frames) for p in pieces]


def test_one_message_over_three_segments_in_order() -> None:
    s = TcpStream(next_seq=1000)
    assert s.push(1000, A[:10], 1) == []
    assert s.push(1010, A[10:40], 2) == []
    assert kinds(s.push(1040, A[40:], 3)) == [("message", A, (1, 2, 3))]


def test_out_of_order_and_retransmitted_segments() -> None:
    s = TcpStream(next_seq=0)
    assert s.push(20, A[20:], 2) == []  # early
    assert s.push(0, A[:10], 1) == []
    assert s.push(0, A[:10], 3) == []  # retransmission
    assert kinds(s.push(10, A[10:20], 4)) == [("message", A, (1, 4, 2))]
    assert s.retransmitted == 1


def test_two_messages_in_one_segment_and_keepalive() -> None:
    s = TcpStream(next_seq=0)
    data = A + b"\r\n\r\n" + B
    assert kinds(s.push(0, data, 9)) == [("message", A, (9,)), ("message", B, (9,))]


def test_sequence_wraparound() -> None:
    s = TcpStream(next_seq=0xFFFFFFF0)
    assert s.push(0xFFFFFFF0, A[:16], 1) == []
    assert kinds(s.push(0, A[16:], 2)) == [("message", A, (1, 2))]


def test_table_starts_streams_only_on_sip_and_closes_on_fin() -> None:
    t = TcpTable()
    assert t.segment(KEY, 5, 0x18, b"\x16\x03\x01 tls", 1) == []
    assert KEY not in t.streams
    assert t.segment(KEY, 100, 0x18, A[:30], 2) == []
    assert KEY in t.streams
    pieces = t.segment(KEY, 130, 0x19, A[30:40], 3)  # FIN with the message still incomplete
    assert kinds(pieces) == [("incomplete", A[:40], (2, 3))]
    assert KEY not in t.streams
