"""Masking secrets in SIP messages before they leave sipflow (``--redact``).

A :class:`Redaction` names the headers whose values are masked whole (``--redact
P-Asserted-Identity``). Credentials are masked in any case: in ``Authorization`` and
``Proxy-Authorization`` (RFC 3261 §20.7, §20.28) a digest keeps who and where (username,
realm, uri …) and loses the rest, the response first of all: with the nonce it is enough
for an offline guess at the password (RFC 7616 §5.12). Any other scheme (Basic is a
password in base64) keeps only its name. Naming a credentials header masks it whole,
user name included.

Two forms of one rule:

* :meth:`Redaction.text` for people (terminal, HTML): a masked value reads ``…redacted…``.
* :meth:`Redaction.raw` for bytes that go back into a capture: every masked byte becomes
  ``x``, so the message keeps its length and the IP/UDP/TCP lengths, checksums aside, and
  Content-Length stay true. :func:`mask_frames` carries that into the frames that held
  the message.

Only the header block is read (up to the first empty line, RFC 3261 §7): a header-like
line in a body (an SDP, a message/sipfrag) is not a header of this message. Names are
case-insensitive and compact forms count (RFC 3261 §7.3.3); continuation lines belong to
the header they follow (§7.3.1); every occurrence is masked.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from analyzer.errors import UsageError
from analyzer.sip.fields import name_addr, split_commas
from analyzer.sip.headers import COMPACT_FORMS, canonical_name
from analyzer.sip.message import SipMessage

__all__ = ["CREDENTIAL_HEADERS", "DEFAULT", "REDACTED", "Redaction", "mask_credentials", "mask_frames", "scrub"]

REDACTED = "…redacted…"
MASK = ord("x")
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization"})
# Digest parameters that identify the user and the protected space (dig-resp, RFC 3261
# §25.1); everything else (response, nonce, cnonce, unknown extensions) is masked.
KEPT_AUTH_PARAMS = frozenset({"username", "realm", "uri", "algorithm", "qop", "nc", "opaque", "userhash"})
MIN_SECRET = 3
"""Shorter values are not searched for in free text (they would match everywhere)."""

_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"  # RFC 3261 §25.1 token
_NAME = re.compile(rf"^{_TOKEN}$")
_FIELD = re.compile(rf"^({_TOKEN})[ \t]*:[ \t]*")
_FIELD_B = re.compile(rf"({_TOKEN})[ \t]*:".encode())
_AUTH_PARAM = re.compile(r'([A-Za-z0-9_.!%*+`\'~-]+)[ \t]*=[ \t]*("(?:[^"\\]|\\.)*"|[^\s,]*)')
_AUTH_PARAM_B = re.compile(rb'([A-Za-z0-9_.!%*+`\'~-]+)[ \t\r\n]*=[ \t\r\n]*("(?:[^"\\]|\\.)*"|[^\s,]*)')
_AUTH_SCHEME = re.compile(r"[ \t]*([A-Za-z0-9_.!%*+`'~-]+)(.*)", re.DOTALL)
_AUTH_SCHEME_B = re.compile(rb"[ \t]*[A-Za-z0-9_.!%*+`'~-]+")
_KEEP_BYTES = frozenset(b" \t\r\n")
_DIGEST_SEPARATORS = frozenset(b' \t\r\n,="')
_FULL_TO_COMPACT = {full: short for short, full in COMPACT_FORMS.items()}


@dataclass(frozen=True, slots=True)
class Redaction:
    """What to mask: ``headers`` whole (canonical names), credentials' secrets always."""

    headers: frozenset[str] = frozenset()
    """Lower-case full names (compact forms resolved) of the headers masked whole."""
    _quick: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = self.headers | CREDENTIAL_HEADERS
        forms = sorted(names | {_FULL_TO_COMPACT[n] for n in names if n in _FULL_TO_COMPACT})
        quick = re.compile(rf"^(?:{'|'.join(map(re.escape, forms))})[ \t]*:", re.IGNORECASE | re.MULTILINE)
        object.__setattr__(self, "_quick", quick)

    @classmethod
    def of(cls, names: Iterable[str]) -> Redaction:
        """From ``--redact`` values; raises :class:`UsageError` for a name that is not a token."""
        out = set()
        for name in names:
            if not _NAME.match(name.strip()):
                raise UsageError(f"--redact {name!r}: not a header name")
            out.add(canonical_name(name))
        return cls(frozenset(out))

    def masks(self, name: str) -> bool:
        """True when the value of header ``name`` is masked whole."""
        return canonical_name(name) in self.headers

    def touches(self, name: str) -> bool:
        """True when any part of header ``name`` is masked."""
        key = canonical_name(name)
        return key in self.headers or key in CREDENTIAL_HEADERS

    # -- one value --------------------------------------------------------------------
    def value(self, name: str, value: str) -> str:
        """One header value for people: masked whole, its credentials masked, or as it is."""
        key = canonical_name(name)
        if key in self.headers:
            return REDACTED
        if key in CREDENTIAL_HEADERS:
            return _mask_credential_value(value)
        return value

    # -- a whole message --------------------------------------------------------------
    def text(self, text: str) -> str:
        """A message as text for people; masked values read ``…redacted…``, folded ones unfolded."""
        if self._quick.search(text) is None:
            return text
        # Lines end at LF only: str.splitlines would also cut at U+2028, \x1c … inside a
        # value and leave the rest of it unmasked.
        lines = text.split("\n")
        lines = [line + "\n" for line in lines[:-1]] + lines[-1:]
        out: list[str] = []
        i = 0
        while i < len(lines):
            if not lines[i].rstrip("\r\n"):  # the empty line: the body follows (RFC 3261 §7)
                out += lines[i:]
                break
            m = _FIELD.match(lines[i])
            if m is None or not self.touches(m.group(1)):
                out.append(lines[i])
                i += 1
                continue
            value = lines[i][m.end() :].rstrip("\r\n")
            eol = lines[i][len(lines[i].rstrip("\r\n")) :]
            i += 1
            while i < len(lines) and lines[i][:1] in (" ", "\t"):
                value += " " + lines[i].strip()
                eol = lines[i][len(lines[i].rstrip("\r\n")) :]
                i += 1
            out.append(f"{m.group(1)}: {self.value(m.group(1), value)}{eol}")
        return "".join(out)

    def raw(self, data: bytes) -> bytes:
        """A message's bytes with masked values overwritten by ``x``: same length, same lines."""
        if self._quick.search(data[: _head_end(data)].decode("latin-1")) is None:
            return data
        return self._overwrite_fields(data, _raw_fields(data))

    def loose(self, data: bytes) -> bytes:
        """Bytes that may hold SIP anywhere (a frame no message was read from, an ICMP error
        quoting one), masked as :meth:`raw` masks a header block: every line of ``data`` that
        starts a masked header, and the lines that continue it. No body is told apart here."""
        if self._quick.search(data.decode("latin-1")) is None:
            return data
        return self._overwrite_fields(data, _raw_fields(data, stop_at_empty=False))

    def _overwrite_fields(self, data: bytes, fields: list[tuple[str, int, int]]) -> bytes:
        out = bytearray(data)
        for name, start, end in fields:
            key = canonical_name(name)
            if key in self.headers:
                _overwrite(out, start, end, ())
            elif key in CREDENTIAL_HEADERS:
                _overwrite(out, start, end, _kept_credential_spans(data, start, end))
        return bytes(out)

    # -- what the masked values were ---------------------------------------------------
    def secrets(self, msg: SipMessage) -> set[str]:
        """The values this redaction hides in ``msg``, and the parts of them that reports
        quote (a From's ``user@host``, a Contact's URI, a To tag …), to :func:`scrub` from
        free text such as explanations. Credentials' masked parameters are included."""
        out: set[str] = set()
        if not self._quick.search(msg.raw[: _head_end(msg.raw)].decode("latin-1")):
            return out
        for name, value in msg.headers:
            if name in self.headers:
                out |= _value_parts(value)
            elif name in CREDENTIAL_HEADERS:
                out |= {v.strip('"') for k, v in _AUTH_PARAM.findall(value) if k.lower() not in KEPT_AUTH_PARAMS}
        return {s for s in out if len(s) >= MIN_SECRET}


