"""WebSocket framing (RFC 6455 §5) for SIP over WebSocket (RFC 7118), sans-I/O.

The TCP reassembler hands one direction of a WebSocket connection, after the HTTP
handshake, to a :class:`WebSocketStream`; it gives back whole message payloads, each
one SIP message (RFC 7118 §5.2: "each SIP message MUST be carried within a single
WebSocket message"). The two handshake checks let the caller tell that a TCP
connection is a WebSocket one and where its stream starts.

Not handled: permessage-deflate (RFC 7692), refused with ``ws-compressed``; text
messages are not checked to be UTF-8 (the SIP parser judges the bytes).
"""

from __future__ import annotations

import re
import struct

from analyzer.errors import DecodeError

__all__ = [
    "DEFAULT_MAX_MESSAGE",
    "WebSocketStream",
    "is_upgrade_request",
    "is_upgrade_response",
]

DEFAULT_MAX_MESSAGE = 1 << 20
"""Largest message (all its frames together) accepted, in bytes."""

# How much of a handshake is looked at: real ones are well under 4 KiB.
_HANDSHAKE_SCAN = 16 * 1024
# RFC 6455 §4.2.1 item 3 / §4.2.2 item 5: "Upgrade" header with the token "websocket"
# (header names and the token are case-insensitive).
_UPGRADE_WEBSOCKET = re.compile(rb"\r?\nupgrade[ \t]*:[^\r\n]*\bwebsocket\b", re.IGNORECASE)
# RFC 9112 §4: status line "HTTP/1.1 101 ..."; the version is case-sensitive.
_STATUS_101 = re.compile(rb"HTTP/1\.1 101(?:[ \r\n]|$)")

_FIN = 0x80
_RSV1 = 0x40
_RSV23 = 0x30
_OPCODE = 0x0F
_MASK = 0x80
_LEN7 = 0x7F

_OP_CONTINUATION = 0x0
_OP_TEXT = 0x1
_OP_BINARY = 0x2
_OP_CLOSE = 0x8
_OP_PING = 0x9
_OP_PONG = 0xA
_CONTROL_OPS = frozenset({_OP_CLOSE, _OP_PING, _OP_PONG})

_U16 = struct.Struct("!H")
_U64 = struct.Struct("!Q")


def is_upgrade_request(data: bytes) -> bool:
    """True for an HTTP GET that asks to switch to WebSocket (RFC 6455 §4.1)."""
    if not data.startswith(b"GET "):
        return False
    return _UPGRADE_WEBSOCKET.search(_head(data)) is not None


def is_upgrade_response(data: bytes) -> bool:
    """True for the server's ``HTTP/1.1 101`` switching to WebSocket (RFC 6455 §4.2.2)."""
    if _STATUS_101.match(data) is None:
        return False
    return _UPGRADE_WEBSOCKET.search(_head(data)) is not None


def _head(data: bytes) -> bytes:
    """The header block of an HTTP message (all of ``data`` when its end is not there yet)."""
    head = data[:_HANDSHAKE_SCAN]
    end = head.find(b"\r\n\r\n")
    return head if end < 0 else head[:end]


