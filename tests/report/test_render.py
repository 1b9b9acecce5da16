"""Streaming writers for message rows: CSV cells a spreadsheet would run are defused."""

from __future__ import annotations

import csv
import dataclasses
import io

from hypothesis import given
from hypothesis import strategies as st

from analyzer.report.columns import MESSAGE_COLUMNS, Value
from analyzer.report.render import CsvText, write_lines
from analyzer.sip.message import Origin
from analyzer.sip.parser import parse_message

ORIGIN = Origin(3, (3,), 1_700_000_000_123_456_000, "10.0.0.1", 5060, "10.0.0.2", 5080, "udp")


def _rows(*raw: bytes) -> list[dict[str, str]]:
    out = io.StringIO()
    rows = [[c.get(parse_message(r, ORIGIN)) for c in MESSAGE_COLUMNS] for r in raw]
    text = CsvText(MESSAGE_COLUMNS)
    assert write_lines(out, text, map(text.line, rows)) == len(raw)
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


_CELL = st.one_of(
    st.none(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(alphabet=st.sampled_from(list("ab ,\"\r\n\t=+-@'é\x00;")), max_size=6),
    st.text(max_size=8),
)


@given(st.lists(_CELL, min_size=1, max_size=12))
def test_a_csv_row_is_what_csvs_writer_writes(cells: list[Value]) -> None:
    columns = tuple(dataclasses.replace(MESSAGE_COLUMNS[0], name=f"c{i}") for i in range(len(cells)))
    expected = io.StringIO()
    csv.writer(expected, lineterminator="\n").writerow(cells)
    assert CsvText(columns).line(list(cells)) == expected.getvalue()


def test_csv_rows_of_wire_text_are_defused_and_quoted() -> None:
    columns = tuple(c for c in MESSAGE_COLUMNS if c.name in ("frame", "reason", "call_id"))
    text = CsvText(columns)
    assert text.head() == "frame,reason,call_id\n"
    assert text.line([1, "OK", "a,b"]) == '1,OK,"a,b"\n'
    assert text.line([2, '=1"', "x\ny"]) == '2,"\'=1""","x\ny"\n'
    assert text.line([3, None, "@a"]) == "3,,'@a\n"
