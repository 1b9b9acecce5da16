"""Streaming writers for rows described by a column catalogue: table, csv, json, jsonl.

A row is the list of its column values (``analyzer.listing.MessageRows`` makes them).
"""

from __future__ import annotations

import csv
import dataclasses
import json
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


def write_table(out: TextIO, columns: tuple[Column, ...], rows: Iterable[Row]) -> int:
    """A fixed-width text table, streamed (widths come from the catalogue)."""
    out.write(" ".join(_cell(c.title, c.width) for c in columns).rstrip() + "\n")
    out.write(" ".join("-" * c.width for c in columns) + "\n")
    n = 0
    for cells in rows:
        out.write(" ".join(_cell(v, c.width) for c, v in zip(columns, cells, strict=True)).rstrip())
        out.write("\n")
        n += 1
    return n


def write_csv(out: TextIO, columns: tuple[Column, ...], rows: Iterable[Row]) -> int:
    w = csv.writer(out, lineterminator="\n")
    w.writerow([c.name for c in columns])
    text = [i for i, c in enumerate(columns) if c.name in TEXT_COLUMNS]  # the others hold no wire text
    n = 0
    batch: list[Row] = []
    for cells in rows:
        for i in text:
            cells[i] = defuse(cells[i])
        batch.append(cells)
        if len(batch) == 512:  # fewer, larger writes: a quarter of the writer's time
            w.writerows(batch)
            batch.clear()
            n += 512
    w.writerows(batch)
    return n + len(batch)


TEXT_COLUMNS = frozenset(
    {"call_id", "caller", "callee", "final_reason", "explanation", "hint", "reason", "src", "dst", "cseq"}
)
"""Columns of text from the wire, defused in every CSV (calls and messages). The CSeq column
is the method alone when the number is bad, and a CSeq method may start with + or - (a
token, RFC 3261 §25.1); a request's own method starts with a letter (the parser's test)."""


def defuse(value: Value) -> Value:
    """Cells a spreadsheet would run as a formula get a leading quote (OWASP CSV injection)."""
    if isinstance(value, str) and value and value[0] in "=+-@\t\r":
        return "'" + value
    return value


def write_jsonl(out: TextIO, columns: tuple[Column, ...], rows: Iterable[Row]) -> int:
    names = [c.name for c in columns]
    n = 0
    for cells in rows:
        out.write(json.dumps(dict(zip(names, cells, strict=True)), ensure_ascii=False))
        out.write("\n")
        n += 1
    return n


def write_json(out: TextIO, columns: tuple[Column, ...], rows: Iterable[Row]) -> int:
    """A JSON array, streamed one element at a time."""
    names = [c.name for c in columns]
    n = 0
    out.write("[")
    for cells in rows:
        out.write(",\n " if n else "\n ")
        out.write(json.dumps(dict(zip(names, cells, strict=True)), ensure_ascii=False))
        n += 1
    out.write("\n]\n" if n else "]\n")
    return n


WRITERS = {"table": write_table, "csv": write_csv, "json": write_json, "jsonl": write_jsonl}
