"""HEP (Homer Encapsulation Protocol) v2 and v3/EEP: one datagram in, one :class:`HepPacket` out.

Capture agents (Kamailio, OpenSIPS, FreeSWITCH, heplify, captagent …) copy each SIP
message they see to a collector, wrapped in HEP with the addresses, ports and time of
the original packet. This module only decodes; the HEP listener and the pcap reader
hand it the UDP/TCP payload.

* HEPv3 ("HEP3 Network Protocol Specification", sipcapture/HEP): ``"HEP3"``, a 16-bit
  total length, then chunks ``vendor:u16 type:u16 length:u16 value`` (length counts the
  6-byte chunk header), all big-endian.
* HEPv2 (the older fixed header of Kamailio/OpenSIPS ``hep.h``): ``version=2, header
  length, family, protocol, src port, dst port`` then the two addresses, then a time
  header ``tv_sec:u32 tv_usec:u32 captid:u16`` (+2 bytes of struct padding) that the
  agents write in *host* byte order, i.e. little-endian on every agent seen in practice.
  HEPv2 carries no magic, so a datagram is taken as HEPv2 only when the fixed fields
  are consistent and the payload starts like a SIP start line.

HEPv1 (no time header) is not recognised: ``parse_hep`` returns ``None`` for it.
"""

from __future__ import annotations

import re
import socket
import struct
import zlib
from typing import NamedTuple

from analyzer.errors import DecodeError

__all__ = ["DEFAULT_MAX_PAYLOAD", "HepPacket", "is_hep", "parse_hep"]

DEFAULT_MAX_PAYLOAD = 1 << 20
"""Largest payload (after decompression) accepted, in bytes."""

_HEP3_MAGIC = b"HEP3"
_HEP3_HEADER = struct.Struct("!4sH")
_CHUNK_HEADER = struct.Struct("!HHH")
_U8 = struct.Struct("!B")
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")

# Linux address family numbers, as the agents put them on the wire.
_AF_INET = 2
_AF_INET6 = 10

# HEPv2: header length (fixed header + both addresses) for each family, and the
# protocols an agent may name (TCP, UDP, SCTP).
_V2_HEADER_LEN = {_AF_INET: 16, _AF_INET6: 40}
_V2_PROTOCOLS = frozenset({6, 17, 132})
_V2_FIXED = struct.Struct("!BBBBHH")
_V2_TIME = struct.Struct("<IIH2x")
# A SIP start line (RFC 3261 §7.1/§7.2): "SIP/2.0 NNN " or "METHOD SP".
_SIP_START = re.compile(rb"SIP/2\.0 [1-6][0-9][0-9]|[A-Z][A-Z-]{1,31} [!-~]")

# HEPv3 generic chunk types (vendor 0).
_CH_FAMILY = 0x0001
_CH_PROTO = 0x0002
_CH_SRC_IP4 = 0x0003
_CH_DST_IP4 = 0x0004
_CH_SRC_IP6 = 0x0005
_CH_DST_IP6 = 0x0006
_CH_SRC_PORT = 0x0007
_CH_DST_PORT = 0x0008
_CH_TS_SEC = 0x0009
_CH_TS_USEC = 0x000A
_CH_PAYLOAD_TYPE = 0x000B
_CH_CAPTURE_ID = 0x000C
_CH_AUTH_KEY = 0x000E
_CH_PAYLOAD = 0x000F
_CH_COMPRESSED = 0x0010
_CH_CORRELATION = 0x0011
_CH_NODE_NAME = 0x0013

# Fixed value sizes of the numeric and address chunks; a chunk of another size is broken.
_FIXED_SIZES = {
    _CH_FAMILY: 1,
    _CH_PROTO: 1,
    _CH_SRC_IP4: 4,
    _CH_DST_IP4: 4,
    _CH_SRC_IP6: 16,
    _CH_DST_IP6: 16,
    _CH_SRC_PORT: 2,
    _CH_DST_PORT: 2,
    _CH_TS_SEC: 4,
    _CH_TS_USEC: 4,
    _CH_PAYLOAD_TYPE: 1,
    _CH_CAPTURE_ID: 4,
}
_STRING_CHUNKS = frozenset({_CH_AUTH_KEY, _CH_CORRELATION, _CH_NODE_NAME})


class HepPacket(NamedTuple):
    """One decoded HEP datagram: the captured packet's addressing plus its payload."""

    version: int
    """2 or 3."""
    family: int
    """4 or 6."""
    ip_proto: int
    """IP protocol of the captured packet (17 UDP, 6 TCP, 132 SCTP)."""
    src_ip: str
    dst_ip: str
    src_port: int
    dst_port: int
    ts_ns: int | None
    """Capture time of the original packet, ns since the epoch; None when the agent sent none."""
    capture_id: int | None
    auth_key: str | None
    correlation_id: str | None
    payload_type: int | None
    """HEPv3 protocol type (1 SIP, 5 RTCP, 100 log …); None for HEPv2, which has no such field."""
    payload: bytes
    """The captured payload (inflated when the agent compressed it); empty for a keep-alive."""
    node_name: str | None


