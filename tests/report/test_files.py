"""--report's files: written with the cyclic collector off (back on after); messages.csv."""

from __future__ import annotations

import csv
import gc
import io
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import analyzer.report.files as files
from analyzer.analysis import Analysis, analyze
from analyzer.cli import main
from analyzer.sip.redact import REDACTED, Redaction

CAPTURE = Path(__file__).resolve().parents[2] / "sample_pcaps" / "rule_forking.pcap"


def test_the_report_is_written_with_the_collector_off(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen: list[bool] = []
    render = files.render_html

    def rendered(a: Analysis, **kw: Any) -> str:
        seen.append(gc.isenabled())
        return render(a, **kw)

    monkeypatch.setattr(files, "render_html", rendered)
    a = analyze(CAPTURE)
    written = files.write_report_dir(a, a.calls, tmp_path / "r", [str(CAPTURE)])
    assert seen == [False]
    assert gc.isenabled()
    assert [p.name for p in written] == ["report.html", "calls.csv", "messages.csv", "calls.json", "calls.parquet"]
    assert all(p.stat().st_size > 0 for p in written)


def test_the_collector_is_back_on_when_writing_fails(tmp_path: Path) -> None:
    a = analyze(CAPTURE)
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "calls.csv").mkdir()  # a directory where a file must go
    with pytest.raises(files.SipflowError, match="cannot write the report"):
        files.write_report_dir(a, a.calls, tmp_path / "r", [str(CAPTURE)])
    assert gc.isenabled()


@pytest.mark.parametrize("name", ["rule_forking.pcap", "tcp_large_invite.pcap", "udp_fragmented.pcap"])
def test_messages_csv_has_the_rows_of_the_messages_command(name: str) -> None:
    """The messages in capture order give exactly what ``sipflow messages --format csv`` lists."""
    capture = CAPTURE.parent / name
    listed = CliRunner().invoke(main, ["messages", str(capture), "--format", "csv"])
    assert listed.exit_code == 0
    out = io.StringIO()
    files.write_messages_csv(out, analyze(capture).messages)
    assert out.getvalue() == listed.stdout
    assert out.getvalue().count("\n") == 1 + len(analyze(capture).messages)


def test_messages_csv_masks_what_is_redacted() -> None:
    out = io.StringIO()
    files.write_messages_csv(out, analyze(CAPTURE).messages, Redaction.of(("call-id",)))
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert rows and {r["call_id"] for r in rows} == {REDACTED}
