"""analyzer.decode.websocket against a real SIP-over-WebSocket capture, hand-built frames, any bytes."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.decode.websocket import WebSocketStream, is_upgrade_request, is_upgrade_response
from analyzer.errors import DecodeError

WS_PCAP = "heplify/sip_tcp_websocket.pcap"  # under the shared_pcaps fixture (../shared/pcaps)
CLIENT_PORT, SERVER_PORT = 43380, 8080

CLIENT_START_LINES = [
    b"INVITE sip:+12263382742@dev-mike.tncp.textnow.com SIP/2.0",
    b"ACK sip:+12263382742@dev-mike.tncp.textnow.com SIP/2.0",
    b"INVITE sip:+12263382742@dev-mike.tncp.textnow.com SIP/2.0",
    b"ACK sip:+12263382742@10.243.0.143:5060;transport=udp SIP/2.0",
    b"BYE sip:+12263382742@10.243.0.143:5060;transport=udp SIP/2.0",
]
SERVER_START_LINES = [
    b"SIP/2.0 407 Proxy Authentication Required",
    b"SIP/2.0 100 Giving a try",
    b"SIP/2.0 180 Ringing",
    b"SIP/2.0 183 Session Progress",
    b"SIP/2.0 200 OK",
    b"SIP/2.0 200 OK",
]


def tcp_stream(path: Path, sport: int) -> bytes:
    """The TCP payload sent from ``sport``, in sequence order, retransmissions once (test helper only)."""
    from scapy.layers.inet import TCP
    from scapy.utils import rdpcap

    by_seq: dict[int, bytes] = {}
    for pkt in rdpcap(str(path)):
        if TCP in pkt and pkt[TCP].sport == sport and len(pkt[TCP].payload):
            by_seq.setdefault(pkt[TCP].seq, bytes(pkt[TCP].payload))
    return b"".join(by_seq[seq] for seq in sorted(by_seq))


def after_handshake(stream: bytes) -> bytes:
    return stream[stream.index(b"\r\n\r\n") + 4 :]


def frame(
    opcode: int,
    payload: bytes,
    *,
    fin: bool = True,
    key: bytes | None = None,
    rsv: int = 0,
    force_len64: bool = False,
) -> bytes:
    """One RFC 6455 §5.2 frame."""
    head = bytes([(0x80 if fin else 0) | rsv | opcode])
    mask_bit = 0x80 if key is not None else 0
    n = len(payload)
    if force_len64 or n > 0xFFFF:
        head += bytes([mask_bit | 127]) + struct.pack("!Q", n)
    elif n > 125:
        head += bytes([mask_bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([mask_bit | n])
    if key is None:
        return head + payload
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def feed_all(stream: WebSocketStream, data: bytes, step: int | None = None) -> list[bytes]:
    if step is None:
        return stream.feed(data)
    out: list[bytes] = []
    for i in range(0, len(data), step):
        out += stream.feed(data[i : i + step])
    return out


# -- the real capture (a browser client through an AWS load balancer to Kamailio) -----------


def test_capture_handshake_detected(shared_pcaps: Path) -> None:
    client = tcp_stream(shared_pcaps / WS_PCAP, CLIENT_PORT)
    server = tcp_stream(shared_pcaps / WS_PCAP, SERVER_PORT)
    assert is_upgrade_request(client) and not is_upgrade_response(client)
    assert is_upgrade_response(server) and not is_upgrade_request(server)
    assert not is_upgrade_request(after_handshake(client))
    assert not is_upgrade_response(after_handshake(server))


@pytest.mark.parametrize("step", [None, 1, 7, 1448])
def test_capture_messages(shared_pcaps: Path, step: int | None) -> None:
    for port, expected in ((CLIENT_PORT, CLIENT_START_LINES), (SERVER_PORT, SERVER_START_LINES)):
        stream = WebSocketStream()
        messages = feed_all(stream, after_handshake(tcp_stream(shared_pcaps / WS_PCAP, port)), step)
        assert [m.split(b"\r\n", 1)[0] for m in messages] == expected
        assert stream.control_frames == 0
        assert stream.error is None


def test_capture_message_sizes(shared_pcaps: Path) -> None:
    client = WebSocketStream().feed(after_handshake(tcp_stream(shared_pcaps / WS_PCAP, CLIENT_PORT)))
    server = WebSocketStream().feed(after_handshake(tcp_stream(shared_pcaps / WS_PCAP, SERVER_PORT)))
    assert [len(m) for m in client] == [2210, 453, 2509, 598, 598]
    assert [len(m) for m in server] == [560, 381, 1104, 2114, 2100, 548]


# -- handshake checks -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", True),
        (b"GET / HTTP/1.1\r\nupgrade:WebSocket\r\n\r\n", True),
        (b"GET / HTTP/1.1\r\nUPGRADE: h2c, websocket\r\n", True),  # headers not complete yet
        (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", False),
        (b"GET / HTTP/1.1\r\nUpgrade: h2c\r\n\r\n", False),
        (b"GET / HTTP/1.1\r\nHost: a\r\n\r\nUpgrade: websocket\r\n", False),  # in the body
        (b"POST / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n", False),
        (b"get / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n", False),  # RFC 9110 §9.1: methods are case-sensitive
        (b"", False),
    ],
)
def test_is_upgrade_request(data: bytes, expected: bool) -> None:
    assert is_upgrade_request(data) is expected


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", True),
        (b"HTTP/1.1 101\r\nupgrade: WEBSOCKET\r\n\r\n", True),
        (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n", False),
        (b"HTTP/1.1 1010 x\r\nUpgrade: websocket\r\n\r\n", False),
        (b"HTTP/1.1 200 OK\r\nUpgrade: websocket\r\n\r\n", False),
        (b"HTTP/1.0 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", False),
        (b"SIP/2.0 101 Dialog Establishment\r\n\r\n", False),
        (b"", False),
    ],
)
def test_is_upgrade_response(data: bytes, expected: bool) -> None:
    assert is_upgrade_response(data) is expected


# -- framing ----------------------------------------------------------------------------------


def test_masked_and_unmasked_text_and_binary() -> None:
    data = frame(1, b"OPTIONS sip:a SIP/2.0\r\n\r\n", key=b"\x01\x02\x03\x04") + frame(2, b"\x00\xffbin")
    assert WebSocketStream().feed(data) == [b"OPTIONS sip:a SIP/2.0\r\n\r\n", b"\x00\xffbin"]


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536, 70000])
def test_length_forms(size: int) -> None:
    payload = bytes(i % 251 for i in range(size))
    for key in (None, b"\xa5\x5a\x0f\xf0"):
        assert WebSocketStream().feed(frame(2, payload, key=key)) == [payload]
    assert WebSocketStream().feed(frame(2, payload, force_len64=True)) == [payload]


def test_fragments_joined_and_control_frames_counted() -> None:
    data = (
        frame(1, b"INVITE sip:b", fin=False, key=b"abcd")
        + frame(9, b"ping", key=b"efgh")  # RFC 6455 §5.4: control frames may sit between fragments
        + frame(0, b"@x SIP/2.0", fin=False, key=b"ijkl")
        + frame(0, b"\r\n\r\n", key=b"mnop")
        + frame(10, b"")
        + frame(8, struct.pack("!H", 1000) + b"bye")
    )
    stream = WebSocketStream()
    assert stream.feed(data) == [b"INVITE sip:b@x SIP/2.0\r\n\r\n"]
    assert stream.control_frames == 3


def test_partial_frame_is_kept() -> None:
    data = frame(1, b"SIP/2.0 200 OK\r\n\r\n", key=b"wxyz")
    stream = WebSocketStream()
    assert stream.feed(data[:1]) == []
    assert stream.feed(data[1:6]) == []
    assert stream.feed(data[6:] + data[:3]) == [b"SIP/2.0 200 OK\r\n\r\n"]
    assert stream.feed(data[3:]) == [b"SIP/2.0 200 OK\r\n\r\n"]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (frame(1, b"x", rsv=0x40), "ws-compressed"),
        (frame(1, b"x", rsv=0x20), "ws-bad-frame"),
        (frame(1, b"x", rsv=0x10), "ws-bad-frame"),
        (frame(3, b"x"), "ws-bad-frame"),  # reserved data opcode
        (frame(0xB, b"x"), "ws-bad-frame"),  # reserved control opcode
        (frame(0, b"x"), "ws-bad-frame"),  # continuation with no message open
        (frame(1, b"a", fin=False) + frame(1, b"b"), "ws-bad-frame"),  # new message mid-message
        (frame(9, b"x", fin=False), "ws-bad-frame"),  # fragmented control frame
        (frame(9, b"x" * 126), "ws-bad-frame"),  # control frame over 125 bytes
        (b"\x82\x7f\x80" + b"\x00" * 7, "ws-bad-frame"),  # 64-bit length with the top bit set
    ],
)
def test_bad_frames(data: bytes, reason: str) -> None:
    stream = WebSocketStream()
    with pytest.raises(DecodeError) as info:
        stream.feed(data)
    assert info.value.reason == reason
    assert stream.error is info.value


def test_error_breaks_the_stream_but_keeps_earlier_messages() -> None:
    stream = WebSocketStream()
    good = frame(1, b"first")
    with pytest.raises(DecodeError):
        stream.feed(good + frame(3, b"bad") + good)
    assert stream.feed(b"") == [b"first"]
    assert stream.feed(good) == []  # framing is lost: nothing more is trusted
    assert stream.error is not None and stream.error.reason == "ws-bad-frame"


def test_too_large_frame_is_skipped() -> None:
    stream = WebSocketStream(max_message=100)
    big = frame(2, b"z" * 101, key=b"kkkk")
    with pytest.raises(DecodeError) as info:
        stream.feed(frame(1, b"before") + big[:50])
    assert info.value.reason == "ws-too-large"
    assert stream.feed(big[50:] + frame(1, b"after")) == [b"before", b"after"]
    assert stream.error is None


def test_too_large_message_drops_its_remaining_fragments() -> None:
    stream = WebSocketStream(max_message=10)
    data = frame(1, b"123456", fin=False) + frame(0, b"789012", fin=False) + frame(0, b"345") + frame(1, b"ok")
    with pytest.raises(DecodeError) as info:
        stream.feed(data)
    assert info.value.reason == "ws-too-large"
    assert stream.feed(b"") == [b"ok"]


def test_too_large_first_fragment_drops_its_continuations() -> None:
    stream = WebSocketStream(max_message=10)
    data = frame(1, b"x" * 11, fin=False) + frame(0, b"tail") + frame(1, b"ok")
    with pytest.raises(DecodeError):
        stream.feed(data)
    assert stream.feed(b"") == [b"ok"]


# -- the contract ----------------------------------------------------------------------------


@settings(max_examples=300, deadline=1000)
@given(st.binary(max_size=600), st.integers(1, 64))
def test_any_bytes(data: bytes, step: int) -> None:
    stream = WebSocketStream(max_message=256)
    for i in range(0, len(data), step):
        try:
            out = stream.feed(data[i : i + step])
        except DecodeError as exc:
            assert exc.reason in {"ws-bad-frame", "ws-compressed", "ws-too-large"}
            continue
        assert isinstance(out, list) and all(isinstance(m, bytes) for m in out)


_message = st.tuples(
    st.binary(max_size=300),
    st.integers(1, 4),  # fragments
    st.one_of(st.none(), st.binary(min_size=4, max_size=4)),  # masking key
)


@settings(max_examples=200, deadline=1000)
@given(st.lists(_message, max_size=6), st.integers(1, 97))
def test_round_trip_any_split(messages: list[tuple[bytes, int, bytes | None]], step: int) -> None:
    wire = b""
    for payload, parts, key in messages:
        cut = max(1, len(payload) // parts)
        pieces = [payload[i : i + cut] for i in range(0, len(payload), cut)] or [b""]
        for n, piece in enumerate(pieces):
            wire += frame(1 if n == 0 else 0, piece, fin=n == len(pieces) - 1, key=key)
            if n == 0:
                wire += frame(9, b"p")
    stream = WebSocketStream()
    assert feed_all(stream, wire, step) == [m[0] for m in messages]
    assert stream.control_frames == len(messages)
