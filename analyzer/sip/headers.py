"""Lazy access to a SIP message's header block.

The block is split into (name, value) pairs only when a header other than the eagerly
read Call-ID and CSeq is first asked for, so listing messages never pays for it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from typing import TypeVar

_T = TypeVar("_T")
_A = TypeVar("_A")

# RFC 3261 §7.3.3 and the IANA header-field registry: compact form -> full name.
COMPACT_FORMS: dict[str, str] = {
    "a": "accept-contact",
    "b": "referred-by",
    "c": "content-type",
    "d": "request-disposition",
    "e": "content-encoding",
    "f": "from",
    "i": "call-id",
    "j": "reject-contact",
    "k": "supported",
    "l": "content-length",
    "m": "contact",
    "n": "identity-info",
    "o": "event",
    "r": "refer-to",
    "s": "subject",
    "t": "to",
    "u": "allow-events",
    "v": "via",
    "x": "session-expires",
    "y": "identity",
}


_FULL_TO_COMPACT: dict[str, str] = {full: short for short, full in COMPACT_FORMS.items()}


def canonical_name(name: str) -> str:
    """Lower-case full header name, compact forms expanded (RFC 3261 §7.3.3)."""
    low = name.strip().lower()
    return COMPACT_FORMS.get(low, low)


def decode_text(data: bytes) -> str:
    """Header text as str: UTF-8 (RFC 3261 §7.3.1), undecodable bytes replaced."""
    return data.decode("utf-8", "replace")


def split_header_lines(head: str) -> list[tuple[str, str]]:
    """Unfold continuation lines (RFC 3261 §7.3.1) and split ``name: value`` pairs.

    ``head`` is the header block without the start line. Lines without a colon are
    skipped (they are junk, and the message carries a defect for them elsewhere).
    """
    pairs: list[tuple[str, str]] = []
    compact = COMPACT_FORMS
    # Continuation lines are gathered and joined once: appending each to the value in
    # turn costs time quadratic in their number (a hostile header folded 100,000 times).
    folds: list[str] = []
    for line in head.replace("\r\n", "\n").split("\n"):
        if not line:
            continue
        if line[0] in " \t" and pairs:
            if part := line.strip():
                folds.append(part)
            continue
        if folds:
            _unfold(pairs, folds)
        name, sep, value = line.partition(":")
        if sep:
            low = name.strip().lower()
            pairs.append((compact.get(low, low), value.strip()))
    if folds:
        _unfold(pairs, folds)
    return pairs


def _unfold(pairs: list[tuple[str, str]], folds: list[str]) -> None:
    """Join the continuation lines ``folds`` to the last header's value (then empty ``folds``)."""
    name, value = pairs[-1]
    pairs[-1] = (name, " ".join([value, *folds]).strip())
    folds.clear()


@functools.cache
def _finder(key: str) -> re.Pattern[bytes]:
    """Every ``key`` header line (full or compact form, any case) in a raw block that starts
    with a newline: its value up to the end of the line, and a blank at the start of the
    next line when the value is folded onto it."""
    forms = (key, _FULL_TO_COMPACT[key]) if key in _FULL_TO_COMPACT else (key,)
    names = b"|".join(re.escape(f.encode()) for f in forms)
    return re.compile(rb"\n(?:" + names + rb")[ \t]*:([^\n]*)(\n[ \t])?", re.IGNORECASE)


@functools.cache
def _lookup(name: str) -> tuple[str, re.Pattern[bytes]]:
    """The canonical name of a header asked for as ``name``, and its :func:`_finder`."""
    key = canonical_name(name)
    return key, _finder(key)


def _raw_values(lines: list[tuple[bytes, bytes]]) -> list[bytes] | None:
    """The values of the header lines a :func:`_finder` found, blanks removed; None when a
    value is folded onto more lines (RFC 3261 §7.3.1): then the block must be split properly."""
    values: list[bytes] = []
    for value, fold in lines:
        if fold:
            return None
        values.append(value.strip())
    return values


