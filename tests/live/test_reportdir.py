"""``sipflow live --report DIR``: report.html, calls.csv and calls.json of the rolling window.

The window's reports come from two sample captures analysed offline (a live run reports
the same calls, see test_live.py); the page is the one ``analyze --report`` writes, without
messages (live mode keeps none), and is loaded once in headless chromium (skipped without it).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from analyzer.analysis import analyze
from analyzer.decode.pipeline import DecodeStats
from analyzer.diagnose.verdict import CallReport
from analyzer.live.reportdir import ReportDir, window_analysis, window_name
from analyzer.report.calls import redact_report
from analyzer.report.html import REDACTED, extract_data
from analyzer.report.kpi import kpis
from analyzer.sip.redact import Redaction
from tests.report.conftest import Page, chromium, page  # noqa: F401  (fixtures: the shared browser)

CALL_IDS = [
    "1-rule_callee_busy@198.18.0.1",
    "2-rule_callee_busy@198.18.0.1",
    "1-rule_cancelled@198.18.0.1",
    "2-rule_cancelled@198.18.0.1",
]
KPIS = {
    "attempts": 4,
    "answered": 0,
    "failed": 2,
    "asr": 0.0,
    "ner": 50.0,
    "ser": 0.0,
    "seer": 50.0,
    "isa": 0.0,
    "scr": 0.0,
    "acd_s": None,
    "pdd_median_ms": 3.928,
    "pdd_p95_ms": 8.207,
    "sdd_median_ms": None,
    "registrations": 0,
    "rrd_median_ms": None,
    "ira": None,
}
FIRST_NS = 1795290960992266000
"""rule_callee_busy.pcap: its first frame (the "since" of the counts)."""


@pytest.fixture(scope="module")
def window(sample_pcaps: Path) -> tuple[list[CallReport], DecodeStats]:
    """The reports of rule_callee_busy.pcap and rule_cancelled.pcap, ended in the order the
    window holds them (the cancelled calls last), and the decoder counts of the first."""
    busy = analyze(sample_pcaps / "rule_callee_busy.pcap")
    cancelled = analyze(sample_pcaps / "rule_cancelled.pcap")
    return [*busy.calls, *cancelled.calls], busy.stats


def _write(directory: Path, reports: list[CallReport], decoded: DecodeStats) -> list[Path]:
    return ReportDir(directory).write(
        reports, kpis(reports), 900.0, source="-i eth0 + HEP 127.0.0.1:9060", decoded=decoded, malformed=3
    )


def test_window_name() -> None:
    assert [window_name(s) for s in (900.0, 7200.0, 5400.0, 90.0, 60.0, 0.5)] == [
        "15 min",
        "2 h",
        "90 min",
        "90 s",
        "1 min",
        "0.5 s",
    ]


def test_writes_three_files_whole(window: tuple[list[CallReport], DecodeStats], tmp_path: Path) -> None:
    reports, decoded = window
    written = _write(tmp_path, reports, decoded)
    assert written == [tmp_path / "report.html", tmp_path / "calls.csv", tmp_path / "calls.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calls.csv", "calls.json", "report.html"]  # no temp files
    assert [c["call_id"] for c in json.loads((tmp_path / "calls.json").read_text())["calls"]] == CALL_IDS
    _write(tmp_path, reports[:1], decoded)  # rewritten in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calls.csv", "calls.json", "report.html"]
    data = extract_data((tmp_path / "report.html").read_text(encoding="utf-8"))
    assert [c["call_id"] for c in data["calls"]] == CALL_IDS[:1]


def test_html_is_the_window(window: tuple[list[CallReport], DecodeStats], tmp_path: Path) -> None:
    reports, decoded = window
    _write(tmp_path, reports, decoded)
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    # Nothing fetched: no http(s) address in any src or href (the page's script names the SVG
    # namespace, http://www.w3.org/2000/svg, which loads nothing), and no element that loads.
    assert re.findall(r"""(?:src|href)\s*=\s*["']?\s*https?:""", html, re.IGNORECASE) == []
    assert not re.search(r"<(script|img|link|iframe|object|embed)\b[^>]*\b(src|href|data)\s*=", html, re.IGNORECASE)
    for call_id in CALL_IDS:
        assert call_id in html
    data = extract_data(html)
    assert data["title"] == "sipflow live: -i eth0 + HEP 127.0.0.1:9060, last 15 min"
    assert data["capture"] == {
        "path": "live: -i eth0 + HEP 127.0.0.1:9060, last 15 min",
        "packets": 13,
        "sip_messages": 9,
        "skipped": {"not-ip": 4},
        "malformed": 0,
        "limits_reached": {},
        "copies": 0,
        "left_out": [],
        "warning": "packets and SIP messages since 2026-11-21 19:56:00 UTC; 3 malformed SIP",
        "first": "2026-11-21T19:56:00.992300Z",
        "last": "2026-11-21T19:58:26.761154Z",
        "span_s": 145.768854,
        "conversations": 4,
    }
    assert [c["call_id"] for c in data["calls"]] == CALL_IDS
    assert [c["outcome"] for c in data["calls"]] == ["busy", "rejected", "cancelled", "cancelled"]
    assert [(c["msg_first"], c["msg_count"], c["breaking_index"]) for c in data["calls"]] == [(0, 0, -1)] * 4
    assert [c["t_ms"] for c in data["calls"]] == [0.0, 3000.269, 142763.516, 144764.046]
    assert data["kpi"] == KPIS
    assert data["summary"]["conversations"] == 4 and data["summary"]["failed"] == 2
    assert (data["messages"], data["endpoints"], data["security"], data["messages_kept"]) == ([], [], [], False)


