"""SIP message parser: bytes to :class:`SipMessage`, or :class:`SipParseError`.

Contract (held by a property test): for any bytes, :func:`parse_message` returns a
message or raises ``SipParseError``; nothing else. Anything with a valid start line is
a message, as it is for Wireshark; what is wrong with it beyond that is recorded in
``SipMessage.defects`` so that later layers can report it.
"""

from __future__ import annotations

import re

from analyzer.errors import SipParseError
from analyzer.sip.headers import Headers, decode_text
from analyzer.sip.message import Origin, SipMessage, new_tuple

# RFC 3261 §25.1: Method = token; Request-Line = Method SP Request-URI SP SIP-Version CRLF.
# SIP-Version is case-insensitive ("SIP/2.0" by convention). Like Wireshark, a line may
# end in CRLF, LF or a bare CR, and a NUL byte in the start line means it is not SIP.
_REQUEST_LINE = re.compile(rb"([A-Za-z0-9!%*_+`'~.\-]+) +([^ \r\n\0]+) +[Ss][Ii][Pp]/2\.0 *(?:\r\n|\r|\n|\Z)")
# RFC 3261 §25.1: Status-Line = SIP-Version SP Status-Code SP Reason-Phrase CRLF.
_STATUS_LINE = re.compile(rb"[Ss][Ii][Pp]/2\.0 +([1-9][0-9][0-9])(?: ([^\r\n\0]*))?(?:\r\n|\r|\n|\Z)")
# A start line that begins right but is broken: looks like SIP, cannot be parsed.
_STATUS_START = re.compile(rb"[Ss][Ii][Pp]/2\.0 ")
_REQUEST_START = re.compile(rb"[A-Z]{3,16} [^\r\n]{0,1024}SIP/2\.0")

_FIRST_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


def start_line_match(data: bytes) -> re.Match[bytes] | None:
    """The request- or status-line match at the start of ``data``, or None."""
    if not data or data[0] not in _FIRST_BYTES:
        return None
    if data[0] in (0x53, 0x73) and data[1:4].upper() == b"IP/":
        return _STATUS_LINE.match(data)
    return _REQUEST_LINE.match(data)


def looks_like_sip(data: bytes) -> bool:
    """True when ``data`` starts with a SIP request or status line (the SIP heuristic)."""
    return start_line_match(data) is not None


def head_end(data: bytes, start: int = 0) -> tuple[int, int]:
    """Offsets of the end of the header block and of the start of the body.

    Returns (-1, -1) when the blank line that ends the headers is missing.
    """
    crlf = data.find(b"\r\n\r\n", start)
    lf = data.find(b"\n\n", start, crlf if crlf >= 0 else len(data))
    if crlf >= 0 and (lf < 0 or crlf < lf):
        return crlf, crlf + 4
    if lf >= 0:
        return lf, lf + 2
    return -1, -1


def _line(name: bytes) -> re.Pattern[bytes]:
    """A header line named ``name`` (any case, blanks before the colon): its value."""
    return re.compile(rb"\n" + re.escape(name) + rb"[ \t]*:([^\n]*)", re.IGNORECASE)


# The eager header scans: the full name first, then the compact form (RFC 3261 §7.3.3).
_CALL_ID_LINES = (_line(b"call-id"), _line(b"i"))
_CSEQ_LINES = (_line(b"cseq"),)
_CONTENT_LENGTH_LINES = (_line(b"content-length"), _line(b"l"))


def first_value(data: bytes, start: int, end: int, lines: tuple[re.Pattern[bytes], ...]) -> bytes | None:
    """Value of the first header found by ``lines`` in ``data[start:end]``, tried in turn,
    with surrounding blanks removed; None when there is none. A header is found only after
    a newline: the block starts with the one that ends the start line."""
    for line in lines:
        m = line.search(data, start, end)
        if m is not None:
            return m.group(1).strip()
    return None


