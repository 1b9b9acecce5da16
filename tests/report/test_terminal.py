"""The terminal summary (:mod:`analyzer.report.terminal`): text from the wire is shown as it is."""

from __future__ import annotations

import io
from pathlib import Path

from analyzer.analysis import analyze
from analyzer.report.terminal import write_summary

CALL_ID = b"1-rule_auth_loop@198.18.0.1"
MARKED_CALL_ID = b"[/x]" + CALL_ID[4:]  # rich's markup: a closing tag with no opening one
REASON = b"407 Proxy Authentication Required"
MARKED_REASON = b"407 [bold] Authentication Required"[: len(REASON)]


def test_markup_in_a_call_id_or_a_reason_is_shown_as_it_is(sample_pcaps: Path, tmp_path: Path) -> None:
    # rich read cells as markup: this Call-ID made the default output raise MarkupError
    data = (sample_pcaps / "rule_auth_loop.pcap").read_bytes()
    marked = tmp_path / "marked.pcap"
    marked.write_bytes(data.replace(CALL_ID, MARKED_CALL_ID).replace(REASON, MARKED_REASON))  # same lengths
    out = io.StringIO()
    write_summary(out, analyze(marked), width=200)
    text = out.getvalue()
    rows = [[cell.strip() for cell in line.split("│")] for line in text.splitlines() if "[/x]" in line]
    assert rows == [
        ["auth_loop", "407", "2", "100.0%", MARKED_CALL_ID.decode()],  # the causes' example
        [
            "call",
            MARKED_CALL_ID.decode(),
            MARKED_REASON.decode(),
            "[auth_loop] Credentials for user 'alice' were sent 2 time(s) and challenged again 2 time(s)",
        ],
    ]


def test_counts_and_delays_read_as_written(shared_pcaps: Path) -> None:
    out = io.StringIO()
    write_summary(out, analyze(shared_pcaps / "wireshark-samplecaptures/aaa.pcap"), width=140)
    lines = out.getvalue().splitlines()
    assert lines[2] == "  691 packets, 81 SIP messages, 10 conversations, 0 malformed"
    # PDD 35,553.3 and 51,527.9 ms, RRD 17,6xx ms: in seconds past 10 s
    assert lines[6].split("│")[8:] == ["  35.6 s ", "  51.5 s ", "       - ", "    6 ", "  17.6 s ", "  0% "]
    out = io.StringIO()
    write_summary(out, analyze(shared_pcaps / "wireshark-samplecaptures/nb6-telephone.pcap"), width=140)
    assert out.getvalue().splitlines()[2] == "  527 packets, 7 SIP messages, 1 conversation, 0 malformed"
