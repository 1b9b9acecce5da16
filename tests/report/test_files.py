"""--report's files: written with the cyclic collector off, and it is back on after."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import pytest

import analyzer.report.files as files
from analyzer.analysis import Analysis, analyze

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
