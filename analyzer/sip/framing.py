"""Framing SIP messages out of a byte stream (TCP, TLS, SCTP-less streams).

RFC 3261 §18.3: on a stream transport the Content-Length header gives the body
size and must be present. Keep-alives (RFC 5626 §3.5.1: CRLFCRLF ping, CRLF pong)
sit between messages. Like h11, "need more bytes" (:data:`NEED`) is not "invalid"
(:data:`JUNK`).
"""

from __future__ import annotations

import re
from typing import Final, Literal

from analyzer.sip.parser import content_length, head_end, start_line_match

NEED: Final = "need"
MESSAGE: Final = "message"
JUNK: Final = "junk"
Verdict = Literal["need", "message", "junk"]

DEFAULT_MAX_HEADER = 64 * 1024
DEFAULT_MAX_BODY = 1024 * 1024

# Where a message may start after junk: a line beginning with a token then SP, or SIP/2.0.
_RESYNC = re.compile(rb"\n(?=SIP/2\.0 [1-9]|[A-Z][A-Za-z]+ [^ \r\n]+ SIP/2\.0\r?\n)")


def skip_keepalives(buf: bytes | bytearray, pos: int) -> int:
    """Offset of the first byte after any CR/LF keep-alive octets at ``pos``."""
    n = len(buf)
    while pos < n and buf[pos] in (0x0D, 0x0A):
        pos += 1
    return pos


def frame_message(
    buf: bytes,
    pos: int,
    *,
    max_header: int = DEFAULT_MAX_HEADER,
    max_body: int = DEFAULT_MAX_BODY,
) -> tuple[Verdict, int]:
    """Look for one message at ``buf[pos:]`` (keep-alives already skipped).

    Returns (MESSAGE, end) for a whole message ``buf[pos:end]``; (NEED, pos) when more
    bytes are needed; (JUNK, next) when ``buf[pos:next]`` is not SIP and must be
    skipped (``next`` is where a message may start, or ``len(buf)``).
    """
    first_line_end = buf.find(b"\n", pos)
    if first_line_end < 0:
        if len(buf) - pos > max_header:
            return JUNK, len(buf)
        return NEED, pos
    if start_line_match(buf[pos : first_line_end + 1]) is None:
        return JUNK, resync(buf, pos)
    hend, bstart = head_end(buf, first_line_end)
    if hend < 0:
        if len(buf) - pos > max_header:
            return JUNK, resync(buf, first_line_end)
        return NEED, pos
    clen = content_length(buf[pos:hend], hend - pos) or 0
    if clen > max_body:
        return JUNK, resync(buf, hend)
    end = bstart + clen
    if end > len(buf):
        return NEED, pos
    return MESSAGE, end


def resync(buf: bytes, pos: int) -> int:
    """Offset of the next line that can start a SIP message after ``pos``.

    Without one, the offset of the last line when it is still open (no newline yet): the
    end of the buffer may have cut a start line in two, and its rest is still to come.
    Else ``len(buf)``. Always past ``pos`` when a newline follows ``pos``.
    """
    m = _RESYNC.search(buf, pos)
    if m:
        return m.end()
    last = buf.rfind(b"\n", pos)
    return last + 1 if last >= 0 else len(buf)
