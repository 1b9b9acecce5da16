"""Reports pickle as constructor calls and come back equal (--jobs sends them between processes)."""

from __future__ import annotations

import pickle
from pathlib import Path

from analyzer.analysis import analyze
from analyzer.diagnose.verdict import CallReport

SAMPLES = Path(__file__).resolve().parents[1] / "sample_pcaps"


def test_reports_come_back_equal() -> None:
    reports: list[CallReport] = []
    for name in ("rule_forking.pcap", "rule_auth_loop.pcap", "rule_early_media_rejected.pcap"):
        reports += analyze(SAMPLES / name).calls
    assert any(r.breaking is not None and r.findings for r in reports)  # every nested kind is in
    assert pickle.loads(pickle.dumps(reports)) == reports


def test_a_report_pickles_as_a_call_of_its_class() -> None:
    (report, *_) = analyze(SAMPLES / "udp_call.pcap").calls
    cls, args = report.__reduce__()
    assert cls is CallReport and cls(*args) == report
