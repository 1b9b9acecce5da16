"""The HEP listener on loopback: UDP datagrams, HEP3 framing over TCP, limits, the auth key.

The packets are the HEP3 datagrams of a real capture (Wireshark's hep.pcap), resent."""

from __future__ import annotations

import queue
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from analyzer.capture.source import open_stream, read_frames
from analyzer.capture.stats import CaptureStats
from analyzer.decode import ip as ip_mod
from analyzer.errors import UsageError
from analyzer.live.events import Event, HepIn
from analyzer.live.hep import HepListener, RateLimiter, key_ok, parse_listen


@pytest.fixture(scope="module")
def hep_packets(shared_pcaps: Path) -> list[bytes]:
    """The 8 UDP payloads of hep-wireshark/hep.pcap (6 with SIP, 2 HEP3 without)."""
    path = shared_pcaps / "hep-wireshark/hep.pcap"
    out = []
    with open_stream(path) as f:
        for _ts, _lt, data, _ in read_frames(f, CaptureStats(str(path))):
            seg = ip_mod.ipv4(data, 14).payload
            out.append(seg[8 : (seg[4] << 8 | seg[5])])
    assert len(out) == 8 and all(p[:4] == b"HEP3" for p in out)
    return out


def with_key(packet: bytes, key: bytes) -> bytes:
    """``packet`` with an auth key chunk (vendor 0, type 0x000e) appended, total length fixed."""
    body = packet[6:] + struct.pack("!HHH", 0, 0x000E, 6 + len(key)) + key
    return b"HEP3" + struct.pack("!H", 6 + len(body)) + body


@pytest.fixture
def listener() -> Iterator[tuple[HepListener, queue.Queue[Event]]]:
    q: queue.Queue[Event] = queue.Queue()
    lst = HepListener("127.0.0.1", 0, q, max_size=2000)
    lst.bind()
    lst.start()
    try:
        yield lst, q
    finally:
        lst.stop()


def received(q: queue.Queue[Event], n: int, limit_s: float = 5.0) -> list[bytes]:
    out: list[bytes] = []
    deadline = time.monotonic() + limit_s
    while len(out) < n and time.monotonic() < deadline:
        try:
            ev = q.get(timeout=0.1)
        except queue.Empty:
            continue
        assert isinstance(ev, HepIn)
        assert ev.source == "127.0.0.1"
        out.append(ev.data)
    return out


def wait_until(cond: object, limit_s: float = 5.0) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if callable(cond) and cond():
            return
        time.sleep(0.02)
    raise AssertionError("condition not met")


def test_parse_listen() -> None:
    assert parse_listen("9060") == ("127.0.0.1", 9060)
    assert parse_listen("0.0.0.0:9060") == ("0.0.0.0", 9060)
    assert parse_listen("[::1]:9061") == ("::1", 9061)
    assert parse_listen(":9062") == ("127.0.0.1", 9062)
    for bad in ("collector:9060", "9060x", "127.0.0.1:70000", ""):
        with pytest.raises(UsageError):
            parse_listen(bad)


def test_rate_limiter() -> None:
    rl = RateLimiter(rate=2.0, burst=3.0, max_sources=2)
    assert [rl.allow("a", 0.0) for _ in range(4)] == [True, True, True, False]
    assert rl.allow("a", 0.5)  # 0.5 s at 2/s: one token back
    assert not rl.allow("a", 0.5)
    assert rl.allow("b", 0.5) and rl.allow("c", 0.5)  # "a" forgotten: at most 2 sources
    assert [rl.allow("a", 0.5) for _ in range(4)] == [True, True, True, False]


def test_key_check(hep_packets: list[bytes]) -> None:
    assert key_ok(with_key(hep_packets[0], b"s3cret\x00"), "s3cret")  # C agents send the NUL too
    assert not key_ok(with_key(hep_packets[0], b"other"), "s3cret")
    assert not key_ok(hep_packets[0], "s3cret")
    assert not key_ok(b"HEP3\x00\x03", "s3cret")


def test_udp_datagrams(listener: tuple[HepListener, queue.Queue[Event]], hep_packets: list[bytes]) -> None:
    lst, q = listener
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for p in hep_packets:
            s.sendto(p, ("127.0.0.1", lst.port))
        s.sendto(b"x" * 2001, ("127.0.0.1", lst.port))  # over max_size
        assert received(q, 8) == hep_packets
        wait_until(lambda: lst.received == 9)
    assert (lst.accepted, dict(lst.dropped)) == (8, {"too-large": 1})


def test_tcp_stream_framing(listener: tuple[HepListener, queue.Queue[Event]], hep_packets: list[bytes]) -> None:
    """HEP3 over TCP: packets back to back, cut anywhere by the stream, found by their length."""
    lst, q = listener
    stream = b"".join(hep_packets)
    with socket.create_connection(("127.0.0.1", lst.port)) as s:
        for cut in range(0, len(stream), 97):  # boundaries that fall inside headers and chunks
            s.sendall(stream[cut : cut + 97])
            time.sleep(0.002)
        assert received(q, 8) == hep_packets
    with socket.create_connection(("127.0.0.1", lst.port)) as s:
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        wait_until(lambda: lst.dropped["not-hep3-stream"] == 1)
        assert s.recv(10) == b""  # closed by the listener
    assert lst.accepted == 8


def test_auth_key_and_rate(hep_packets: list[bytes]) -> None:
    q: queue.Queue[Event] = queue.Queue()
    lst = HepListener("127.0.0.1", 0, q, key="k1", rate=1.0)  # a burst of 2, then 1/s
    lst.bind()
    lst.start()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(hep_packets[0], ("127.0.0.1", lst.port))  # no key
            s.sendto(with_key(hep_packets[1], b"k1"), ("127.0.0.1", lst.port))
            s.sendto(with_key(hep_packets[2], b"k1"), ("127.0.0.1", lst.port))  # over the rate
            wait_until(lambda: lst.received == 3)
    finally:
        lst.stop()
    assert received(q, 1) == [with_key(hep_packets[1], b"k1")]
    assert dict(lst.dropped) == {"bad-key": 1, "rate-limited": 1}


def test_address_in_use() -> None:
    q: queue.Queue[Event] = queue.Queue()
    first = HepListener("127.0.0.1", 0, q)
    first.bind()
    try:
        with pytest.raises(UsageError, match=r"cannot listen for HEP on 127\.0\.0\.1"):
            HepListener("127.0.0.1", first.port, q).bind()
    finally:
        first.close()
