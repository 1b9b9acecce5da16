"""`sipflow messages` as a user runs it (click's CliRunner)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from analyzer.cli import main
from tests.edit import with_interface_options

AAA = "wireshark-samplecaptures/aaa.pcap"


def run(*args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), input=stdin)
    return result.exit_code, result.stdout, result.stderr


def test_table_is_default(shared_pcaps: Path) -> None:
    code, out, err = run("messages", str(shared_pcaps / AAA))
    lines = out.splitlines()
    assert code == 0 and err == ""
    assert lines[0].split() == [
        "Frame",
        "Time",
        "(UTC)",
        "Source",
        "Destination",
        "Proto",
        "Method",
        "Code",
        "Reason",
        "Call-ID",
        "CSeq",
    ]
    assert len(lines) == 2 + 81
    assert lines[2].split()[:5] == [
        "19",
        "2005-07-04T09:32:52.844249Z",
        "192.168.1.2:5060",
        "212.242.33.35:5060",
        "udp",
    ]


def test_csv_and_json_formats(shared_pcaps: Path) -> None:
    code, out, _ = run("messages", str(shared_pcaps / AAA), "--format", "csv")
    rows = out.splitlines()
    assert code == 0
    assert rows[0] == "frame,time,src,dst,transport,method,status,reason,call_id,cseq"
    assert rows[2] == (
        "20,2005-07-04T09:32:52.981006Z,212.242.33.35:5060,192.168.1.2:5060,udp,,401,Unauthorized,"
        "578222729-4665d775@578222732-4665d772,68 REGISTER"
    )
    code, out, _ = run("messages", str(shared_pcaps / AAA), "--format", "json")
    data = json.loads(out)
    assert len(data) == 81 and data[1]["status"] == 401 and data[0]["status"] is None
    code, out, _ = run("messages", str(shared_pcaps / AAA), "--format", "jsonl")
    assert json.loads(out.splitlines()[-1])["frame"] == 691 or len(out.splitlines()) == 81


def test_stdin(shared_pcaps: Path) -> None:
    code, out, _ = run("messages", "-", "--format", "csv", stdin=(shared_pcaps / AAA).read_bytes())
    assert code == 0 and len(out.splitlines()) == 82


def test_not_a_capture_is_one_line_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "notes.txt"
    bad.write_text("hello")
    code, out, err = run("messages", str(bad))
    assert (code, out) == (2, "")
    assert err == f"sipflow: error: {bad}: not a pcap or pcapng capture (first bytes 68656c6c)\n"
    code, out, err = run("messages", str(tmp_path / "missing.pcap"))
    assert (code, out) == (2, "")
    assert err == f"sipflow: error: {tmp_path / 'missing.pcap'}: No such file or directory\n"


def test_truncated_capture_warns_and_keeps_messages(shared_pcaps: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.pcap"
    cut.write_bytes((shared_pcaps / AAA).read_bytes()[:3000])
    code, out, err = run("messages", str(cut), "--format", "csv")
    assert code == 0 and len(out.splitlines()) == 3
    assert err == (
        f"sipflow: warning: {cut}: reading stopped after frame 21: "
        "last record cut short at byte 2952 (48 bytes left over)\n"
    )


def test_show_skipped_lists_malformed(shared_pcaps: Path) -> None:
    code, _, err = run(
        "messages", str(shared_pcaps / "ndpi/fuzz-2006-06-26-2594.pcap"), "--show-skipped", "--format", "csv"
    )
    assert code == 0
    assert "691 frames, 52 SIP messages" in err
    assert "malformed frame 108: bad-status-line 'SIP/2.0 401 Unauthori%s\\x00\\r\\nCall-ID: 57822'" in err
    assert "malformed frame 346: bad-request-line" in err


def test_times_past_year_two_billion_are_listed(shared_pcaps: Path, tmp_path: Path) -> None:
    # found by fuzzing: a pcapng interface whose time offset (if_tsoffset) is 2^62 s
    capture = tmp_path / "far.pcapng"
    data = (shared_pcaps / "goffinet-sip_captures" / "sip.pcapng").read_bytes()
    capture.write_bytes(with_interface_options(data, {14: (2**62).to_bytes(8, "little")}))
    for command in (["messages", "--format", "csv"], ["analyze", "--format", "json"], ["analyze"]):
        result = CliRunner().invoke(main, [*command, str(capture)])
        assert (result.exit_code, result.exception) == (0, None), command
        assert "(out of range: 461168601" in result.output
