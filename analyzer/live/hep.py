"""HEP collector: HEP v2/v3 over UDP, and HEP3 over TCP (a stream of length-framed packets).

Capture agents (Kamailio siptrace, heplify, Asterisk res_hep, FreeSWITCH) send each SIP
message they handle, TLS included, wrapped in HEP with the original addresses and time.
One thread reads every socket (a selector) and queues the packets it accepts; decoding
happens on the main thread, through :meth:`analyzer.decode.pipeline.Decoder.feed_hep`.

What it refuses, counted by reason in :attr:`HepListener.dropped`:

* ``too-large``: a datagram or a framed packet over ``max_size`` bytes;
* ``rate-limited``: a source over its packets-per-second budget (token bucket);
* ``bad-key``: ``--hep-key`` given and the packet's auth key chunk (0x000e) differs or is
  missing (HEPv2 has no key: refused too);
* ``not-hep3-stream``: a TCP connection whose bytes are not HEP3 packets (closed);
* ``too-many-connections``; ``queue-full`` (the main loop is behind).
"""

from __future__ import annotations

import contextlib
import ipaddress
import queue
import selectors
import socket
import struct
import threading
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field

from analyzer.decode.hep import parse_hep
from analyzer.errors import DecodeError, UsageError
from analyzer.live.events import Event, HepIn

DEFAULT_PORT = 9060  # Homer's customary HEP port
DEFAULT_MAX_SIZE = 65_535  # a HEP3 packet's 16-bit total length cannot say more
DEFAULT_RATE = 2_000  # packets per second per source
MAX_CONNECTIONS = 256
_HEP3_HEADER = struct.Struct("!4sH")
_RECV = 1 << 16