def is_hep(data: bytes) -> bool:
    """True when ``data`` looks like HEPv3 (magic) or HEPv2 (consistent fixed header + SIP)."""
    return data[:4] == _HEP3_MAGIC or _v2_signature(data) is not None


def parse_hep(data: bytes, max_payload: int = DEFAULT_MAX_PAYLOAD) -> HepPacket | None:
    """Decode one HEP datagram.

    Returns None when ``data`` is not HEP at all, raises :class:`DecodeError` when it is
    HEP but broken (``hep-truncated``, ``hep-bad-length``, ``hep-bad-chunk``,
    ``hep-missing-chunk``, ``hep-bad-compression``, ``hep-payload-too-large``).
    """
    if data[:4] == _HEP3_MAGIC:
        return _parse_v3(data, max_payload)
    header_len = _v2_signature(data)
    if header_len is None:
        return None
    return _parse_v2(data, header_len, max_payload)


# -- HEPv2 ---------------------------------------------------------------------------------


def _v2_signature(data: bytes) -> int | None:
    """Header length when ``data`` has a plausible HEPv2 fixed header and SIP payload, else None."""
    if len(data) < 4 or data[0] != 2:
        return None
    header_len = _V2_HEADER_LEN.get(data[2])
    if header_len is None or data[1] != header_len or data[3] not in _V2_PROTOCOLS:
        return None
    payload_at = header_len + _V2_TIME.size
    if len(data) < payload_at:
        # Four consistent bytes but no room for the addresses/time: HEP cut short.
        return header_len
    _, usec, _ = _V2_TIME.unpack_from(data, header_len)
    # tv_usec comes from gettimeofday(); a larger value means these bytes are not HEPv2.
    if usec >= 1_000_000 or _SIP_START.match(data, payload_at) is None:
        return None
    return header_len


def _parse_v2(data: bytes, header_len: int, max_payload: int) -> HepPacket:
    payload_at = header_len + _V2_TIME.size
    if len(data) < payload_at:
        raise DecodeError("hep-truncated", f"HEPv2 needs {payload_at} bytes, got {len(data)}")
    _, _, af, proto, sport, dport = _V2_FIXED.unpack_from(data)
    addr_len = 4 if af == _AF_INET else 16
    family = socket.AF_INET if af == _AF_INET else socket.AF_INET6
    src_ip = socket.inet_ntop(family, data[8 : 8 + addr_len])
    dst_ip = socket.inet_ntop(family, data[8 + addr_len : 8 + 2 * addr_len])
    sec, usec, captid = _V2_TIME.unpack_from(data, header_len)
    payload = data[payload_at:]
    _check_size(len(payload), max_payload)
    return HepPacket(
        version=2,
        family=4 if af == _AF_INET else 6,
        ip_proto=proto,
        src_ip=src_ip,
        dst_ip=dst_ip,
        src_port=sport,
        dst_port=dport,
        ts_ns=sec * 1_000_000_000 + usec * 1_000,
        capture_id=captid,
        auth_key=None,
        correlation_id=None,
        payload_type=None,
        payload=payload,
        node_name=None,
    )


# -- HEPv3 ---------------------------------------------------------------------------------


def _parse_v3(data: bytes, max_payload: int) -> HepPacket:
    if len(data) < _HEP3_HEADER.size:
        raise DecodeError("hep-truncated", f"HEP3 header needs 6 bytes, got {len(data)}")
    _, total = _HEP3_HEADER.unpack_from(data)
    if total < _HEP3_HEADER.size:
        raise DecodeError("hep-bad-length", f"HEP3 total length {total}")
    if total > len(data):
        raise DecodeError("hep-truncated", f"HEP3 total length {total}, got {len(data)} bytes")
    # Bytes past ``total`` are not part of this packet (UDP padding); they are ignored.
    chunks = _read_chunks(data, total)
    return _build_v3(chunks, max_payload)