# Any Content-Length past this is read as this: more than any transport can carry, and
# small enough that int() never meets Python's limit on long digit strings (4300 digits).
HUGE_LENGTH = 1 << 62


def length_value(value: bytes | None) -> int | None:
    """A Content-Length value (RFC 3261 §20.14: 1*DIGIT) as a number; None when not digits.

    Leading zeros are allowed by the grammar; a number of more than 18 digits is taken
    as :data:`HUGE_LENGTH` rather than converted.
    """
    if value is None or not value.isdigit():
        return None
    digits = value.lstrip(b"0")
    return int(digits or b"0") if len(digits) <= 18 else HUGE_LENGTH


def content_length(data: bytes, end: int) -> int | None:
    """Content-Length from the header block ``data[:end]``, None when absent or not a number."""
    start = data.find(b"\n")
    if start < 0 or start >= end:
        return None
    return length_value(first_value(data, start, end, _CONTENT_LENGTH_LINES))


def _cseq(value: bytes) -> tuple[int, str, bool]:
    """(number, method, valid) from a CSeq value (RFC 3261 §20.16)."""
    num, _, method = value.strip().partition(b" ")
    method = method.strip()
    if num.isdigit() and len(num) <= 10 and method:
        return int(num), decode_text(method), True
    return -1, decode_text(method), False


def call_id_of(data: bytes) -> str | None:
    """The Call-ID :func:`parse_message` would give ``data`` ("" when it has none), read
    without parsing the rest; None when ``data`` has no SIP start line."""
    start = start_line_match(data)
    if start is None:
        return None
    line_end = start.end()
    hend, _ = head_end(data, max(0, line_end - 2))
    raw = first_value(data, line_end - 1, hend if hend >= 0 else len(data), _CALL_ID_LINES)
    return decode_text(raw) if raw else ""


def parse_message(data: bytes, origin: Origin) -> SipMessage:
    """Parse one complete SIP message (framing already done by the caller)."""
    start = start_line_match(data)
    if start is None:
        if _STATUS_START.match(data):
            raise SipParseError("bad-status-line", decode_text(data[:40]))
        if _REQUEST_START.match(data):
            raise SipParseError("bad-request-line", decode_text(data[:40]))
        raise SipParseError("bad-start-line", decode_text(data[:40]))
    defects: list[str] = []  # rarely filled
    line_end = start.end()
    hend, bstart = head_end(data, max(0, line_end - 2))
    if hend < 0:
        hend = bstart = len(data)
        defects.append("no-blank-line")
    # the header scans need the newline that ends the start line in front of them
    base = line_end - 1
    raw_cid = first_value(data, base, hend, _CALL_ID_LINES)
    call_id = decode_text(raw_cid) if raw_cid else ""
    if not call_id:
        defects.append("no-call-id")
    raw_cseq = first_value(data, base, hend, _CSEQ_LINES)
    cseq, cseq_method, valid = _cseq(raw_cseq) if raw_cseq is not None else (-1, "", False)
    if not valid:
        defects.append("bad-cseq" if raw_cseq is not None else "no-cseq")
    body = data[bstart:]
    clen = length_value(first_value(data, base, hend, _CONTENT_LENGTH_LINES))
    if clen is not None:
        if clen < len(body):
            body = body[:clen]  # RFC 3261 §18.3: extra octets after the body are discarded
        elif clen > len(body):
            defects.append("content-length-mismatch")
    if start.re is _STATUS_LINE:
        method, uri, status = "", "", int(start.group(1))
        reason = decode_text((start.group(2) or b"").strip())
    else:
        method, uri, status, reason = decode_text(start.group(1)), decode_text(start.group(2)), 0, ""
    msg: SipMessage = new_tuple(  # SipMessage(...), without its constructor's frame
        SipMessage,
        (
            origin,
            method,
            status,
            reason,
            uri,
            call_id,
            cseq,
            cseq_method,
            Headers(data, line_end, hend),
            body,
            data,
            tuple(defects) if defects else (),
        ),
    )
    return msg
