"""A summary of an SDP body (RFC 8866, which obsoletes RFC 4566): who, where, which codecs.

Only what call diagnosis needs is kept: the origin and connection addresses, each media
stream with its port, transport, formats and the codec names they stand for, the
direction, RTCP multiplexing and whether keys for SRTP are offered. Everything else
(timing, bandwidth, ICE candidates …) is skipped.

:func:`parse_sdp` never raises: an SDP body comes from the wire, and a malformed one is
itself a finding. What is wrong with it is listed in :attr:`Sdp.defects` as short, stable
tokens (``bad-port``, ``no-rtpmap`` …) that can be counted.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

DIRECTIONS: Final = frozenset({"sendrecv", "sendonly", "recvonly", "inactive"})
"""The direction attributes of RFC 8866 §6.7 (offer/answer use: RFC 3264 §5.1)."""

DEFAULT_DIRECTION: Final = "sendrecv"
"""RFC 8866 §6.7.1: with no direction attribute, ``sendrecv`` is assumed."""

STATIC_PAYLOAD_TYPES: Final = MappingProxyType(
    {
        # RFC 3551 §6, Tables 4 (audio) and 5 (video): the payload types with a
        # fixed meaning, usable in m= without any a=rtpmap.
        "0": "PCMU/8000",
        "3": "GSM/8000",
        "4": "G723/8000",
        "5": "DVI4/8000",
        "6": "DVI4/16000",
        "7": "LPC/8000",
        "8": "PCMA/8000",
        "9": "G722/8000",
        "10": "L16/44100/2",
        "11": "L16/44100",
        "12": "QCELP/8000",
        "13": "CN/8000",
        "14": "MPA/90000",
        "15": "G728/8000",
        "16": "DVI4/11025",
        "17": "DVI4/22050",
        "18": "G729/8000",
        "25": "CelB/90000",
        "26": "JPEG/90000",
        "28": "nv/90000",
        "31": "H261/90000",
        "32": "MPV/90000",
        "33": "MP2T/90000",
        "34": "H263/90000",
    }
)
"""Static RTP payload type → ``encoding/clock[/channels]``."""

AUX_ENCODINGS: Final = frozenset({"telephone-event", "cn"})
"""Payloads that ride along with a codec (RFC 4733 DTMF, RFC 3389 comfort noise)."""

_LINE_TYPES: Final = frozenset("vosiuepcbtrzkam")
"""Every <type> letter RFC 8866 §5 defines (``k=`` is obsolete but still legal)."""

# RFC 8866 §9: a unicast address is an IPv4/IPv6 literal or an FQDN; a multicast one may
# carry "/ttl[/count]", which is cut off before this check.
_EOL = re.compile(r"\r\n|\r|\n")
_HOSTNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?\.?")


@dataclass(frozen=True, slots=True)
class Media:
    """One ``m=`` section."""

    kind: str
    """Media type, lower-cased: ``audio``, ``video``, ``image``, ``application`` …"""
    port: int
    """Transport port; 0 means the stream is rejected or disabled (RFC 3264 §5.1, §6);
    -1 when the port field is unreadable."""
    proto: str
    """Transport protocol as written: ``RTP/AVP``, ``RTP/SAVP``, ``UDP/TLS/RTP/SAVPF``, ``udptl`` …"""
    formats: tuple[str, ...]
    """Media formats as written in ``m=`` (RTP payload type numbers for RTP)."""
    codecs: tuple[str, ...]
    """One name per format: ``PCMU/8000``, ``opus/48000/2``, ``t38`` … (``PT96`` if unresolved)."""
    connection: str
    """Connection address of this stream: its own ``c=``, else the session's; empty if none."""
    direction: str
    """``sendrecv``, ``sendonly``, ``recvonly`` or ``inactive`` (own attribute, else inherited)."""
    rtcp_mux: bool
    """``a=rtcp-mux`` present (RFC 5761 §5.1.1)."""
    crypto: bool
    """SRTP keying offered: ``a=crypto`` (RFC 4568) or ``a=fingerprint`` (RFC 8122)."""

    @property
    def rejected(self) -> bool:
        """A zero port: the stream is refused (answer) or disabled (offer)."""
        return self.port == 0


@dataclass(frozen=True, slots=True)
class Sdp:
    """What sipflow keeps of a session description."""

    origin_address: str
    """Unicast address of ``o=`` (its sixth field); empty when ``o=`` is missing or short."""
    connection: str
    """Session-level ``c=`` address; empty when there is none (then each ``m=`` needs its own)."""
    media: tuple[Media, ...]
    direction: str
    """Session-level direction attribute, ``sendrecv`` when absent."""
    defects: tuple[str, ...] = ()
    """What is wrong with the body, each token once, in order of discovery."""


