"""Streaming writers for rows described by a column catalogue: table, csv, json, jsonl.

A row is the list of its column values (``analyzer.listing.MessageRows`` makes them).
"""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Iterable
from typing import TextIO

from analyzer.report.columns import Column, Value
from analyzer.sip.message import SipMessage
from analyzer.sip.redact import REDACTED, Redaction

FORMATS = ("table", "csv", "json", "jsonl")

Row = list[Value]
"""One message's column values, in the order of its columns."""

COLUMN_HEADERS = {"call_id": "call-id", "cseq": "cseq"}
"""The header each message column is read from (the others come from the start line and the
packet): under ``--redact`` of that header the column is masked."""


def redact_columns(columns: tuple[Column, ...], redaction: Redaction) -> tuple[Column, ...]:
    """``columns`` with those read from a header ``redaction`` masks showing ``…redacted…``."""

    def masked(_msg: SipMessage) -> Value:
        return REDACTED

    return tuple(
        dataclasses.replace(c, get=masked) if redaction.masks(COLUMN_HEADERS.get(c.name, "")) else c for c in columns
    )


def _cell(value: Value, width: int) -> str:
    text = "" if value is None else str(value)
    text = text.replace("\n", " ").replace("\r", " ")
    if len(text) > width:
        return text[: width - 1] + "…"
    return text.ljust(width)


TEXT_COLUMNS = frozenset(
    {"call_id", "caller", "callee", "final_reason", "explanation", "hint", "reason", "src", "dst", "cseq"}
)
"""Columns of text from the wire, defused in every CSV (calls and messages). The CSeq column
is the method alone when the number is bad, and a CSeq method may start with + or - (a
token, RFC 3261 §25.1); a request's own method starts with a letter (the parser's test)."""


_FORMULA_FIRST = frozenset("=+-@\t\r")
"""First characters that make a spreadsheet run a cell as a formula."""


def defuse(value: Value) -> Value:
    """Cells a spreadsheet would run as a formula get a leading quote (OWASP CSV injection)."""
    if isinstance(value, str) and value[:1] in _FORMULA_FIRST:
        return "'" + value
    return value


class RowText:
    """One output format: the text before the rows, each row's text, the text after.

    A row's text depends on that row alone, so rows can be made into text where they are
    made (the processes of ``--jobs``) and only written out in order here (:func:`write_lines`).
    """

    first = ""
    """Written before the first row's text (after :meth:`head`)."""
    between = ""
    """Written between two rows' texts."""

    def __init__(self, columns: tuple[Column, ...]) -> None:
        self.columns = columns

    def head(self) -> str:
        return ""

    def line(self, cells: Row) -> str:
        raise NotImplementedError

    def tail(self, rows: int) -> str:
        return ""


class TableText(RowText):
    """A fixed-width text table (widths come from the catalogue)."""

    def head(self) -> str:
        columns = self.columns
        title = " ".join(_cell(c.title, c.width) for c in columns).rstrip()
        return title + "\n" + " ".join("-" * c.width for c in columns) + "\n"

    def line(self, cells: Row) -> str:
        return " ".join(_cell(v, c.width) for c, v in zip(self.columns, cells, strict=True)).rstrip() + "\n"


class CsvText(RowText):
    """RFC 4180 rows under a header of column names, wire text defused (:func:`defuse`).

    A row none of whose cells holds a comma, a double quote or a line end is the cells
    joined by commas: csv's writer would quote none of them, and it takes three times as
    long (measured: 2.4 µs a message row, against 0.8). Any other row goes to the writer.
    """

    def __init__(self, columns: tuple[Column, ...]) -> None:
        super().__init__(columns)
        self._lines: list[str] = []
        # csv's writer hands over each row as one string, to the ``write`` it is given
        self._writer = csv.writer(Appender(self._lines), lineterminator="\n")
        self._text = [i for i, c in enumerate(columns) if c.name in TEXT_COLUMNS]  # the others hold no wire text
        self._commas = len(columns) - 1
        """Commas in a joined row whose cells hold none (a row of one cell is always the writer's:
        it quotes an empty one)."""

    def head(self) -> str:
        self._writer.writerow([c.name for c in self.columns])
        return self._lines.pop()

    def line(self, cells: Row) -> str:
        for i in self._text:  # defuse, written out: five calls a message row cost 0.3 µs
            v = cells[i]
            if isinstance(v, str) and v[:1] in _FORMULA_FIRST:
                cells[i] = "'" + v
        joined = ",".join(["" if v is None else str(v) for v in cells])
        if (
            joined.count(",") == self._commas
            and self._commas
            and '"' not in joined
            and "\n" not in joined
            and "\r" not in joined
        ):
            return joined + "\n"
        self._writer.writerow(cells)
        return self._lines.pop()


class Appender:
    """A file-like ``write`` that keeps what it is given, in a list (csv's writer hands over
    each row as one string)."""

    __slots__ = ("write",)

    def __init__(self, lines: list[str]) -> None:
        self.write = lines.append


class JsonLinesText(RowText):
    """One JSON object a line."""

    def __init__(self, columns: tuple[Column, ...]) -> None:
        import json  # here: only the JSON formats need it (5 ms of every start)

        super().__init__(columns)
        self._names = [c.name for c in columns]
        self._dumps = json.JSONEncoder(ensure_ascii=False).encode

    def line(self, cells: Row) -> str:
        return self._object(cells) + "\n"

    def _object(self, cells: Row) -> str:
        return self._dumps(dict(zip(self._names, cells, strict=True)))


class JsonText(JsonLinesText):
    """A JSON array of objects, one a line."""

    first = "\n "
    between = ",\n "

    def head(self) -> str:
        return "["

    def line(self, cells: Row) -> str:
        return self._object(cells)

    def tail(self, rows: int) -> str:
        return "\n]\n" if rows else "]\n"


TEXTS: dict[str, type[RowText]] = {"table": TableText, "csv": CsvText, "json": JsonText, "jsonl": JsonLinesText}
"""One catalogue of columns drives the DataFrame, the CSV header, JSON keys and the terminal table."""

_BATCH = 512
"""Rows' texts written at a time: fewer, larger writes."""


def write_lines(out: TextIO, text: RowText, lines: Iterable[str]) -> int:
    """``text``'s head, the rows' ``lines`` (made by ``text.line``) and its tail; the number of rows."""
    out.write(text.head())
    between = text.between
    n = 0
    batch: list[str] = []
    for line in lines:
        batch.append(line)
        if len(batch) == _BATCH:
            out.write((between if n else text.first) + between.join(batch))
            n += _BATCH
            batch.clear()
    if batch:
        out.write((between if n else text.first) + between.join(batch))
        n += len(batch)
    out.write(text.tail(n))
    return n
