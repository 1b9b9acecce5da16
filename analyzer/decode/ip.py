"""Network layer: IPv4 (RFC 791) and IPv6 with extension headers (RFC 8200).

Functions return an :class:`IpPacket` or raise :class:`DecodeError`; addresses stay
bytes (cheap to hash for flow and fragment keys) until a SIP message needs them as text.
"""

from __future__ import annotations

import socket
from typing import NamedTuple

from analyzer.errors import DecodeError

PROTO_ICMP = 1
PROTO_IPIP = 4
PROTO_TCP = 6
PROTO_UDP = 17
PROTO_IPV6 = 41
PROTO_GRE = 47
PROTO_ICMPV6 = 58
PROTO_SCTP = 132

# RFC 8200 §4 and the IANA list of IPv6 extension headers walked over.
_EXT_HOP_BY_HOP = 0
_EXT_ROUTING = 43
_EXT_FRAGMENT = 44
_EXT_AH = 51
_EXT_NO_NEXT = 59
_EXT_DEST_OPTS = 60
_EXT_MOBILITY = 135
_EXT_PLAIN = (_EXT_HOP_BY_HOP, _EXT_ROUTING, _EXT_DEST_OPTS, _EXT_MOBILITY)
MAX_EXT_HEADERS = 16


class IpPacket(NamedTuple):
    """One IP packet (a NamedTuple: one is built per frame, so it must be cheap)."""

    version: int
    src: bytes
    dst: bytes
    proto: int
    payload: bytes
    frag_id: int = -1
    """-1 when the packet is not a fragment."""
    frag_offset: int = 0
    more_fragments: bool = False


def ipv4(data: bytes, off: int) -> IpPacket:
    if len(data) < off + 20:
        raise DecodeError("ip-truncated")
    ihl = (data[off] & 0x0F) * 4
    if ihl < 20:
        raise DecodeError("ip-bad-header")
    total = (data[off + 2] << 8) | data[off + 3]
    end = off + total if total >= ihl else len(data)  # total 0: TSO, trust the capture
    payload = data[off + ihl : end]  # drops Ethernet padding
    flags = (data[off + 6] << 8) | data[off + 7]
    frag_offset = (flags & 0x1FFF) * 8
    more = bool(flags & 0x2000)
    src, dst, proto = data[off + 12 : off + 16], data[off + 16 : off + 20], data[off + 9]
    if frag_offset or more:
        frag_id = (data[off + 4] << 8) | data[off + 5]
        return IpPacket(4, src, dst, proto, payload, frag_id, frag_offset, more)
    return IpPacket(4, src, dst, proto, payload)


def ipv6(data: bytes, off: int) -> IpPacket:
    if len(data) < off + 40:
        raise DecodeError("ip-truncated")
    plen = (data[off + 4] << 8) | data[off + 5]
    nxt = data[off + 6]
    src, dst = data[off + 8 : off + 24], data[off + 24 : off + 40]
    end = off + 40 + plen if plen else len(data)  # 0: jumbogram or TSO
    pos = off + 40
    frag_id, frag_offset, more = -1, 0, False
    for _ in range(MAX_EXT_HEADERS):
        if nxt in _EXT_PLAIN:
            if len(data) < pos + 2:
                raise DecodeError("ipv6-truncated-extension")
            nxt, pos = data[pos], pos + (data[pos + 1] + 1) * 8
        elif nxt == _EXT_AH:
            if len(data) < pos + 2:
                raise DecodeError("ipv6-truncated-extension")
            nxt, pos = data[pos], pos + (data[pos + 1] + 2) * 4  # RFC 4302 §2.2
        elif nxt == _EXT_FRAGMENT:
            if len(data) < pos + 8:
                raise DecodeError("ipv6-truncated-extension")
            offlg = (data[pos + 2] << 8) | data[pos + 3]
            frag_offset, more = offlg & 0xFFF8, bool(offlg & 1)
            frag_id = int.from_bytes(data[pos + 4 : pos + 8], "big")
            nxt, pos = data[pos], pos + 8
        else:
            break
    else:
        raise DecodeError("ipv6-too-many-extensions")
    if nxt == _EXT_NO_NEXT:
        raise DecodeError("ipv6-no-next-header")
    if frag_id >= 0 and not (frag_offset or more):
        frag_id = -1  # an atomic fragment (RFC 6946) is a whole packet
    return IpPacket(6, src, dst, nxt, data[pos:end], frag_id, frag_offset, more)


def hostport(ip: str, port: int) -> str:
    """``ip:port``, with brackets around an IPv6 address (RFC 3986 §3.2.2)."""
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def address_text(addr: bytes) -> str:
    """Printable address (IPv6 in its RFC 5952 compressed form)."""
    if len(addr) == 4:
        return socket.inet_ntoa(addr)
    return socket.inet_ntop(socket.AF_INET6, addr)