class Headers:
    """Header fields of one message, parsed on first use.

    Names are looked up case-insensitively, compact forms included. ``get`` returns
    the first occurrence; ``get_all`` every occurrence in order (a comma-joined
    multi-value header stays one value: split it with ``analyzer.sip.fields``).
    Each header is looked up once: the values, and what later layers parse from them
    (:meth:`memo`), are kept, because the correlator and the diagnosis ask for the same
    From, To and Via many times per message.
    """

    __slots__ = ("_data", "_end", "_found", "_pairs", "_start")

    def __init__(self, data: bytes, start: int = 0, end: int | None = None) -> None:
        # The block is ``data[start:end]``: the message's raw bytes are shared, not copied
        # (a call store holds every message of an open call).
        self._data = data
        self._start = start
        # an empty block may be given ending before it starts (no header lines): as a slice
        # would read it, and never so to mypyc's bytes slice (analyzer/native.py)
        self._end = len(data) if end is None else end if end > start else start
        self._pairs: list[tuple[str, str]] | None = None
        self._found: dict[str, object] | None = None

    def _head(self) -> bytes:
        return self._data[self._start : self._end]

    def block(self) -> tuple[bytes, int, int]:
        """Where the block is: ``data``, ``start``, ``end`` (``Headers(*h.block())``
        is ``h`` again, with nothing looked up yet)."""
        return self._data, self._start, self._end

    def __eq__(self, other: object) -> bool:
        """Equal when the header blocks are the same bytes: two parses of one message are
        equal, whatever each has looked up or memoised since."""
        if not isinstance(other, Headers):
            return NotImplemented
        return self._head() == other._head()

    __hash__ = None  # type: ignore[assignment]  # mutable caches: equal by content, not hashable

    def _load(self) -> list[tuple[str, str]]:
        if self._pairs is None:
            self._pairs = split_header_lines(decode_text(self._head()))
        return self._pairs

    def _values(self, name: str) -> tuple[str, ...]:
        found = self._found
        if found is None:
            found = self._found = {}
        else:
            hit = found.get(name)
            if hit is not None:
                return hit  # type: ignore[return-value]
        key, finder = _lookup(name)
        values: tuple[str, ...] | None = None
        if self._pairs is None:
            # One header asked for: find it in the raw block rather than split them all.
            data, start, end = self._data, self._start - 1, self._end
            if start < 0 or data[start] != 0x0A:  # no newline before the block (a bare CR ends the start line)
                data, start, end = b"\n" + self._head(), 0, end - start
            lines = finder.findall(data, start, end)
            if not lines:
                values = ()
            elif len(lines) == 1 and not lines[0][1]:  # the usual: once, on one line
                values = (lines[0][0].strip().decode("utf-8", "replace"),)
            else:
                raw = _raw_values(lines)
                if raw is not None:
                    values = tuple(decode_text(v) for v in raw)
        if values is None:
            values = tuple(v for n, v in self._load() if n == key)
        found[name] = values
        return values

    def get(self, name: str) -> str | None:
        values = self._values(name)
        return values[0] if values else None

    def first_line(self, name: str) -> bytes | None:
        """The raw value of the first ``name`` header, blanks removed, when :meth:`get` would
        give exactly its text: the header is on one line of ASCII and nothing has split the
        block yet. None otherwise (absent, folded, not ASCII …): then ask :meth:`get`."""
        if self._pairs is not None:
            return None
        data, start = self._data, self._start - 1
        if start < 0 or data[start] != 0x0A:
            return None
        m = _lookup(name)[1].search(data, start, self._end)
        if m is None or m.group(2):
            return None
        value: bytes = m.group(1).strip()
        return value if value.isascii() else None

    def get_all(self, name: str) -> list[str]:
        return list(self._values(name))

    def memo(self, key: str, make: Callable[[_A], _T], arg: _A) -> _T:
        """What ``make(arg)`` parses from these headers, made once (``key`` names it: ``"@to"``).
        A function and its argument rather than a closure, made at every call: the call store
        asks for the top Via branch of every message, the diagnosis for tags."""
        found = self._found
        if found is None:
            found = self._found = {}
        elif key in found:
            return found[key]  # type: ignore[return-value]
        value = found[key] = make(arg)
        return value

    def items(self) -> list[tuple[str, str]]:
        return list(self._load())

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None
