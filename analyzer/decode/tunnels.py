"""Tunnels that carry SIP inside: GRE (RFC 2784/2890) with ERSPAN, VXLAN (RFC 7348), GTP-U.

Each function returns ``(ethertype, offset, encap)`` like :mod:`analyzer.decode.link`:
the EtherType (or link-level marker) of what follows and where it starts.
"""

from __future__ import annotations

from typing import Final

from analyzer.decode.link import ETH_IPV4, ETH_IPV6, NONE, LinkResult, ethernet

GRE_TEB: Final = 0x6558  # transparent Ethernet bridging
GRE_ERSPAN_2: Final = 0x88BE
GRE_ERSPAN_3: Final = 0x22EB
GRE_PPP: Final = 0x880B  # enhanced GRE (RFC 2637, PPTP)
_PPP_PROTOCOLS = {0x0021: ETH_IPV4, 0x0057: ETH_IPV6}
VXLAN_PORT: Final = 4789
GTPU_PORT: Final = 2152


def gre(data: bytes) -> LinkResult:
    """GRE header: optional checksum, key and sequence words, then the protocol."""
    if len(data) < 4:
        return NONE
    flags = data[0]
    proto = (data[2] << 8) | data[3]
    off = 4 + 4 * (bool(flags & 0x80) + bool(flags & 0x20) + bool(flags & 0x10))
    if data[1] & 0x07 == 1 and data[1] & 0x80:
        off += 4  # enhanced GRE (RFC 2637 §4.1): acknowledgment number present
    if proto in (ETH_IPV4, ETH_IPV6):
        return proto, off, "gre"
    if proto == GRE_PPP:
        return _ppp(data, off)
    if proto == GRE_TEB:
        return _inner_ethernet(data, off, "gre")
    if proto == GRE_ERSPAN_2:
        # ERSPAN type II has an 8-byte header and a GRE sequence number; type I neither.
        return _inner_ethernet(data, off + (8 if flags & 0x10 else 0), "gre/erspan")
    if proto == GRE_ERSPAN_3:
        if len(data) < off + 12:
            return NONE
        has_subheader = data[off + 11] & 0x01  # O flag: 8-byte platform subheader
        return _inner_ethernet(data, off + 12 + (8 if has_subheader else 0), "gre/erspan")
    return NONE


def _ppp(data: bytes, off: int) -> LinkResult:
    """PPP (RFC 1661) with optional address/control bytes and 1- or 2-byte protocol field."""
    if data[off : off + 2] == b"\xff\x03":
        off += 2
    if len(data) <= off:
        return NONE
    if data[off] & 0x01:  # protocol-field compression: one byte
        proto, off = data[off], off + 1
    elif len(data) >= off + 2:
        proto, off = (data[off] << 8) | data[off + 1], off + 2
    else:
        return NONE
    etype = _PPP_PROTOCOLS.get(proto, 0)
    return (etype, off, "gre/ppp") if etype else NONE


def vxlan(data: bytes) -> LinkResult:
    """RFC 7348: 8-byte header with the I flag set, then an Ethernet frame."""
    if len(data) < 8 + 14 or not data[0] & 0x08:
        return NONE
    return _inner_ethernet(data, 8, "vxlan")


def gtpu(data: bytes) -> LinkResult:
    """GTPv1-U (3GPP TS 29.281) G-PDU: the user's IP packet after the header."""
    if len(data) < 8 or data[0] >> 5 != 1 or data[1] != 0xFF:
        return NONE
    off = 8
    if data[0] & 0x07:  # E, S or PN: 4 more bytes, then extension headers when E
        off = 12
        next_ext = data[11] if len(data) >= 12 else 0
        while next_ext and data[0] & 0x04:
            if len(data) <= off:
                return NONE
            length = data[off] * 4
            if not length or len(data) < off + length:
                return NONE
            next_ext = data[off + length - 1]
            off += length
    if len(data) <= off:
        return NONE
    version = data[off] >> 4
    if version == 4:
        return ETH_IPV4, off, "gtp"
    if version == 6:
        return ETH_IPV6, off, "gtp"
    return NONE


def _inner_ethernet(data: bytes, off: int, encap: str) -> LinkResult:
    etype, inner, more = ethernet(data, off)
    if not etype:
        return NONE
    return etype, inner, f"{encap}/{more}" if more else encap
