"""The SIP message object every later layer works on.

A message is built once by :func:`analyzer.sip.parser.parse_message` from bytes plus
where they came from. The start line, Call-ID and CSeq are read eagerly (every layer
needs them); every other header is read on first use through :class:`Headers`.

Both types are immutable ``NamedTuple``s rather than frozen dataclasses: one of each is
built per SIP message, and a frozen dataclass costs five times as much to build
(measured: 5.2 µs against 1.0 µs for twelve fields).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

from analyzer.sip import fields
from analyzer.sip.headers import Headers

if TYPE_CHECKING:
    from analyzer.sip.fields import AuthInfo, NameAddr, ReasonInfo, Via, WarningInfo
    from analyzer.sip.sdp import Sdp


class Origin(NamedTuple):
    """Where a message was seen: the frames that carried it and the addresses."""

    frame: int
    """Number (from 1, as Wireshark counts) of the frame that completed the message."""
    frames: tuple[int, ...]
    """Every frame that carried a part of it (fragments, TCP segments), in order."""
    ts_ns: int
    """Capture time of ``frame``, nanoseconds since the Unix epoch."""
    src_ip: str
    src_port: int
    dst_ip: str
    dst_port: int
    transport: str
    """``udp``, ``tcp``, ``sctp``, ``ws`` (SIP over WebSocket), ``tls`` (decrypted by tshark)."""
    encap: str = ""
    """Outer layers worth naming, ``/``-separated (``vlan``, ``sll``, ``gre``, ``gtp``, ``hep3`` …)."""


class SipMessage(NamedTuple):
    """One SIP request or response as seen on the wire."""

    origin: Origin
    method: str
    """Request method as written (``INVITE``); empty for a response."""
    status: int
    """Status code; 0 for a request."""
    reason: str
    """Reason phrase of a response; empty for a request."""
    uri: str
    """Request-URI; empty for a response."""
    call_id: str
    """Call-ID value, empty when the header is missing."""
    cseq: int
    """CSeq sequence number, -1 when missing or not a number."""
    cseq_method: str
    """CSeq method, empty when missing."""
    headers: Headers
    body: bytes
    raw: bytes
    """The whole message as it was on the wire (after reassembly)."""
    defects: tuple[str, ...] = ()
    """Things wrong with it that did not stop parsing (``no-call-id``, ``content-length-mismatch`` …)."""

    def __repr__(self) -> str:
        return f"<SipMessage frame={self.origin.frame} {self.label!r} call_id={self.call_id!r}>"

    # -- convenience views -------------------------------------------------------------
    @property
    def is_request(self) -> bool:
        return self.status == 0

    @property
    def frame(self) -> int:
        return self.origin.frame

    @property
    def ts_ns(self) -> int:
        return self.origin.ts_ns

    @property
    def label(self) -> str:
        """``INVITE`` for a request, ``488 Not Acceptable Here`` for a response."""
        return self.method if self.status == 0 else f"{self.status} {self.reason}".rstrip()

    # -- parsed on demand (see analyzer.sip.fields) -------------------------------------
    @property
    def from_(self) -> NameAddr | None:
        return self.headers.memo("@from", _from, self.headers)

    @property
    def to(self) -> NameAddr | None:
        return self.headers.memo("@to", _to, self.headers)

    @property
    def from_tag(self) -> str:
        return self.headers.memo("@fromtag", _from_tag, self.headers)

    @property
    def to_tag(self) -> str:
        return self.headers.memo("@totag", _to_tag, self.headers)

    @property
    def vias(self) -> tuple[Via, ...]:
        return self.headers.memo("@via", _vias, self.headers)

    @property
    def contact(self) -> NameAddr | None:
        return self.headers.memo("@contact", _contact, self.headers)

    @property
    def reasons(self) -> tuple[ReasonInfo, ...]:
        return fields.reasons(self.headers.get_all("reason"))

    @property
    def auth(self) -> AuthInfo | None:
        """The first challenge or credentials (digest response never kept)."""
        for name in ("www-authenticate", "proxy-authenticate", "authorization", "proxy-authorization"):
            value = self.headers.get(name)
            if value is not None:
                return fields.auth(name, value)
        return None

    @property
    def warnings(self) -> tuple[WarningInfo, ...]:
        return fields.warnings(self.headers.get_all("warning"))

    @property
    def user_agent(self) -> str:
        """User-Agent of a request, Server of a response (either when only one is present)."""
        return self.headers.get("user-agent") or self.headers.get("server") or ""

    @property
    def content_type(self) -> str:
        return (self.headers.get("content-type") or "").split(";", 1)[0].strip().lower()

    def may_carry(self, name: bytes) -> bool:
        """False when this message surely has no header ``name`` (lower case, full form): most
        messages lack the rarer ones, and a look at the bytes costs less than a lookup that
        finds nothing. (Names match case-insensitively, and only the Kelvin sign lower-cases
        to a lone ASCII letter, k: a name without k is in the lower-cased bytes or nowhere.)"""
        return self.raw.lower().find(name) >= 0  # find: see analyzer.diagnose.security.scanner_tool

    def int_header(self, name: str) -> int | None:
        """Expires, Min-Expires, Max-Forwards, Retry-After … as a number (leading integer)."""
        return fields.parse_int(self.headers.get(name))

    @property
    def sdp(self) -> Sdp | None:
        from analyzer.sip.sdp import parse_sdp

        ctype = (self.headers.get("content-type") or "").lower()
        if not self.body or "sdp" not in ctype:
            return None
        return self.headers.memo("@sdp", parse_sdp, self.body)


# What the properties above parse and memoise, of the headers.
def _from(h: Headers) -> NameAddr | None:
    return fields.name_addr(h.get("from"))


def _to(h: Headers) -> NameAddr | None:
    return fields.name_addr(h.get("to"))


def _vias(h: Headers) -> tuple[Via, ...]:
    return fields.vias(h.get_all("via"))


def _contact(h: Headers) -> NameAddr | None:
    return fields.name_addr(h.get("contact"))


def _from_tag(h: Headers) -> str:
    return fields.header_tag(h.get("from"))


def _to_tag(h: Headers) -> str:
    return fields.header_tag(h.get("to"))


Packed = tuple[Any, ...]
"""A message as plain values (:func:`packed`): what one process hands another (``--jobs``)."""

_ORIGIN_FIELDS = len(Origin._fields)
PACKED_TS = Origin._fields.index("ts_ns")
"""Where a packed message holds its time."""
PACKED_STATUS = _ORIGIN_FIELDS + 1
"""Where a packed message holds its status (0 for a request)."""


_KEPT = slice(1, 8)
"""The fields from ``method`` to ``cseq_method``, kept as they are."""


def packed(msg: SipMessage) -> Packed:
    """``msg`` as a tuple of plain values that pickles in a fifth of the time a parse takes
    (about 2 µs, and 3 µs to make it a message again with :func:`unpacked`): the header
    block and the body are offsets into the raw bytes when they lie there, as the parser
    leaves them. What has been looked up in the headers is not kept: it is looked up again.
    Made of the origin and a slice of the message (both tuples): 1.1 µs where naming each
    field took 1.4."""
    data, start, end = msg.headers.block()
    raw, body = msg.raw, msg.body
    values: Any = msg  # a tuple: its fields sliced at once
    kept: Packed = msg.origin + values[_KEPT]
    return kept + (  # noqa: RUF005  (concatenated: unpacking builds a list first, and takes longer)
        None if data is raw else data,
        start,
        end,
        len(body) if raw.endswith(body) else body,
        raw,
        msg.defects,
    )


new_tuple: Any = tuple.__new__
"""What a NamedTuple's constructor calls with its fields: ``new_tuple(SipMessage, fields)``
makes one without the constructor's own Python frame (every field given, in order): a third
of :func:`unpacked`'s time; 90 of 210 ns for a message the parser makes, 90 of 230 ns for
its :class:`Origin`."""


def unpacked(values: Packed) -> SipMessage:
    """The message :func:`packed` gave ``values`` for (equal to it)."""
    n = _ORIGIN_FIELDS
    method, status, reason, uri, call_id, cseq, cseq_method, data, start, end, body, raw, defects = values[n:]
    msg: SipMessage = new_tuple(
        SipMessage,
        (
            new_tuple(Origin, values[:n]),
            method,
            status,
            reason,
            uri,
            call_id,
            cseq,
            cseq_method,
            Headers(raw if data is None else data, start, end),
            raw[len(raw) - body :] if type(body) is int else body,
            raw,
            defects,
        ),
    )
    return msg
