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
from analyzer.sip.message import Origin, SipMessage

# RFC 3261 §25.1: Method = token; Request-Line = Method SP Request-URI SP SIP-Version CRLF.
# SIP-Version is case-insensitive ("SIP/2.0" by convention). Like Wireshark, a line may
# end in CRLF, LF or a bare CR, and a NUL byte in the start line means it is not SIP.
_REQUEST_LINE = re.compile(
    rb"([A-Za-z0-9!%*_+`'~.\-]+) +([^ \r\n\0]+) +[Ss][Ii][Pp]/2\.0 *(?:\r\n|\r|\n|\Z)"
)
# RFC 3261 §25.1: Status-Line = SIP-Version SP Status-Code SP Reason-Phrase CRLF.
_STATUS_LINE = re.compile(rb"[Ss][Ii][Pp]/2\.0 +([1-9][0-9][0-9])(?: ([^\r\n\0]*))?(?:\r\n|\r|\n|\Z)")
# A start line that begins right but is broken: looks like SIP, cannot be parsed.
_STATUS_START = re.compile(rb"[Ss][Ii][Pp]/2\.0 ")
_REQUEST_START = re.compile(rb"[A-Z]{3,16} [^\r\n]{0,1024}SIP/2\.0")

# Eager header scans on the raw block (compact forms included, RFC 3261 §7.3.3).
_CALL_ID = re.compile(rb"\n(?:[Cc][Aa][Ll][Ll]-[Ii][Dd]|[Ii])[ \t]*:[ \t]*([^\r\n]*)")
_CSEQ = re.compile(rb"\n[Cc][Ss][Ee][Qq][ \t]*:[ \t]*([^\r\n]*)")
_CONTENT_LENGTH = re.compile(rb"\n(?:[Cc][Oo][Nn][Tt][Ee][Nn][Tt]-[Ll][Ee][Nn][Gg][Tt][Hh]|[Ll])[ \t]*:[ \t]*([0-9]+)")

_FIRST_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


def start_line_match(data: bytes) -> re.Match[bytes] | None:
    """The request- or status-line match at the start of ``data``, or None."""
    if not data or data[0] not in _FIRST_BYTES:
        return None
    return _STATUS_LINE.match(data) or _REQUEST_LINE.match(data)


def looks_like_sip(data: bytes) -> bool:
    """True when ``data`` starts with a SIP request or status line (the SIP heuristic)."""
    return start_line_match(data) is not None


def head_end(data: bytes, start: int = 0) -> tuple[int, int]:
    """Offsets of the end of the header block and of the start of the body.

    Returns (-1, -1) when the blank line that ends the headers is missing.
    """
    crlf = data.find(b"\r\n\r\n", start)
    lf = data.find(b"\n\n", start)
    if crlf >= 0 and (lf < 0 or crlf < lf):
        return crlf, crlf + 4
    if lf >= 0:
        return lf, lf + 2
    return -1, -1


def content_length(data: bytes, end: int) -> int | None:
    """Content-Length from the header block ``data[:end]``, None when absent."""
    m = _CONTENT_LENGTH.search(data, 0, end + 1)
    return int(m.group(1)) if m else None


def _cseq(value: bytes) -> tuple[int, str, bool]:
    """(number, method, valid) from a CSeq value (RFC 3261 §20.16)."""
    num, _, method = value.strip().partition(b" ")
    method = method.strip()
    if num.isdigit() and len(num) <= 10 and method:
        return int(num), decode_text(method), True
    return -1, decode_text(method), False


def parse_message(data: bytes, origin: Origin) -> SipMessage:
    """Parse one complete SIP message (framing already done by the caller)."""
    start = start_line_match(data)
    if start is None:
        if _STATUS_START.match(data):
            raise SipParseError("bad-status-line", decode_text(data[:40]))
        if _REQUEST_START.match(data):
            raise SipParseError("bad-request-line", decode_text(data[:40]))
        raise SipParseError("bad-start-line", decode_text(data[:40]))
    defects: list[str] = []
    line_end = start.end()
    hend, bstart = head_end(data, max(0, line_end - 2))
    if hend < 0:
        hend = bstart = len(data)
        defects.append("no-blank-line")
    # the header scans need the newline that ends the start line in front of them
    mcid = _CALL_ID.search(data, line_end - 1, hend + 1)
    call_id = decode_text(mcid.group(1).strip()) if mcid else ""
    if not call_id:
        defects.append("no-call-id")
    mcseq = _CSEQ.search(data, line_end - 1, hend + 1)
    cseq, cseq_method, valid = _cseq(mcseq.group(1)) if mcseq else (-1, "", False)
    if not valid:
        defects.append("bad-cseq" if mcseq else "no-cseq")
    body = data[bstart:]
    clen = content_length(data, hend)
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
    return SipMessage(
        origin=origin,
        method=method,
        status=status,
        reason=reason,
        uri=uri,
        call_id=call_id,
        cseq=cseq,
        cseq_method=cseq_method,
        headers=Headers(data[line_end:hend]),
        body=body,
        raw=data,
        defects=tuple(defects),
    )