def parse_listen(spec: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """``PORT``, ``HOST:PORT`` or ``[V6]:PORT``; loopback unless a host is given."""
    host, sep, port = spec.rpartition(":")
    if not sep:
        host, port = default_host, spec
    host = host.removeprefix("[").removesuffix("]") or default_host
    try:
        number = int(port)
        ipaddress.ip_address(host)
    except ValueError:
        raise UsageError(f"{spec!r}: expected PORT, ADDRESS:PORT or [IPV6]:PORT (numeric address)") from None
    if not 0 <= number <= 65_535:
        raise UsageError(f"{spec!r}: port out of range")
    return host, number


@dataclass(slots=True)
class RateLimiter:
    """A token bucket per source: ``rate`` packets per second, bursts of ``burst``.

    At most ``max_sources`` buckets are kept; the one unused longest is forgotten first
    (it is full again by then, or close to it).
    """

    rate: float
    burst: float
    max_sources: int = 4096
    _buckets: OrderedDict[str, tuple[float, float]] = field(default_factory=OrderedDict)

    def allow(self, source: str, now: float) -> bool:
        tokens, last = self._buckets.pop(source, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        ok = tokens >= 1.0
        self._buckets[source] = (tokens - 1.0 if ok else tokens, now)
        if len(self._buckets) > self.max_sources:
            self._buckets.popitem(last=False)
        return ok


def key_ok(data: bytes, key: str) -> bool:
    """The packet's HEP3 auth key chunk equals ``key``."""
    try:
        hep = parse_hep(data)
    except DecodeError:
        return False
    return hep is not None and hep.auth_key == key


@dataclass(slots=True)
class _Conn:
    sock: socket.socket
    source: str
    buf: bytearray = field(default_factory=bytearray)


class HepListener:
    """UDP and TCP sockets on one address; accepted packets go to ``out`` as :class:`HepIn`."""

    def __init__(
        self,
        host: str,
        port: int,
        out: queue.Queue[Event],
        *,
        key: str | None = None,
        max_size: int = DEFAULT_MAX_SIZE,
        rate: float = DEFAULT_RATE,
    ) -> None:
        self.host, self.port = host, port
        self.out = out
        self.key = key
        self.max_size = max_size
        self.limiter = RateLimiter(rate, max(1.0, 2 * rate))
        self.received = 0
        self.accepted = 0
        self.dropped: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sel = selectors.DefaultSelector()
        self._udp: socket.socket | None = None
        self._tcp: socket.socket | None = None
        self._conns: dict[int, _Conn] = {}

    def bind(self) -> None:
        """Open both sockets (errors here are the user's: address in use, not local …)."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        try:
            udp = socket.socket(family, socket.SOCK_DGRAM)
            self._udp = udp
            udp.bind((self.host, self.port))
            # Port 0 (tests): TCP takes the port UDP was given.
            self.port = udp.getsockname()[1]
            tcp = socket.socket(family, socket.SOCK_STREAM)
            self._tcp = tcp
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            tcp.bind((self.host, self.port))
            tcp.listen(64)
        except OSError as exc:
            self.close()
            raise UsageError(f"cannot listen for HEP on {self.host}:{self.port}: {exc.strerror or exc}") from None
        for sock in (udp, tcp):
            sock.setblocking(False)
        self._sel.register(udp, selectors.EVENT_READ, "udp")
        self._sel.register(tcp, selectors.EVENT_READ, "accept")

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="hep-listener", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
        self.close()

    def close(self) -> None:
        for conn in list(self._conns.values()):
            self._drop_conn(conn)
        for sock in (self._udp, self._tcp):
            if sock is not None:
                with contextlib.suppress(KeyError, ValueError):
                    self._sel.unregister(sock)
                sock.close()
        self._udp = self._tcp = None
        self._sel.close()

    # -- the thread ------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            for key, _mask in self._sel.select(timeout=0.25):
                if key.data == "udp":
                    self._read_udp()
                elif key.data == "accept":
                    self._accept()
                else:
                    self._read_tcp(self._conns[key.fd])

    def _read_udp(self) -> None:
        assert self._udp is not None
        for _ in range(256):  # then let the other sockets have a turn
            try:
                data, addr = self._udp.recvfrom(max(_RECV, self.max_size + 1))
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.dropped["socket-error"] += 1
                return
            self._packet(data, str(addr[0]))

    def _accept(self) -> None:
        assert self._tcp is not None
        try:
            sock, addr = self._tcp.accept()
        except OSError:
            return
        if len(self._conns) >= MAX_CONNECTIONS:
            self.dropped["too-many-connections"] += 1
            sock.close()
            return
        sock.setblocking(False)
        conn = _Conn(sock, str(addr[0]))
        self._conns[sock.fileno()] = conn
        self._sel.register(sock, selectors.EVENT_READ, "conn")

    def _read_tcp(self, conn: _Conn) -> None:
        try:
            chunk = conn.sock.recv(_RECV)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._drop_conn(conn)
            return
        conn.buf += chunk
        self._frames(conn)

    def _frames(self, conn: _Conn) -> None:
        """Cut HEP3 packets out of the stream by their total length (HEP3 spec, header)."""
        buf = conn.buf
        while len(buf) >= _HEP3_HEADER.size:
            magic, total = _HEP3_HEADER.unpack_from(buf)
            if magic != b"HEP3" or total < _HEP3_HEADER.size:
                # No way to find the next packet boundary in a stream that is not HEP3.
                self.dropped["not-hep3-stream"] += 1
                self._drop_conn(conn)
                return
            if total > self.max_size:
                self.dropped["too-large"] += 1
                self._drop_conn(conn)
                return
            if len(buf) < total:
                return
            self._packet(bytes(buf[:total]), conn.source)
            del buf[:total]

    def _drop_conn(self, conn: _Conn) -> None:
        self._conns.pop(conn.sock.fileno(), None)
        with contextlib.suppress(KeyError, ValueError):
            self._sel.unregister(conn.sock)
        conn.sock.close()

    def _packet(self, data: bytes, source: str) -> None:
        self.received += 1
        if len(data) > self.max_size:
            self.dropped["too-large"] += 1
        elif not self.limiter.allow(source, time.monotonic()):
            self.dropped["rate-limited"] += 1
        elif self.key is not None and not key_ok(data, self.key):
            self.dropped["bad-key"] += 1
        else:
            try:
                self.out.put_nowait(HepIn(time.time_ns(), data, source))
                self.accepted += 1
            except queue.Full:
                self.dropped["queue-full"] += 1
