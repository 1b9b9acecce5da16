"""TCP stream reassembly for SIP (RFC 9293 sequence space, RFC 3261 §18.3 framing).

One :class:`TcpStream` per direction of a connection, created when a segment starts
with a SIP start line (or a WebSocket handshake). Segments are put in sequence
order; retransmitted bytes are dropped; out-of-order segments wait (bounded) for
the gap to fill. Complete messages come out with the frames that carried them.

Bounds (defaults below; :class:`analyzer.limits.Limits` reads them and the decoder passes
them to :class:`TcpTable`): bytes buffered per direction (past it, the buffer is given out
as junk), out-of-order segments held (past it, the gap is given up: ``incomplete``), the
SIP header block and body sizes (:mod:`analyzer.sip.framing`), the WebSocket message size,
and directions tracked (past it, the oldest is forgotten and counted in ``evicted``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from analyzer.decode.websocket import DEFAULT_MAX_MESSAGE as DEFAULT_WS_MESSAGE
from analyzer.errors import DecodeError
from analyzer.sip import framing
from analyzer.sip.parser import looks_like_sip

FlowKey = tuple[bytes, int, bytes, int]
"""(source address, source port, destination address, destination port)."""

PieceKind = Literal["message", "junk", "incomplete"]
MAX_PENDING_SEGMENTS = 256
MAX_BUFFER = 2 * 1024 * 1024
MAX_STREAMS = 65_536


class Piece(NamedTuple):
    """A framed run of stream bytes: a SIP message, or bytes that could not be framed."""

    kind: PieceKind
    data: bytes
    frames: tuple[int, ...]
    transport: str = "tcp"


def _seq_diff(a: int, b: int) -> int:
    """a - b in 32-bit sequence space, as a signed number (RFC 9293 §3.4)."""
    d = (a - b) & 0xFFFFFFFF
    return d - 0x1_0000_0000 if d & 0x8000_0000 else d


@dataclass(slots=True)
class TcpStream:
    next_seq: int
    mode: Literal["sip", "handshake", "ws"] = "sip"
    buf: bytes = b""
    base: int = 0
    """Stream offset of ``buf[0]``."""
    marks: list[tuple[int, int]] = field(default_factory=list)
    """(stream offset where a segment's bytes end, its frame) for bytes in ``buf``."""
    pending: dict[int, tuple[bytes, int]] = field(default_factory=dict)
    retransmitted: int = 0
    gaps: int = 0
    ws: object | None = None
    in_junk: bool = False
    """The last piece given out was junk and no message came since."""
    junk_bytes: int = 0
    """Junk that followed other junk: counted, not given out again (one report per run)."""
    max_buffer: int = MAX_BUFFER
    max_pending: int = MAX_PENDING_SEGMENTS
    max_header: int = framing.DEFAULT_MAX_HEADER
    max_body: int = framing.DEFAULT_MAX_BODY
    ws_message: int = DEFAULT_WS_MESSAGE

    def push(self, seq: int, data: bytes, frame: int) -> list[Piece]:
        d = _seq_diff(seq, self.next_seq)
        if d < 0:
            if -d >= len(data):
                self.retransmitted += 1
                return []
            data = data[-d:]  # keep only the new bytes of an overlapping segment
            d = 0
        if d > 0:
            return self._hold(seq, data, frame)
        self._append(data, frame)
        self._drain_pending()
        return self._extract()

    def _hold(self, seq: int, data: bytes, frame: int) -> list[Piece]:
        self.pending.setdefault(seq, (data, frame))
        if len(self.pending) <= self.max_pending:
            return []
        # The gap will not fill: give up on the missing bytes and resynchronise.
        self.gaps += 1
        pieces = self._flush("incomplete")
        self.next_seq = min(self.pending, key=lambda s: _seq_diff(s, self.next_seq))
        self._drain_pending()
        return pieces + self._extract()

    def _append(self, data: bytes, frame: int) -> None:
        if not data:
            return
        self.buf += data
        self.next_seq = (self.next_seq + len(data)) & 0xFFFFFFFF
        self.marks.append((self.base + len(self.buf), frame))

    def _drain_pending(self) -> None:
        while self.pending:
            progressed = False
            for seq in list(self.pending):
                d = _seq_diff(seq, self.next_seq)
                if d > 0:
                    continue
                data, frame = self.pending.pop(seq)
                if -d < len(data):
                    self._append(data[-d:] if d else data, frame)
                    progressed = True
            if not progressed:
                return

    def _frames_until(self, end: int) -> tuple[int, ...]:
        """Frames whose bytes fall in ``[base, base+end)``; drops marks wholly consumed."""
        frames: list[int] = []
        start = self.base
        stop = self.base + end
        keep: list[tuple[int, int]] = []
        prev_end = None
        for mark_end, frame in self.marks:
            seg_start = prev_end if prev_end is not None else start
            prev_end = mark_end
            if seg_start < stop and mark_end > start and (not frames or frames[-1] != frame):
                frames.append(frame)
            if mark_end > stop:
                keep.append((mark_end, frame))
        self.marks = keep
        return tuple(frames)

    def _consume(self, end: int, kind: PieceKind) -> Piece:
        piece = Piece(kind, self.buf[:end], self._frames_until(end), "ws" if self.mode == "ws" else "tcp")
        self.buf = self.buf[end:]
        self.base += end
        return piece

    def _extract(self) -> list[Piece]:
        if len(self.buf) > self.max_buffer:
            return [self._consume(len(self.buf), "junk")]
        if self.mode == "sip":
            return self._extract_sip()
        if self.mode == "handshake":
            return self._extract_handshake()
        return self._extract_ws()

    def _extract_sip(self) -> list[Piece]:
        pieces: list[Piece] = []
        while self.buf:
            pos = framing.skip_keepalives(self.buf, 0)
            if pos:
                self._consume(pos, "junk")
                continue
            verdict, end = framing.frame_message(self.buf, 0, max_header=self.max_header, max_body=self.max_body)
            if verdict == framing.NEED:
                break
            piece = self._consume(end, "message" if verdict == framing.MESSAGE else "junk")
            if piece.kind == "junk" and self.in_junk:
                # A stream that never frames (endless headers, binary) would otherwise give
                # one report per segment, without bound: a run of junk is reported once.
                self.junk_bytes += len(piece.data)
                continue
            self.in_junk = piece.kind == "junk"
            pieces.append(piece)
        return pieces

    def _extract_handshake(self) -> list[Piece]:
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return []
        self._consume(end + 4, "junk")  # the HTTP upgrade itself is not SIP
        self.mode = "ws"
        return self._extract_ws()

    def _extract_ws(self) -> list[Piece]:
        from analyzer.decode.websocket import WebSocketStream

        if self.ws is None:
            self.ws = WebSocketStream(self.ws_message)
        assert isinstance(self.ws, WebSocketStream)
        data = self.buf
        frames = self._frames_until(len(data))
        self.buf, self.base = b"", self.base + len(data)
        pieces: list[Piece] = []
        while True:
            try:
                payloads = self.ws.feed(data)
            except DecodeError as exc:
                if exc.reason != "ws-too-large":
                    self.mode = "sip"  # not WebSocket after all: treat what follows as plain SIP
                    return [*pieces, Piece("junk", data, frames, "ws")]
                # A message over the ws_message limit is dropped and reported; its length was
                # known, so the framing holds and the connection goes on as WebSocket.
                pieces.append(Piece("junk", str(exc).encode(), frames, "ws"))
                data = b""
                continue
            return [*pieces, *(Piece("message", p, frames[-1:], "ws") for p in payloads)]

    def _flush(self, kind: PieceKind) -> list[Piece]:
        if not self.buf.strip(b"\r\n"):
            self.buf, self.marks = b"", []
            return []
        return [self._consume(len(self.buf), kind)]

    def close(self) -> list[Piece]:
        """End of the connection or of the capture: whatever is left is incomplete."""
        return self._flush("incomplete")


@dataclass(slots=True)
class TcpTable:
    """Streams by direction; a direction is tracked once SIP (or WebSocket) is seen on it."""

    max_streams: int = MAX_STREAMS
    max_buffer: int = MAX_BUFFER
    """Bytes buffered per direction."""
    max_pending: int = MAX_PENDING_SEGMENTS
    """Out-of-order segments held per direction."""
    max_header: int = framing.DEFAULT_MAX_HEADER
    max_body: int = framing.DEFAULT_MAX_BODY
    ws_message: int = DEFAULT_WS_MESSAGE
    """Largest WebSocket message (all its frames together)."""
    streams: dict[FlowKey, TcpStream] = field(default_factory=dict)
    evicted: int = 0
    retransmitted: int = 0
    junk_bytes: int = 0
    """Bytes of junk runs past their first report (see ``TcpStream.junk_bytes``)."""

    def segment(self, key: FlowKey, seq: int, flags: int, data: bytes, frame: int) -> list[Piece]:
        stream = self.streams.get(key)
        pieces: list[Piece] = []
        if stream is None and data:
            stream = self._start(key, seq, data)
        if stream is not None:
            if data:
                pieces = stream.push(seq, data, frame)
            if flags & 0x05:  # FIN or RST: the direction is over
                pieces += stream.close()
                self.retransmitted += stream.retransmitted
                self.junk_bytes += stream.junk_bytes
                del self.streams[key]
        return pieces

    def _start(self, key: FlowKey, seq: int, data: bytes) -> TcpStream | None:
        from analyzer.decode.websocket import is_upgrade_request, is_upgrade_response

        if looks_like_sip(data):
            mode: Literal["sip", "handshake"] = "sip"
        elif is_upgrade_request(data) or is_upgrade_response(data):
            mode = "handshake"
        else:
            return None
        if len(self.streams) >= self.max_streams:
            oldest = next(iter(self.streams))
            del self.streams[oldest]
            self.evicted += 1
        stream = self.streams[key] = TcpStream(
            next_seq=seq,
            mode=mode,
            max_buffer=self.max_buffer,
            max_pending=self.max_pending,
            max_header=self.max_header,
            max_body=self.max_body,
            ws_message=self.ws_message,
        )
        return stream

    def close_all(self) -> list[Piece]:
        pieces: list[Piece] = []
        for stream in self.streams.values():
            pieces += stream.close()
            self.retransmitted += stream.retransmitted
            self.junk_bytes += stream.junk_bytes
        self.streams.clear()
        return pieces