DEFAULT = Redaction()
"""Credentials only: what every output masks when no ``--redact`` is given."""


def mask_credentials(text: str) -> str:
    """``text`` (a message) with ``Authorization`` / ``Proxy-Authorization`` values masked."""
    return DEFAULT.text(text)


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of each secret replaced by ``…redacted…`` (longest first)."""
    for s in sorted(secrets, key=len, reverse=True):
        if s in text:
            text = text.replace(s, REDACTED)
    return text


# -- text ---------------------------------------------------------------------------------


def _mask_credential_value(value: str) -> str:
    m = _AUTH_SCHEME.match(value)
    if m is None:
        return REDACTED
    scheme, rest = m.group(1), m.group(2)
    if scheme.lower() != "digest":
        return f"{scheme} {REDACTED}" if rest.strip() else scheme
    params = []
    for name, val in _AUTH_PARAM.findall(rest):
        kept = name.lower() in KEPT_AUTH_PARAMS
        params.append(f"{name}={val}" if kept else f'{name}="{REDACTED}"')
    return f"{scheme} {','.join(params)}"


def _value_parts(value: str) -> set[str]:
    """A value and, for a name-addr list (From, To, Contact, P-Asserted-Identity …), the
    display names, URIs, ``user@host`` and tags in it."""
    out = {value}
    for item in split_commas(value):
        out.add(item)
        na = name_addr(item)
        if na is None:
            continue
        out |= {na.display, na.uri, na.tag}
        p = na.parsed
        if p is not None and p.user:
            out |= {p.user, f"{p.user}@{p.host}"}
    return {s for s in out if s}


# -- bytes --------------------------------------------------------------------------------


def _head_end(data: bytes) -> int:
    """Where the header block ends (its empty line included); the body is not looked at."""
    ends = [i for i in (data.find(b"\r\n\r\n"), data.find(b"\n\n")) if i >= 0]
    if not ends:
        return len(data)
    i = min(ends)
    return i + (4 if data.startswith(b"\r\n\r\n", i) else 2)


def _raw_fields(data: bytes, stop_at_empty: bool = True) -> list[tuple[str, int, int]]:
    """(name, value start, value end) of each header; a value runs over its continuation
    lines (RFC 3261 §7.3.1) and ends before the line break."""
    end = _head_end(data) if stop_at_empty else len(data)
    fields: list[tuple[str, int, int]] = []
    pos = 0
    while pos < end:
        nl = data.find(b"\n", pos, end)
        stop = nl if nl >= 0 else end
        line_end = stop - 1 if stop > pos and data[stop - 1] == 0x0D else stop
        if line_end == pos and stop_at_empty:
            break  # the empty line
        if line_end == pos:
            fields.append(("", pos, pos))  # in loose mode: ends the header before it
        elif data[pos] in (0x20, 0x09) and fields:
            name, start, _ = fields[-1]
            fields[-1] = (name, start, line_end)
        else:
            m = _FIELD_B.match(data, pos, line_end)
            # A line that is no header still ends the one before it.
            fields.append((m.group(1).decode("ascii"), m.end(), line_end) if m else ("", pos, pos))
        pos = stop + 1
    return fields


def _kept_credential_spans(data: bytes, start: int, end: int) -> list[tuple[int, int]]:
    """Spans of a credentials value left as they are: the scheme, every parameter name,
    and for a digest the values of :data:`KEPT_AUTH_PARAMS` (everything else masked)."""
    m = _AUTH_SCHEME_B.match(data, start, end)
    if m is None:
        return []
    kept = [(start, m.end())]
    if data[start : m.end()].strip().lower() != b"digest":
        return kept
    for p in _AUTH_PARAM_B.finditer(data, m.end(), end):
        kept.append(p.span(1))
        if p.group(1).decode("ascii").lower() in KEPT_AUTH_PARAMS:
            kept.append(p.span(2))
    return kept


def _overwrite(out: bytearray, start: int, end: int, kept: Sequence[tuple[int, int]]) -> None:
    """``x`` over every byte of ``[start, end)`` outside ``kept``, but line breaks and the
    blanks that fold lines (so the header block keeps its shape) and, in credentials,
    the separators of their parameters."""
    keep = _DIGEST_SEPARATORS if kept else _KEEP_BYTES
    spared = bytearray(end - start)
    for a, b in kept:
        spared[a - start : b - start] = b"\x01" * (b - a)
    for i in range(start, end):
        if not spared[i - start] and out[i] not in keep:
            out[i] = MASK


# -- frames -------------------------------------------------------------------------------

_PROBE = 24


def mask_frames(raw: bytes, masked: bytes, frames: Sequence[bytes]) -> list[bytes] | None:
    """The ``frames`` that carried message ``raw`` (in order: IP fragments, TCP segments),
    with the bytes that :meth:`Redaction.raw` changed (``masked``) changed in them too.

    Each frame's share of the message is found by matching the message's next bytes
    against it. Returns None when a changed byte cannot be placed (a WebSocket frame's
    XOR mask, compression …) or when a frame that got no share of the message holds a
    masked value (a retransmitted segment): the caller must then leave these frames out.
    """
    if raw == masked:
        return list(frames)
    out = [bytearray(f) for f in frames]
    placed = [False] * len(raw)
    shareless: list[int] = []
    pos = 0
    for i, data in enumerate(frames):
        at, n = _longest_match(data, raw, pos) if pos < len(raw) else (0, 0)
        if n == 0:
            shareless.append(i)
            continue
        out[i][at : at + n] = masked[pos : pos + n]
        placed[pos : pos + n] = [True] * n
        pos += n
    changed = _changed(raw, masked)
    if not all(placed[i] for i in changed):
        return None
    # A frame that got no share of the message (a retransmitted segment) may still hold
    # a copy of a secret.
    secrets = [s for s in _changed_runs(raw, changed) if len(s) >= MIN_SECRET]
    if any(s in frames[i] for i in shareless for s in secrets):
        return None
    return [bytes(f) for f in out]


def changed_runs(raw: bytes, masked: bytes) -> list[bytes]:
    """The original bytes of each run that :meth:`Redaction.raw` overwrote, long enough to
    look for elsewhere (at least :data:`MIN_SECRET` bytes)."""
    return [s for s in _changed_runs(raw, _changed(raw, masked)) if len(s) >= MIN_SECRET]


def mask_copies(data: bytes, secrets: Iterable[bytes]) -> bytes:
    """``data`` with every copy of each secret overwritten by ``x``, and a tail that starts
    one (an ICMP error quotes the first bytes of the datagram it is about, RFC 792, RFC 1812
    §4.3.2.3: the quote can end inside a value)."""
    out = data
    for s in sorted(set(secrets), key=len, reverse=True):
        out = out.replace(s, bytes([MASK]) * len(s))
        for n in range(min(len(s) - 1, len(out)), MIN_SECRET - 1, -1):
            if out.endswith(s[:n]):
                out = out[:-n] + bytes([MASK]) * n
                break
    return out


def _changed(raw: bytes, masked: bytes) -> list[int]:
    return [i for i, (a, b) in enumerate(zip(raw, masked, strict=True)) if a != b]


def _longest_match(data: bytes, raw: bytes, pos: int) -> tuple[int, int]:
    """(offset in ``data``, length) of the longest run of ``raw[pos:]``'s start found in it."""
    probe = raw[pos : pos + _PROBE]
    best = (0, 0)
    j = data.find(probe)
    while j >= 0:
        n = _common_prefix(data, j, raw, pos)
        if n > best[1]:
            best = (j, n)
        j = data.find(probe, j + 1)
    return best


def _common_prefix(a: bytes, ai: int, b: bytes, bi: int) -> int:
    lo, hi = 0, min(len(a) - ai, len(b) - bi)
    while lo < hi:  # the longest equal prefix, by halving (slice compares run in C)
        mid = (lo + hi + 1) // 2
        if a[ai : ai + mid] == b[bi : bi + mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _changed_runs(raw: bytes, changed: list[int]) -> list[bytes]:
    """The original bytes of each run of consecutive changed positions."""
    runs: list[bytes] = []
    start = prev = -2
    for i in changed:
        if i != prev + 1:
            if start >= 0:
                runs.append(raw[start : prev + 1])
            start = i
        prev = i
    if start >= 0:
        runs.append(raw[start : prev + 1])
    return runs
