"""Security findings in the outputs: the terminal summary, the JSON document, ``--fail-on``."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from analyzer.analysis import Analysis, analyze
from analyzer.errors import UsageError
from analyzer.report.calls import analysis_dict
from analyzer.report.select import check_expression, fail_on
from analyzer.report.terminal import write_summary

FORENSIC = "goffinet-sip_captures/Forensic_challenge_4.pcap"


@pytest.fixture(scope="module")
def forensic(shared_pcaps: Path) -> Analysis:
    return analyze(shared_pcaps / FORENSIC, keep_messages=False)


def test_terminal_security_section(forensic: Analysis) -> None:
    out = io.StringIO()
    write_summary(out, forensic, width=120)
    text = out.getvalue()
    section = text[text.index("Security (1)") :].splitlines()
    assert section[1].split() == ["severity", "┃", "rule", "┃", "source", "┃", "count", "┃", "what", "┃", "frames"]
    assert section[3].split()[:8] == ["medium", "│", "scanner", "│", "172.25.105.43", "│", "1", "│"]
    assert section[3].split()[-2:] == ["│", "1"]
    assert "2010-05-01T18:13:00.947873Z" in text
    assert "scanner friendly-scanner (User-Agent 'UNfriendly-scanner - for" in text


def test_terminal_without_findings(sample_pcaps: Path) -> None:
    out = io.StringIO()
    write_summary(out, analyze(sample_pcaps / "udp_call.pcap"), width=120)
    assert "Security" not in out.getvalue()


def test_json_document(forensic: Analysis) -> None:
    doc = json.loads(json.dumps(analysis_dict(forensic)))
    assert list(doc) == ["capture", "calls", "summary", "security"]
    assert doc["security"] == [
        {
            "rule": "scanner",
            "severity": "medium",
            "src": "172.25.105.43",
            "first": "2010-05-01T18:13:00.947873Z",
            "last": "2010-05-01T18:13:00.947873Z",
            "count": 1,
            "frames": [1],
            "summary": "172.25.105.43 sent 1 request(s) (OPTIONS) marked as the SIP scanner friendly-scanner "
            "(User-Agent 'UNfriendly-scanner - for demo purposes')",
            "hint": forensic.security[0].hint,
            "details": {
                "tool": "friendly-scanner",
                "evidence": "User-Agent 'UNfriendly-scanner - for demo purposes'",
                "methods": "OPTIONS",
            },
        }
    ]


@pytest.mark.parametrize(
    ("expr", "holds"),
    [
        ("security", True),
        ("security>0", True),
        ("security>1", False),
        ("security=scanner", True),
        ("security=toll_fraud", False),
        ("security=medium", True),
        ("security>=low", True),
        ("security>=medium", True),
        ("security>=high", False),
    ],
)
def test_fail_on_security(forensic: Analysis, expr: str, holds: bool) -> None:
    assert fail_on(expr, forensic.calls, forensic.security) is holds
    assert fail_on(expr, forensic.calls) is False  # no findings given: none holds


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("security<high", "security takes =RULE, =SEVERITY, >=SEVERITY or a count"),
        ("security=bogus", "'bogus' is not a number"),
    ],
)
def test_fail_on_security_usage(expr: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        check_expression(expr)