@dataclass(slots=True)
class _Section:
    """Lines gathered for one level (session or one ``m=``) before they are summarised."""

    media_line: str = ""
    connection: str = ""
    directions: list[str] = field(default_factory=list)
    rtpmaps: dict[str, str] = field(default_factory=dict)
    rtcp_mux: bool = False
    crypto: bool = False


def parse_sdp(body: bytes) -> Sdp:
    """Summarise an SDP body; any bytes give an :class:`Sdp`, never an exception."""
    defects: list[str] = []
    lines = _split_lines(body, defects)
    if not lines:
        defects.append("empty")
        return Sdp("", "", (), DEFAULT_DIRECTION, tuple(defects))
    # RFC 8866 §5: the description starts with "v=" and the only version is 0.
    if not lines[0].startswith("v="):
        defects.append("no-version")
    elif lines[0] != "v=0":
        defects.append("bad-version")
    session = _Section()
    medias: list[_Section] = []
    origin: str | None = None
    for line in lines:
        kind, value = _split_field(line, defects)
        if kind == "m":
            medias.append(_Section(media_line=value))
            continue
        current = medias[-1] if medias else session
        if kind == "o" and not medias:
            origin = _origin_address(value, defects)
        elif kind == "c":
            _take_connection(current, value, defects)
        elif kind == "a":
            _take_attribute(current, value, defects)
    if origin is None:
        defects.append("no-origin")
    session_direction = _direction(session, defects)
    streams = tuple(_media(section, session, session_direction, defects) for section in medias)
    return Sdp(origin or "", session.connection, streams, session_direction or DEFAULT_DIRECTION, _unique(defects))


def codec_names(sdp: Sdp, *, include_aux: bool = False) -> list[str]:
    """Encoding names of the audio streams in use, each once: ``["PCMU", "PCMA"]``.

    Rejected (port 0) streams are left out, and so are DTMF and comfort-noise payloads
    unless ``include_aux``; what is left is what "offered X / answered Y" should show.
    """
    names: list[str] = []
    seen: set[str] = set()
    for media in sdp.media:
        if media.kind != "audio" or media.rejected:
            continue
        for codec in media.codecs:
            name = codec.split("/", 1)[0]
            key = name.lower()
            if key in seen or (key in AUX_ENCODINGS and not include_aux):
                continue
            seen.add(key)
            names.append(name)
    return names


# -- lines -------------------------------------------------------------------------------