class WebSocketStream:
    """One direction of a WebSocket connection: bytes in, message payloads out.

    Feed it the TCP payload in order; it keeps a partial frame until the rest arrives.
    A frame or message over ``max_message`` raises ``ws-too-large``; its bytes (and the
    rest of its message) are skipped and the stream goes on with the next frame at the
    next :meth:`feed` call (``feed(b"")`` to go on at once). Any other framing error
    (``ws-bad-frame``, ``ws-compressed``) breaks the stream: the error is kept in
    :attr:`error` and later data is ignored, since frame boundaries can no longer be
    found. Messages completed in a :meth:`feed` call before it raised are returned by
    the next call.
    """

    __slots__ = (
        "_buf",
        "_discarding",
        "_parts",
        "_parts_size",
        "_ready",
        "_skip",
        "control_frames",
        "error",
        "max_message",
    )

    def __init__(self, max_message: int = DEFAULT_MAX_MESSAGE) -> None:
        self.max_message = max_message
        self.control_frames = 0
        """Ping, pong and close frames seen (dropped)."""
        self.error: DecodeError | None = None
        """The error that broke the stream, if any."""
        self._buf = bytearray()
        self._parts: list[bytes] | None = None
        """Payloads of a fragmented message so far; None when no message is open."""
        self._parts_size = 0
        self._skip = 0
        """Bytes of an oversized frame still to be thrown away."""
        self._discarding = False
        """The open message is oversized: drop its continuation frames up to FIN."""
        self._ready: list[bytes] = []

    def feed(self, data: bytes) -> list[bytes]:
        """Add bytes of the stream; return the payloads of the messages they complete."""
        out, self._ready = self._ready, []
        if self.error is not None:
            return out
        self._buf += data
        try:
            self._drain(out)
        except DecodeError as exc:
            self._ready = out
            if exc.reason != "ws-too-large":
                self.error = exc
                self._buf.clear()
            raise
        return out

    def _drain(self, out: list[bytes]) -> None:
        pos = 0
        try:
            while True:
                if self._skip:
                    dropped = min(self._skip, len(self._buf) - pos)
                    self._skip -= dropped
                    pos += dropped
                    if self._skip:
                        return
                header = _parse_header(self._buf, pos)
                if header is None:
                    return
                fin, opcode, masked, length, header_len = header
                self._check_frame(fin, opcode, length)
                if length > self.max_message:
                    # Known length: the frame can be stepped over without losing the framing.
                    pos += header_len
                    self._skip = length
                    if opcode not in _CONTROL_OPS:
                        self._close_message(discard_rest=not fin)
                    raise DecodeError("ws-too-large", f"frame of {length} bytes (max {self.max_message})")
                end = pos + header_len + length
                if len(self._buf) < end:
                    return
                payload = self._payload(pos + header_len, end, masked)
                pos = end
                message = self._on_frame(fin, opcode, payload)
                if message is not None:
                    out.append(message)
        finally:
            del self._buf[:pos]

    def _payload(self, start: int, end: int, masked: bool) -> bytes:
        if masked:
            # The 4-byte masking key ends the header, just before the payload.
            return _unmask(bytes(self._buf[start - 4 : start]), bytes(self._buf[start:end]))
        return bytes(self._buf[start:end])

    def _close_message(self, discard_rest: bool) -> None:
        """Forget the open message; with ``discard_rest`` drop its continuations up to FIN."""
        self._parts = None
        self._parts_size = 0
        self._discarding = discard_rest

    def _check_frame(self, fin: bool, opcode: int, length: int) -> None:
        if opcode in _CONTROL_OPS:
            # RFC 6455 §5.5: control frames are never fragmented and carry at most 125 bytes.
            if not fin or length > 125:
                raise DecodeError("ws-bad-frame", f"control frame 0x{opcode:x}, fin={fin}, {length} bytes")
        elif opcode == _OP_CONTINUATION:
            # RFC 6455 §5.4: a continuation frame only follows a non-final data frame.
            if self._parts is None and not self._discarding:
                raise DecodeError("ws-bad-frame", "continuation frame without a message")
        elif opcode in (_OP_TEXT, _OP_BINARY):
            # RFC 6455 §5.4: fragments of one message are not interleaved with another.
            if self._parts is not None or self._discarding:
                raise DecodeError("ws-bad-frame", "new message before the previous one ended")
        else:
            # RFC 6455 §5.2: reserved opcodes fail the connection.
            raise DecodeError("ws-bad-frame", f"reserved opcode 0x{opcode:x}")

    def _on_frame(self, fin: bool, opcode: int, payload: bytes) -> bytes | None:
        """Fold one complete frame into the message state; the message when it completes."""
        if opcode in _CONTROL_OPS:
            self.control_frames += 1
            return None
        if self._discarding:
            self._discarding = not fin
            return None
        parts = self._parts if self._parts is not None else []
        size = self._parts_size + len(payload)
        if size > self.max_message:
            self._close_message(discard_rest=not fin)
            raise DecodeError("ws-too-large", f"message of over {self.max_message} bytes")
        parts.append(payload)
        if not fin:
            self._parts = parts
            self._parts_size = size
            return None
        self._close_message(discard_rest=False)
        return parts[0] if len(parts) == 1 else b"".join(parts)


def _parse_header(buf: bytearray, pos: int) -> tuple[bool, int, bool, int, int] | None:
    """(fin, opcode, masked, payload length, header length) at ``pos``; None if incomplete.

    RFC 6455 §5.2: 7-bit length, or 126 + 16-bit, or 127 + 64-bit (most significant bit 0),
    then a 4-byte masking key when MASK is set.
    """
    avail = len(buf) - pos
    if avail < 2:
        return None
    b0, b1 = buf[pos], buf[pos + 1]
    if b0 & _RSV1:
        raise DecodeError("ws-compressed", "RSV1 set (permessage-deflate is not supported)")
    if b0 & _RSV23:
        raise DecodeError("ws-bad-frame", "RSV2/RSV3 set without a negotiated extension")
    masked = bool(b1 & _MASK)
    length = b1 & _LEN7
    header_len = 2
    if length == 126:
        header_len = 4
        if avail < header_len:
            return None
        length = _U16.unpack_from(buf, pos + 2)[0]
    elif length == 127:
        header_len = 10
        if avail < header_len:
            return None
        length = _U64.unpack_from(buf, pos + 2)[0]
        if length >> 63:
            raise DecodeError("ws-bad-frame", "64-bit length with the most significant bit set")
    if masked:
        header_len += 4
        if avail < header_len:
            return None
    return bool(b0 & _FIN), b0 & _OPCODE, masked, length, header_len


def _unmask(key: bytes, payload: bytes) -> bytes:
    """RFC 6455 §5.3: octet i is XORed with key[i % 4]; done as one big-integer XOR."""
    n = len(payload)
    if n == 0:
        return b""
    mask = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(mask, "big")).to_bytes(n, "big")