def _read_chunks(data: bytes, total: int) -> dict[int, bytes]:
    """Generic (vendor 0) chunks by type; a repeated type keeps its last value."""
    chunks: dict[int, bytes] = {}
    offset = _HEP3_HEADER.size
    while offset < total:
        if total - offset < _CHUNK_HEADER.size:
            raise DecodeError("hep-bad-chunk", f"{total - offset} stray bytes at offset {offset}")
        vendor, ctype, length = _CHUNK_HEADER.unpack_from(data, offset)
        end = offset + length
        if length < _CHUNK_HEADER.size or end > total:
            raise DecodeError("hep-bad-chunk", f"chunk 0x{ctype:04x} length {length} at offset {offset}")
        # Vendor-specific chunks (vendor != 0) carry nothing this decoder needs.
        if vendor == 0:
            value = data[offset + _CHUNK_HEADER.size : end]
            expected = _FIXED_SIZES.get(ctype)
            if expected is not None and len(value) != expected:
                raise DecodeError("hep-bad-chunk", f"chunk 0x{ctype:04x} has {len(value)} bytes")
            chunks[ctype] = value
        offset = end
    return chunks


def _build_v3(chunks: dict[int, bytes], max_payload: int) -> HepPacket:
    family, inet, src_type, dst_type = _v3_family(chunks)
    return HepPacket(
        version=3,
        family=family,
        ip_proto=_require(chunks, _CH_PROTO, "ip protocol")[0],
        src_ip=socket.inet_ntop(inet, _require(chunks, src_type, "source address")),
        dst_ip=socket.inet_ntop(inet, _require(chunks, dst_type, "destination address")),
        src_port=_U16.unpack(_require(chunks, _CH_SRC_PORT, "source port"))[0],
        dst_port=_U16.unpack(_require(chunks, _CH_DST_PORT, "destination port"))[0],
        ts_ns=_v3_time(chunks),
        capture_id=_optional_u32(chunks.get(_CH_CAPTURE_ID)),
        auth_key=_optional_str(chunks.get(_CH_AUTH_KEY)),
        correlation_id=_optional_str(chunks.get(_CH_CORRELATION)),
        payload_type=_optional_u8(chunks.get(_CH_PAYLOAD_TYPE)),
        payload=_v3_payload(chunks, max_payload),
        node_name=_optional_str(chunks.get(_CH_NODE_NAME)),
    )


def _require(chunks: dict[int, bytes], ctype: int, name: str) -> bytes:
    value = chunks.get(ctype)
    if value is None:
        raise DecodeError("hep-missing-chunk", name)
    return value


def _v3_family(chunks: dict[int, bytes]) -> tuple[int, int, int, int]:
    """(4|6, socket family, source-address chunk type, destination-address chunk type)."""
    raw = _require(chunks, _CH_FAMILY, "ip protocol family")
    if raw[0] == _AF_INET:
        return 4, socket.AF_INET, _CH_SRC_IP4, _CH_DST_IP4
    if raw[0] == _AF_INET6:
        return 6, socket.AF_INET6, _CH_SRC_IP6, _CH_DST_IP6
    raise DecodeError("hep-bad-chunk", f"ip protocol family {raw[0]}")


def _v3_time(chunks: dict[int, bytes]) -> int | None:
    # Chunk 0x000a is a microseconds offset added to the seconds of 0x0009; alone it means nothing.
    sec = _optional_u32(chunks.get(_CH_TS_SEC))
    if sec is None:
        return None
    usec = _optional_u32(chunks.get(_CH_TS_USEC)) or 0
    return sec * 1_000_000_000 + usec * 1_000


def _v3_payload(chunks: dict[int, bytes], max_payload: int) -> bytes:
    plain = chunks.get(_CH_PAYLOAD)
    if plain is not None:
        _check_size(len(plain), max_payload)
        return plain
    packed = chunks.get(_CH_COMPRESSED)
    if packed is None:
        return b""
    return _inflate(packed, max_payload)


def _inflate(packed: bytes, max_payload: int) -> bytes:
    """zlib or gzip stream (header auto-detected), never inflated past ``max_payload``."""
    inflater = zlib.decompressobj(wbits=47)
    try:
        out = inflater.decompress(packed, max_payload + 1)
    except zlib.error as exc:
        raise DecodeError("hep-bad-compression", str(exc)) from None
    _check_size(len(out), max_payload)
    if not inflater.eof:
        raise DecodeError("hep-bad-compression", "compressed stream ends early")
    return out


def _check_size(size: int, max_payload: int) -> None:
    if size > max_payload:
        raise DecodeError("hep-payload-too-large", f"more than {max_payload} bytes")


def _optional_u8(raw: bytes | None) -> int | None:
    return None if raw is None else int(_U8.unpack(raw)[0])


def _optional_u32(raw: bytes | None) -> int | None:
    return None if raw is None else int(_U32.unpack(raw)[0])


def _optional_str(raw: bytes | None) -> str | None:
    # C agents sometimes send the terminating NUL along with the string.
    return None if raw is None else raw.rstrip(b"\x00").decode("utf-8", "replace")
