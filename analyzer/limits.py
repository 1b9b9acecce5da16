"""The decoder's limits in one place: what hostile or broken traffic may hold in memory.

Each limit's default is the constant of the module that enforces it (no number is
repeated here); ``sipflow messages|analyze|live --limit NAME=VALUE`` changes one.
Going past a limit is never fatal: the excess is dropped and counted.

======================  ========  ====================================================
name                    default   past it (where it is counted)
======================  ========  ====================================================
max_sip_header          64 KiB    unended SIP header block on a stream: ``tcp-junk``
max_sip_body            1 MiB     Content-Length larger: message skipped, ``tcp-junk``
tcp_buffer              2 MiB     bytes buffered per TCP direction given out: ``tcp-junk``
tcp_pending_segments    256       out-of-order segments: the gap is given up,
                                  ``tcp-incomplete`` (``TcpStream.gaps``)
tcp_streams             65,536    TCP directions tracked: oldest forgotten
                                  (``TcpTable.evicted``)
ws_message              1 MiB     WebSocket message dropped: ``tcp-junk`` (the rest of
                                  the connection is then read as plain SIP)
sctp_message            1 MiB     partial SCTP message dropped: ``sctp-too-large``
sctp_fragments          1,024     SCTP fragments held: oldest dropped
                                  (``SctpReassembler.dropped_fragments``)
hep_payload             1 MiB     HEP payload (inflated too): ``hep-payload-too-large``
fragment_pieces         64        IP fragments of one datagram: datagram dropped
                                  (``FragmentTable.refused``)
fragment_bytes          64 MiB    IP fragment bytes held: oldest datagram dropped
                                  (``FragmentTable.evicted``)
fragment_datagrams      4,096     datagrams waiting for fragments: oldest dropped
                                  (``FragmentTable.evicted``)
======================  ========  ====================================================

A SIP message on TCP must fit ``tcp_buffer`` as well as ``max_sip_header`` +
``max_sip_body``: raising the body limit past 2 MiB needs a larger buffer too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, fields, replace

from analyzer.decode import fragments, hep, sctp, tcp, websocket
from analyzer.errors import UsageError
from analyzer.sip import framing

_SIZE = re.compile(r"^\s*(\d+)\s*(?:([kmg])(?:i?b)?)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


@dataclass(frozen=True, slots=True)
class Limits:
    """One field per limit (see the module's table); every value is a positive whole number."""

    max_sip_header: int = framing.DEFAULT_MAX_HEADER
    max_sip_body: int = framing.DEFAULT_MAX_BODY
    tcp_buffer: int = tcp.MAX_BUFFER
    tcp_pending_segments: int = tcp.MAX_PENDING_SEGMENTS
    tcp_streams: int = tcp.MAX_STREAMS
    ws_message: int = websocket.DEFAULT_MAX_MESSAGE
    sctp_message: int = sctp.DEFAULT_MAX_MESSAGE
    sctp_fragments: int = sctp.DEFAULT_MAX_PENDING
    hep_payload: int = hep.DEFAULT_MAX_PAYLOAD
    fragment_pieces: int = fragments.MAX_PIECES
    fragment_bytes: int = fragments.DEFAULT_MAX_BYTES
    fragment_datagrams: int = fragments.DEFAULT_MAX_PENDING

    @staticmethod
    def names() -> tuple[str, ...]:
        """The limits' names, as ``--limit`` takes them."""
        return tuple(f.name for f in fields(Limits))

    @classmethod
    def parse(cls, items: Iterable[str], base: Limits | None = None) -> Limits:
        """``NAME=VALUE`` items (``tcp_buffer=4M``; K, M, G: powers of 1024) over ``base``
        (the defaults). An unknown name, a missing ``=`` or a value that is not a positive
        whole number raises :class:`UsageError`."""
        known = cls.names()
        changes: dict[str, int] = {}
        for item in items:
            name, sep, value = item.partition("=")
            name = name.strip()
            if not sep or name not in known:
                raise UsageError(f"--limit {item!r}: expected NAME=VALUE, NAME one of {', '.join(known)}")
            changes[name] = _size(item, value)
        return replace(base if base is not None else cls(), **changes)


DEFAULT_LIMITS = Limits()


def _size(item: str, value: str) -> int:
    m = _SIZE.match(value)
    number = int(m[1]) * _UNITS[(m[2] or "").lower()] if m else 0
    if number <= 0:
        raise UsageError(f"--limit {item!r}: the value must be a positive whole number, K, M or G after it (4M)")
    return number
