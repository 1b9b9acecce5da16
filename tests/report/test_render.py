"""Streaming writers for message rows: CSV cells a spreadsheet would run are defused."""

from __future__ import annotations

import csv
import io

from analyzer.report.columns import MESSAGE_COLUMNS
from analyzer.report.render import write_rows
from analyzer.sip.message import Origin
from analyzer.sip.parser import parse_message

ORIGIN = Origin(3, (3,), 1_700_000_000_123_456_000, "10.0.0.1", 5060, "10.0.0.2", 5080, "udp")


def _rows(*raw: bytes) -> list[dict[str, str]]:
    out = io.StringIO()
    rows = [[c.get(parse_message(r, ORIGIN)) for c in MESSAGE_COLUMNS] for r in raw]
    assert write_rows(out, "csv", MESSAGE_COLUMNS, rows) == len(raw)
    return list(csv.DictReader(io.StringIO(out.getvalue())))


def test_wire_text_that_starts_a_formula_gets_a_quote() -> None:
    request, response = _rows(
        b"CMD sip:a@b SIP/2.0\r\ni: @SUM(1)\r\nCSeq: x -X\r\n\r\n",
        b"SIP/2.0 486 =1+1\r\ni: =HYPERLINK(1)\r\nCSeq: 7 INVITE\r\n\r\n",
    )
    assert (request["method"], request["call_id"], request["cseq"]) == ("CMD", "'@SUM(1)", "'-X")
    assert (response["reason"], response["call_id"], response["cseq"]) == ("'=1+1", "'=HYPERLINK(1)", "7 INVITE")


def test_other_cells_are_written_as_they_are() -> None:
    (row,) = _rows(b"SIP/2.0 200 OK\r\nCall-ID: abc\r\nCSeq: 1 BYE\r\n\r\n")
    assert row == {
        "frame": "3",
        "time": "2023-11-14T22:13:20.123456Z",
        "src": "10.0.0.1:5060",
        "dst": "10.0.0.2:5080",
        "transport": "udp",
        "method": "",
        "status": "200",
        "reason": "OK",
        "call_id": "abc",
        "cseq": "1 BYE",
    }
