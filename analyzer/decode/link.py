"""Link layer: from a frame of some link type to the network-layer packet inside.

Each function returns ``(ethertype, offset, encap)``: the EtherType of what starts at
``offset`` (0 when it is nothing we decode) and the names of the layers passed
(``vlan``, ``sll`` …) for the message's origin. The link type numbers are those of
https://www.tcpdump.org/linktypes.html.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

ETH_IPV4: Final = 0x0800
ETH_IPV6: Final = 0x86DD
ETH_VLAN: Final = 0x8100
ETH_QINQ: Final = 0x88A8
ETH_QINQ_OLD: Final = 0x9100
ETH_PPPOE: Final = 0x8864
ETH_MPLS: Final = 0x8847
ETH_MPLS_MC: Final = 0x8848

LINKTYPE_NULL: Final = 0
LINKTYPE_ETHERNET: Final = 1
LINKTYPE_RAW: Final = 101
LINKTYPE_RAW_OLD: Final = 12  # DLT_RAW on OpenBSD-style captures
LINKTYPE_RAW_OLD2: Final = 14
LINKTYPE_LOOP: Final = 108
LINKTYPE_LINUX_SLL: Final = 113
LINKTYPE_IPV4: Final = 228
LINKTYPE_IPV6: Final = 229
LINKTYPE_LINUX_SLL2: Final = 276

LinkResult = tuple[int, int, str]
NONE: Final[LinkResult] = (0, 0, "")
MAX_TAGS = 8  # more stacked tags than this is a broken frame, not a network

# BSD loopback address families: AF_INET is 2 everywhere; AF_INET6 is 24, 28 or 30.
_NULL_FAMILIES = {2: ETH_IPV4, 24: ETH_IPV6, 28: ETH_IPV6, 30: ETH_IPV6}
_PPP_PROTOCOLS = {0x0021: ETH_IPV4, 0x0057: ETH_IPV6}


def ethernet(data: bytes, off: int = 0) -> LinkResult:
    """Ethernet II with 802.1Q/802.1ad (QinQ) tags, PPPoE session and MPLS labels."""
    if len(data) < off + 14:
        return NONE
    etype = (data[off + 12] << 8) | data[off + 13]
    off += 14
    if etype in (ETH_IPV4, ETH_IPV6):
        return etype, off, ""
    return _after_ethertype(data, etype, off, "")


def _after_ethertype(data: bytes, etype: int, off: int, encap: str) -> LinkResult:
    """Peel VLAN tags, PPPoE and MPLS until an IP EtherType (or give up)."""
    for _ in range(MAX_TAGS):
        if etype in (ETH_VLAN, ETH_QINQ, ETH_QINQ_OLD):
            if len(data) < off + 4:
                return NONE
            etype = (data[off + 2] << 8) | data[off + 3]
            off += 4
            encap = _add(encap, "vlan")
        elif etype == ETH_PPPOE:
            # RFC 2516: 6-byte PPPoE header, then the 2-byte PPP protocol.
            if len(data) < off + 8:
                return NONE
            etype = _PPP_PROTOCOLS.get((data[off + 6] << 8) | data[off + 7], 0)
            off += 8
            encap = _add(encap, "pppoe")
        elif etype in (ETH_MPLS, ETH_MPLS_MC):
            return _mpls(data, off, _add(encap, "mpls"))
        else:
            return etype, off, encap
    return NONE


def _mpls(data: bytes, off: int, encap: str) -> LinkResult:
    """RFC 3032 label stack; after bottom-of-stack the IP version nibble tells the rest."""
    for _ in range(MAX_TAGS):
        if len(data) < off + 4:
            return NONE
        bottom = data[off + 2] & 0x01
        off += 4
        if bottom:
            return _by_version(data, off, encap)
    return NONE


def _add(encap: str, layer: str) -> str:
    return f"{encap}/{layer}" if encap else layer


def _by_version(data: bytes, off: int, encap: str) -> LinkResult:
    if len(data) <= off:
        return NONE
    version = data[off] >> 4
    if version == 4:
        return ETH_IPV4, off, encap
    if version == 6:
        return ETH_IPV6, off, encap
    return NONE


def raw_ip(data: bytes) -> LinkResult:
    return _by_version(data, 0, "")


def null_loopback(data: bytes) -> LinkResult:
    """BSD loopback: a 4-byte address family in the capturing host's byte order."""
    if len(data) < 4:
        return NONE
    family = data[0] | (data[1] << 8) if data[2:4] == b"\0\0" else (data[2] << 8) | data[3]
    return _NULL_FAMILIES.get(family, 0), 4, ""


def loop(data: bytes) -> LinkResult:
    """OpenBSD loopback: like null, but the family is in network byte order."""
    if len(data) < 4:
        return NONE
    family = (data[2] << 8) | data[3]
    return _NULL_FAMILIES.get(family, 0), 4, ""


def linux_sll(data: bytes) -> LinkResult:
    """Linux cooked capture v1: 16-byte header, protocol in its last two bytes."""
    if len(data) < 16:
        return NONE
    etype = (data[14] << 8) | data[15]
    return _after_ethertype(data, etype, 16, "sll")


def linux_sll2(data: bytes) -> LinkResult:
    """Linux cooked capture v2: 20-byte header, protocol in its first two bytes."""
    if len(data) < 20:
        return NONE
    etype = (data[0] << 8) | data[1]
    return _after_ethertype(data, etype, 20, "sll2")


LINK_DECODERS: dict[int, Callable[[bytes], LinkResult]] = {
    LINKTYPE_ETHERNET: ethernet,
    LINKTYPE_NULL: null_loopback,
    LINKTYPE_LOOP: loop,
    LINKTYPE_RAW: raw_ip,
    LINKTYPE_RAW_OLD: raw_ip,
    LINKTYPE_RAW_OLD2: raw_ip,
    LINKTYPE_IPV4: raw_ip,
    LINKTYPE_IPV6: raw_ip,
    LINKTYPE_LINUX_SLL: linux_sll,
    LINKTYPE_LINUX_SLL2: linux_sll2,
}