def test_calls_in_start_order(window: tuple[list[CallReport], DecodeStats]) -> None:
    reports, decoded = window
    a = window_analysis(list(reversed(reports)), "", 60.0, decoded)
    assert [r.call_id for r in a.calls] == CALL_IDS
    assert (a.path, a.warning, a.messages, a.security) == (
        "live: no input, last 1 min",
        "packets and SIP messages since 2026-11-21 19:56:00 UTC",
        [],
        [],
    )
    assert decoded.first_ts_ns == FIRST_NS  # the run's counts are copied, not changed


def test_empty_window(tmp_path: Path) -> None:
    ReportDir(tmp_path).write([], kpis([]), 900.0, source="-i eth0")
    data = extract_data((tmp_path / "report.html").read_text(encoding="utf-8"))
    assert (data["calls"], data["capture"]["packets"], data["capture"]["first"], data["capture"]["warning"]) == (
        [],
        0,
        None,
        None,
    )


def test_redacted_reports_in_redacted_html_out(window: tuple[list[CallReport], DecodeStats], tmp_path: Path) -> None:
    """run.py masks each report before the window holds it; the page shows only that."""
    reports, decoded = window
    red = Redaction.of(["Call-ID", "From"])
    shown = [redact_report(r, red) for r in reports]
    _write(tmp_path, shown, decoded)
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "rule_callee_busy@" not in html and "rule_cancelled@" not in html and "alice@" not in html
    data = extract_data(html)
    assert [(c["call_id"], c["caller"]) for c in data["calls"]] == [(REDACTED, REDACTED)] * 4
    for name in ("calls.csv", "calls.json"):
        assert "rule_callee_busy@" not in (tmp_path / name).read_text()


def test_browser_live_page(
    page: Page,  # noqa: F811  (the fixture imported above)
    window: tuple[list[CallReport], DecodeStats],
    tmp_path: Path,
) -> None:
    reports, decoded = window
    _write(tmp_path, reports, decoded)
    path = tmp_path / "report.html"
    page.goto(path.resolve().as_uri())
    page.wait_for("document.body.dataset.ready === '1'")
    assert page.errors() == []
    assert page.requests() == [path.resolve().as_uri()]
    assert page.js("document.title") == "sipflow live: -i eth0 + HEP 127.0.0.1:9060, last 15 min"
    assert page.js("document.getElementById('f-count').textContent") == "4 of 4 conversations"
    assert page.js("document.querySelector('[data-kpi=ner]').textContent") == "50 %"
    page.click("#calls-body tr[data-index='1']")
    page.wait_for("!document.getElementById('drawer').hidden")
    assert page.js("document.getElementById('d-title').textContent") == "call 2-rule_callee_busy@198.18.0.1"
    assert page.js("document.querySelectorAll('#d-ladder svg').length") == 0
    assert page.js("document.getElementById('d-ladder').textContent") == (
        "Live mode keeps no messages of a call, so there is no ladder to draw. To see it, keep the traffic "
        "(sipflow live --write-pcap) and open that capture with sipflow analyze."
    )
    assert page.js("[document.getElementById('raw-title').hidden, document.getElementById('raw').hidden]") == [
        True,
        True,
    ]
    assert page.errors() == []
