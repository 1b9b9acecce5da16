"""The catalogue of columns: how each value is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from analyzer.reader import MessageReader
from analyzer.report.columns import MESSAGE_COLUMNS, cells_of, iso_time, message_cells
from analyzer.report.render import redact_columns
from analyzer.sip.message import Origin
from analyzer.sip.parser import parse_message
from analyzer.sip.redact import REDACTED, Redaction

ROOT = Path(__file__).resolve().parents[2]
PUBLIC = ROOT.parent / "shared" / "pcaps"
CAPTURES = [
    *sorted(ROOT.glob("sample_pcaps/*.pcap*")),
    *sorted(PUBLIC.glob("*/*.pcap")),
    *sorted(PUBLIC.glob("*/*.pcapng")),
]


def test_a_time_past_what_a_calendar_can_say_is_still_text() -> None:
    assert iso_time(1_700_000_000_123_456_789) == "2023-11-14T22:13:20.123456Z"
    assert iso_time(-1) == "1969-12-31T23:59:59.999999Z"
    assert iso_time(2**62 * 10**9) == f"(out of range: {2**62 * 10**9} ns from 1970)"  # a damaged pcapng time offset


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_the_cells_in_one_call_are_what_the_getters_give(path: Path) -> None:
    """TCP, tunnels and VLANs (the transport column), responses without a reason, bad CSeqs …"""
    for msg in MessageReader(path):
        assert message_cells(msg) == [c.get(msg) for c in MESSAGE_COLUMNS]


def test_redacted_columns_are_read_by_their_getters() -> None:
    assert cells_of(MESSAGE_COLUMNS) is message_cells
    assert cells_of(redact_columns(MESSAGE_COLUMNS, Redaction())) is message_cells  # none masked
    redacted = redact_columns(MESSAGE_COLUMNS, Redaction.of(["call-id"]))
    reader = MessageReader(ROOT / "sample_pcaps" / "udp_call.pcap")
    msg = next(iter(reader))
    reader.close()
    cells = cells_of(redacted)(msg)
    assert cells[8] == REDACTED
    assert cells[:8] + cells[9:] == message_cells(msg)[:8] + message_cells(msg)[9:]


@pytest.mark.parametrize(
    ("start", "cseq", "encap"),
    [
        ("OPTIONS sip:a@b SIP/2.0", "0 OPTIONS", ""),
        ("OPTIONS sip:a@b SIP/2.0", "x OPTIONS", "vlan"),
        ("SIP/2.0 200", "", "gre/vlan"),
        ("SIP/2.0 500 =cmd()", "-1 INVITE", ""),
    ],
)
def test_the_cells_in_one_call_on_odd_messages(start: str, cseq: str, encap: str) -> None:
    raw = f"{start}\r\nCall-ID: +x\r\n{f'CSeq: {cseq}' if cseq else 'X: y'}\r\n\r\n".encode()
    msg = parse_message(raw, Origin(7, (7,), 10**18, "2001:db8::1", 5060, "198.51.100.1", 5062, "tcp", encap))
    assert message_cells(msg) == [c.get(msg) for c in MESSAGE_COLUMNS]