def _split_lines(body: bytes, defects: list[str]) -> list[str]:
    """Decode and cut into lines; empty lines are dropped (a trailing CRLF is common)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        # RFC 8866 §5: the default charset is UTF-8 (a=charset may say otherwise, but
        # a summary only needs the ASCII fields, which survive replacement).
        text = body.decode("utf-8", errors="replace")
        defects.append("non-utf8")
    # RFC 8866 §5: lines end with CRLF, but parsers should accept a bare LF too (and a
    # bare CR costs nothing to accept).
    bare = text.replace("\r\n", "")
    if "\n" in bare or "\r" in bare:
        defects.append("not-crlf")
    return [line for line in _EOL.split(text) if line.strip()]


def _split_field(line: str, defects: list[str]) -> tuple[str, str]:
    """``"m=audio …"`` → ``("m", "audio …")``; ``("", "")`` for a line that is not a field."""
    # RFC 8866 §5: <type>=<value>, <type> exactly one letter, no space around "=".
    if len(line) < 2 or line[1] != "=" or not line[0].isalpha():
        defects.append("bad-line")
        return "", ""
    kind = line[0]
    if kind not in _LINE_TYPES:
        defects.append("unknown-line-type")
        return "", ""
    return kind, line[2:]


def _unique(defects: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(defects))


# -- session and media fields --------------------------------------------------------------


def _origin_address(value: str, defects: list[str]) -> str:
    """RFC 8866 §5.2: ``o=<username> <sess-id> <sess-version> <nettype> <addrtype> <address>``."""
    fields = value.split()
    if len(fields) != 6:
        defects.append("bad-origin")
    # With extra fields the address is still most likely the last one.
    return fields[-1] if len(fields) >= 6 else ""


def _take_connection(section: _Section, value: str, defects: list[str]) -> None:
    """RFC 8866 §5.7: ``c=<nettype> <addrtype> <connection-address>``; the first one counts."""
    fields = value.split()
    if len(fields) != 3 or fields[0] != "IN":
        defects.append("bad-connection")
        if len(fields) < 3:
            return
    address = fields[2].split("/", 1)[0]
    if not _plausible_address(fields[1], address):
        defects.append("bad-connection-address")
    if not section.connection:
        section.connection = address


def _plausible_address(addrtype: str, address: str) -> bool:
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return _HOSTNAME.fullmatch(address) is not None and not address.replace(".", "").isdigit()
    return parsed.version == (6 if addrtype == "IP6" else 4)


def _take_attribute(section: _Section, value: str, defects: list[str]) -> None:
    """Keep the attributes this summary uses; RFC 8866 §5.13: ignore unknown ones."""
    name, _, rest = value.partition(":")
    name = name.strip()
    if name in DIRECTIONS:
        section.directions.append(name)
    elif name == "rtpmap":
        _take_rtpmap(section, rest, defects)
    elif name == "rtcp-mux":
        section.rtcp_mux = True
    elif name in ("crypto", "fingerprint"):
        section.crypto = True


def _take_rtpmap(section: _Section, value: str, defects: list[str]) -> None:
    """RFC 8866 §6.6: ``a=rtpmap:<payload type> <encoding name>/<clock rate>[/<parameters>]``."""
    payload_type, _, encoding = value.strip().partition(" ")
    parts = encoding.strip().split("/")
    if not payload_type.isdigit() or len(parts) not in (2, 3) or not parts[0] or not parts[1].isdigit():
        defects.append("bad-rtpmap")
        return
    # A channel count of 1 is the default (RFC 8866 §6.6); drop it so "PCMU/8000/1" and
    # "PCMU/8000" compare equal.
    if len(parts) == 3 and parts[2] == "1":
        parts = parts[:2]
    section.rtpmaps[payload_type] = "/".join(parts)


def _direction(section: _Section, defects: list[str]) -> str:
    directions = section.directions
    if len(directions) > 1:
        defects.append("multiple-directions")
    return directions[-1] if directions else ""


def _media(section: _Section, session: _Section, session_direction: str, defects: list[str]) -> Media:
    """Summarise one ``m=`` section: ``m=<media> <port>[/<count>] <proto> <fmt> …`` (RFC 8866 §5.14)."""
    fields = section.media_line.split()
    if len(fields) < 3:
        defects.append("bad-media")
        fields = [*fields, "", "", ""][:3]
    kind, port_text, proto, formats = fields[0].lower(), fields[1], fields[2], tuple(fields[3:])
    if not formats:
        defects.append("media-without-format")
    port = _port(port_text, defects)
    connection = section.connection or session.connection
    if not connection and port != 0:
        defects.append("no-connection")
    return Media(
        kind=kind,
        port=port,
        proto=proto,
        formats=formats,
        codecs=_codecs(proto, formats, section.rtpmaps, port, defects),
        connection=connection,
        direction=_direction(section, defects) or session_direction or DEFAULT_DIRECTION,
        rtcp_mux=section.rtcp_mux,
        crypto=section.crypto or session.crypto,
    )


def _port(text: str, defects: list[str]) -> int:
    port = text.split("/", 1)[0]
    # isascii: str.isdigit() also accepts "²", which int() refuses; the length check keeps
    # int() away from its huge-number limit.
    if port.isascii() and port.isdigit() and len(port) <= 5 and int(port) <= 65535:
        return int(port)
    defects.append("bad-port")
    return -1


def _codecs(
    proto: str, formats: tuple[str, ...], rtpmaps: dict[str, str], port: int, defects: list[str]
) -> tuple[str, ...]:
    """Name each format: a=rtpmap first, then the static RFC 3551 table."""
    # RFC 8866 §5.14: for RTP profiles the formats are payload type numbers; for any other
    # transport (udptl for T.38, TCP/MSRP …) the format itself is the name.
    if "RTP" not in proto.upper():
        return formats
    names: list[str] = []
    for fmt in formats:
        name = rtpmaps.get(fmt) or STATIC_PAYLOAD_TYPES.get(fmt)
        if name is None:
            # RFC 3551 §3: dynamic payload types (96-127) are bound only by a=rtpmap; a
            # rejected stream may leave them unbound (RFC 3264 §6).
            if port != 0:
                defects.append("no-rtpmap")
            name = f"PT{fmt}"
        names.append(name)
    return tuple(names)
