"""Parsers for the structured SIP header values that correlation and diagnosis read.

Every function takes header values as :class:`analyzer.sip.headers.Headers` gives them
(unfolded, decoded, the text after the colon stripped) and never raises: real traffic
carries junk, and a value that cannot be read gives empty fields or ``None``
(STYLE.md habit 1). The grammar is RFC 3261 §25 unless a comment says otherwise.

These run on every message during correlation, so they use ``str`` methods and take a
fast path whenever a value holds no quote or angle bracket (the common case).

The digest ``response`` of an Authorization header is never stored, only whether one
was sent; :class:`SipUri` drops a password written into a SIP URI.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import NamedTuple

Params = tuple[tuple[str, str], ...]
"""``;name=value`` parameters in order; names lower-cased, values as written (quotes kept)."""

MAGIC_COOKIE = "z9hG4bK"
"""Branch prefix of an RFC 3261 Via (RFC 3261 §8.1.1.7)."""

_DIGITS = "0123456789"
_MAX32 = 2**32 - 1
_SCHEME_EXTRA = "+-."
# Characters that change the meaning of a separator: quotes, escapes, angle brackets.
_COMMA_SPECIALS = re.compile(r'[\\"<>,]')
_SEMI_SPECIALS = re.compile(r'[\\";]')


# -- values ----------------------------------------------------------------------------
# NamedTuples, not frozen dataclasses: several are built per message (a Via per hop, From,
# To and their URIs), and a NamedTuple costs a fifth as much to build and to define.
class SipUri(NamedTuple):
    """A SIP, SIPS or tel URI taken apart (RFC 3261 §19.1.1, RFC 3966).

    For another scheme only ``scheme`` is filled. The password and the ``?headers``
    part of a SIP URI are dropped.
    """

    scheme: str
    """Lower-cased: ``sip``, ``sips``, ``tel`` or whatever else was written."""
    user: str
    """User part as written (a tel URI's number); empty when absent."""
    host: str
    """Host as written; an IPv6 reference without its brackets; empty for tel."""
    port: int | None
    params: Params


class NameAddr(NamedTuple):
    """From, To, Contact, Refer-To, …: ``"display" <uri>;params`` (RFC 3261 §20.10)."""

    display: str
    """Display name, unquoted and unescaped; empty when absent."""
    uri: str
    """The URI as written (``*`` for the wildcard Contact of RFC 3261 §10.2.2)."""
    parsed: SipUri | None
    tag: str
    """The ``tag`` header parameter (RFC 3261 §19.3); empty when absent."""
    params: Params
    """Header parameters after the URI (``tag`` included)."""


class Via(NamedTuple):
    """One hop of a Via header (RFC 3261 §20.42, §18.2.1, RFC 3581 for rport)."""

    protocol: str
    """``SIP/2.0`` as written, without spaces."""
    transport: str
    """Upper-cased: ``UDP``, ``TCP``, ``TLS``, ``SCTP``, ``WS``, ``WSS``, …"""
    host: str
    port: int | None
    branch: str
    received: str
    rport: str | None
    """``None`` when absent, ``""`` when present without a value (RFC 3581 §3)."""
    maddr: str
    ttl: int | None
    params: Params
    """Every other parameter (``alias``, ``i``, …)."""

    @property
    def rfc3261(self) -> bool:
        """The branch carries the magic cookie, so it is unique (RFC 3261 §8.1.1.7)."""
        return self.branch.startswith(MAGIC_COOKIE)


class ReasonInfo(NamedTuple):
    """One reason of a Reason header (RFC 3326 §2)."""

    protocol: str
    """``SIP``, ``Q.850`` (any case folded to these), others as written."""
    cause: int | None
    text: str
    """The ``text`` parameter, unquoted; empty when absent."""
    params: Params
    """Other parameters (``description`` …)."""


class AuthInfo(NamedTuple):
    """A challenge or credentials header, without any secret (RFC 3261 §20.7, §22.4).

    The digest ``response`` is never stored: ``has_response`` only says one was sent.
    """

    header: str
    """Lower-case header name: ``www-authenticate``, ``proxy-authorization`` …"""
    scheme: str
    """``Digest`` (any case folded to it), others as written, empty when missing."""
    realm: str = ""
    nonce: str = ""
    username: str = ""
    uri: str = ""
    algorithm: str = ""
    qop: str = ""
    """As written, unquoted: ``auth``, ``auth,auth-int`` …"""
    opaque: bool = False
    stale: bool = False
    has_response: bool = False
    """A non-empty ``response`` was sent (an IMS first REGISTER sends ``response=""``)."""


class WarningInfo(NamedTuple):
    """One warning of a Warning header (RFC 3261 §20.43)."""

    code: int | None
    agent: str
    text: str
    """Unquoted and unescaped."""


# -- small helpers ---------------------------------------------------------------------
def _split_top(value: str, sep: str, specials: re.Pattern[str]) -> list[str]:
    """Split at ``sep`` outside quoted strings (and outside ``<…>`` when sep is a comma).

    Only the special characters are visited, so a long value costs little.
    """
    parts: list[str] = []
    start = 0
    in_quote = in_angle = False
    skip = -1  # index of a character escaped by a quoted-pair (RFC 3261 §25.1)
    for m in specials.finditer(value):
        i = m.start()
        c = value[i]
        if i == skip:
            continue
        if in_quote:
            if c == "\\":
                skip = i + 1
            elif c == '"':
                in_quote = False
        elif in_angle:
            in_angle = c != ">"
        elif c == '"':
            in_quote = True
        elif c == "<":
            in_angle = True
        elif c == sep:
            parts.append(value[start:i].strip())
            start = i + 1
    parts.append(value[start:].strip())
    return [p for p in parts if p]


def split_commas(value: str) -> list[str]:
    """Split a multi-valued header at commas outside quotes and ``<…>`` (RFC 3261 §7.3.1).

    Items are stripped; empty items are dropped.
    """
    if "," not in value:
        one = value.strip()
        return [one] if one else []
    if '"' not in value and "<" not in value:
        return [p for p in (s.strip() for s in value.split(",")) if p]
    return _split_top(value, ",", _COMMA_SPECIALS)


def _params(text: str) -> Params:
    """``;a=1;b;c="x;y"`` → ``(("a", "1"), ("b", ""), ("c", '"x;y"'))`` (RFC 3261 §25.1 generic-param)."""
    if not text:
        return ()
    items = text.split(";") if '"' not in text else _split_top(text, ";", _SEMI_SPECIALS)
    out: list[tuple[str, str]] = []
    for item in items:
        name, _, val = item.partition("=")
        name = name.strip().lower()
        if name:
            out.append((name, val.strip()))
    return tuple(out)


def _unescape(text: str) -> str:
    """Resolve quoted-pairs: ``\\"`` → ``"`` (RFC 3261 §25.1)."""
    chars: list[str] = []
    it = iter(text)
    for c in it:
        chars.append(next(it, "") if c == "\\" else c)
    return "".join(chars)


def _unquote(text: str) -> str:
    """The content of a quoted-string; a value without quotes is returned stripped.

    An opening quote that never closes is dropped (lenient on truncated values).
    """
    t = text.strip()
    if not t.startswith('"'):
        return t
    inner = t[1:-1] if len(t) > 1 and t.endswith('"') else t[1:]
    return _unescape(inner) if "\\" in inner else inner


def _closing_quote(text: str) -> int:
    """Index of the quote closing the quoted-string that opens ``text``, or -1."""
    i = 1
    while (j := text.find('"', i)) >= 0:
        k = j
        while k > 1 and text[k - 1] == "\\":
            k -= 1
        if (j - k) % 2 == 0:  # an even run of backslashes escapes only itself
            return j
        i = j + 1
    return -1


def _ascii_int(text: str, limit: int = _MAX32) -> int | None:
    """A whole-string ASCII decimal no greater than ``limit``, else None.

    ``str.isdigit`` would let through digits ``int`` refuses (``²``), and a long run of
    digits would trip Python's int-conversion limit: both are checked first.
    """
    t = text.strip()
    if len(t) > 10 or not t.isdigit() or not t.isascii():
        return None
    n = int(t)
    return n if n <= limit else None


def _port(text: str) -> int | None:
    return _ascii_int(text, 65535)


def _host_port(text: str) -> tuple[str, int | None]:
    """``host[:port]`` with IPv6 references in brackets (RFC 3261 §25.1 hostport)."""
    t = "".join(text.split()) if " " in text or "\t" in text else text  # SWS around ":" (§25.1)
    if t.startswith("["):
        host, _, rest = t[1:].partition("]")
        return host, _port(rest[1:]) if rest.startswith(":") else None
    colons = t.count(":")
    if colons == 0:
        return t, None
    if colons == 1:
        host, _, port = t.partition(":")
        return host, _port(port)
    # An IPv6 address without brackets is invalid, but phones send it
    # (heplify sip_ipv6_udp.pcap: "fe80:0:0:0:21a:a0ff:fe07:32e0:5060"). Only a ninth
    # group after eight full ones is surely a port; otherwise it is all host.
    if colons == 8 and "::" not in t:
        host, _, port = t.rpartition(":")
        return host, _port(port)
    return t, None


def _first(params: Params, name: str) -> str | None:
    for n, v in params:
        if n == name:
            return v
    return None


# -- URIs and name-addr ----------------------------------------------------------------
def _is_scheme(scheme: str) -> bool:
    # RFC 3986 §3.1: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
    if not scheme or not scheme.isascii() or not scheme[0].isalpha():
        return False
    return all(c.isalnum() or c in _SCHEME_EXTRA for c in scheme)


def parse_uri(uri: str) -> SipUri | None:
    """Take a URI apart; None when there is no scheme, or a SIP URI has no host."""
    scheme, colon, rest = uri.strip().partition(":")
    scheme = scheme.lower()  # schemes compare case-insensitively (RFC 3261 §19.1.4)
    if not colon or not _is_scheme(scheme):
        return None
    if scheme == "tel":
        return _tel_uri(rest)
    if scheme not in ("sip", "sips"):
        return SipUri(scheme, "", "", None, ())
    return _sip_uri(scheme, rest)


def _sip_uri(scheme: str, rest: str) -> SipUri | None:
    # RFC 3261 §19.1.1: [userinfo "@"] hostport uri-parameters [headers]. The user part
    # may hold ";" and "?" (user-unreserved) but never an unescaped "@".
    userinfo, at, hostpart = rest.partition("@")
    user = userinfo.partition(":")[0] if at else ""  # the password is never kept
    if not at:
        hostpart = rest
    hostport, _, params = hostpart.partition("?")[0].partition(";")
    host, port = _host_port(hostport.strip())
    if not host:
        return None
    return SipUri(scheme, user.strip(), host, port, _params(params))


def _tel_uri(rest: str) -> SipUri | None:
    # RFC 3966 §3: telephone-subscriber = number *par; the number is kept as written.
    number, _, params = rest.partition(";")
    number = number.strip()
    if not number:
        return None
    return SipUri("tel", number, "", None, _params(params))


def _split_name_addr(text: str) -> tuple[str, str, str]:
    """``(display, uri, text after the URI)`` of one name-addr or addr-spec."""
    display, rest = "", text
    if text.startswith('"'):
        end = _closing_quote(text)
        if end > 0:
            inner = text[1:end]
            display = _unescape(inner) if "\\" in inner else inner
            rest = text[end + 1 :]
    lt = rest.find("<")
    if lt < 0:
        # A bare addr-spec: its ";params" belong to the header (RFC 3261 §20.10).
        uri, _, tail = rest.partition(";")
        return display, uri.strip(), tail
    if not display:
        display = rest[:lt].strip()
    gt = rest.find(">", lt)
    if gt < 0:  # truncated: take the rest as the URI
        return display, rest[lt + 1 :].strip(), ""
    return display, rest[lt + 1 : gt].strip(), rest[gt + 1 :]


def name_addr(value: str | None) -> NameAddr | None:
    """From, To or Contact; with several contacts, the first. None for None/empty."""
    if not value:
        return None
    items = split_commas(value)
    if not items:
        return None
    first = items[0]
    if first == "*":  # Contact: * (RFC 3261 §10.2.2)
        return NameAddr("", "*", None, "", ())
    # An unquoted display name with a comma ("Doe, John <sip:…>", not allowed by the
    # token grammar but written by some UAs) was split before its URI: rejoin it.
    if ":" not in first and len(items) > 1:
        end = next((i for i, item in enumerate(items) if ":" in item), len(items) - 1)
        first = ", ".join(items[: end + 1])
    display, uri, tail = _split_name_addr(first)
    params = _params(tail)
    return NameAddr(display, uri, parse_uri(uri), _first(params, "tag") or "", params)


def header_tag(value: str | None) -> str:
    """The ``tag`` parameter of a From or To value: ``name_addr(value).tag``, without
    taking the URI apart when nothing can hide a ``>`` or a second value (no quotes, no
    commas). The correlator and the diagnosis ask for tags of every message."""
    if not value:
        return ""
    if '"' in value or "," in value:
        na = name_addr(value)
        return na.tag if na else ""
    lt = value.find("<")
    if lt >= 0:
        gt = value.find(">", lt)
        tail = value[gt + 1 :] if gt >= 0 else ""
    else:
        tail = value.partition(";")[2]  # a bare addr-spec: its params are the header's (§20.10)
    if "tag" not in tail.lower():
        return ""
    return _first(_params(tail), "tag") or ""


# -- Via -------------------------------------------------------------------------------
def _via(text: str) -> Via:
    # RFC 3261 §20.42: sent-protocol LWS sent-by *( SEMI via-params ); LWS is allowed
    # around the slashes ("SIP / 2.0 / UDP") and around the colon of sent-by.
    head, _, tail = text.partition(";")
    proto, slash, rest = head.rpartition("/")
    words = rest.split(None, 1)
    transport = words[0].upper() if slash and words else ""
    sent_by = (words[1] if len(words) > 1 else "") if slash else head
    host, port = _host_port(sent_by.strip())
    params = _params(tail)
    known: dict[str, str] = {}
    other: list[tuple[str, str]] = []
    for name, val in params:
        if name in ("branch", "received", "rport", "maddr", "ttl"):
            known.setdefault(name, val)
        else:
            other.append((name, val))
    ttl = known.get("ttl")
    return Via(
        protocol="".join(proto.split()),
        transport=transport,
        host=host,
        port=port,
        branch=known.get("branch", ""),
        received=known.get("received", ""),
        rport=known.get("rport"),
        maddr=known.get("maddr", ""),
        ttl=None if ttl is None else _ascii_int(ttl, 255),
        params=tuple(other),
    )


def vias(values: Iterable[str]) -> tuple[Via, ...]:
    """Every hop of every Via value, in order, comma-joined hops split (RFC 3261 §7.3.1)."""
    return tuple(_via(part) for value in values for part in split_commas(value))


# -- Reason, Warning -------------------------------------------------------------------
def _reason_protocol(protocol: str) -> str:
    # RFC 3326 §2: protocol = "SIP" / "Q.850" / token; ABNF literals are case-insensitive.
    low = protocol.lower()
    if low == "sip":
        return "SIP"
    if low == "q.850":
        return "Q.850"
    return protocol


def _reason(text: str) -> ReasonInfo:
    protocol, _, tail = text.partition(";")
    cause: int | None = None
    reason_text = ""
    other: list[tuple[str, str]] = []
    for name, val in _params(tail):
        if name == "cause":
            cause = _ascii_int(val)
        elif name == "text":
            reason_text = _unquote(val)
        else:
            other.append((name, val))
    return ReasonInfo(_reason_protocol(protocol.strip()), cause, reason_text, tuple(other))


def reasons(values: Iterable[str]) -> tuple[ReasonInfo, ...]:
    """Every reason of every Reason value, in order (RFC 3326 §2)."""
    return tuple(_reason(part) for value in values for part in split_commas(value))


def _warning(text: str) -> WarningInfo:
    # RFC 3261 §20.43: warn-code SP warn-agent SP warn-text. An agent left out
    # ('399  "Max-Forwards zero"', pcap2sipp example.pcap) leaves the text first.
    words = text.split(None, 1)
    code = _ascii_int(words[0], 999) if words else None
    rest = words[1] if len(words) > 1 else ""
    if rest.startswith('"'):
        return WarningInfo(code, "", _unquote(rest))
    agent_text = rest.split(None, 1)
    agent = agent_text[0] if agent_text else ""
    return WarningInfo(code, agent, _unquote(agent_text[1]) if len(agent_text) > 1 else "")


def warnings(values: Iterable[str]) -> tuple[WarningInfo, ...]:
    """Every warning of every Warning value, in order (RFC 3261 §20.43)."""
    return tuple(_warning(part) for value in values for part in split_commas(value))


# -- authentication --------------------------------------------------------------------
def auth(header_name: str, value: str) -> AuthInfo:
    """A WWW-/Proxy-Authenticate challenge or (Proxy-)Authorization credentials.

    RFC 3261 §25.1: auth-scheme LWS auth-param *(COMMA auth-param); quoted values may
    hold commas (``qop="auth,auth-int"``). Only the first challenge of a value is read.
    """
    words = value.split(None, 1)
    scheme, rest = "", value
    if words and "=" not in words[0]:
        scheme, rest = words[0], words[1] if len(words) > 1 else ""
    if scheme.lower() == "digest":
        scheme = "Digest"
    kept: dict[str, str] = {}
    has_response = False
    for item in _split_top(rest, ",", _COMMA_SPECIALS) if '"' in rest else rest.split(","):
        name, _, val = item.partition("=")
        name = name.strip()
        if len(name.split()) > 1:  # "Digest realm=…": a second challenge starts (RFC 7235 §4.1)
            break
        name = name.lower()
        if name == "response":  # the secret: note that it exists, never keep it
            has_response = has_response or bool(_unquote(val))
        elif name not in kept:
            kept[name] = val

    def text(name: str) -> str:
        return _unquote(kept.get(name, ""))

    return AuthInfo(
        header=header_name.strip().lower(),
        scheme=scheme,
        realm=text("realm"),
        nonce=text("nonce"),
        username=text("username"),
        uri=text("uri"),
        algorithm=text("algorithm"),
        qop=text("qop"),
        opaque="opaque" in kept,
        stale=_unquote(kept.get("stale", "")).lower() == "true",
        has_response=has_response,
    )


# -- numbers ---------------------------------------------------------------------------
def parse_cseq(value: str) -> tuple[int, str] | None:
    """``"1 INVITE"`` → ``(1, "INVITE")``; None unless a 32-bit number and a method
    (RFC 3261 §8.1.1.5, §20.16)."""
    words = value.split()
    if len(words) < 2:
        return None
    number = _ascii_int(words[0])
    return None if number is None else (number, words[1])


def parse_int(value: str | None) -> int | None:
    """The leading integer of Expires, Min-Expires, Max-Forwards or Retry-After.

    Retry-After may go on with a comment and ``;duration`` (RFC 3261 §20.33): only the
    leading delta-seconds is read. Values past 2**32-1, the range of delta-seconds
    (RFC 3261 §20.19), are clamped to it.
    """
    if not value:
        return None
    text = value.lstrip()
    ndigits = len(text) - len(text.lstrip(_DIGITS))
    if ndigits == 0:
        return None
    if ndigits > 10:
        return _MAX32
    return min(int(text[:ndigits]), _MAX32)
