"""Per-peer KPIs of the live run: the rows (the same peers and KPIs as `analyze`'s summary),
the view's table and the bounded Prometheus metrics, on the sample rule captures."""

from __future__ import annotations

import io

from rich.console import Console

from analyzer.analysis import analyze
from analyzer.diagnose.verdict import CallReport
from analyzer.live.metrics import peer_metrics, render
from analyzer.live.stats import PeerWindow, peer_rows
from analyzer.live.view import ViewState
from analyzer.live.view import render as render_view
from analyzer.live.window import Rolling
from analyzer.report.terminal import peer_namer
from tests.oracle import SAMPLE_PCAPS

CAPTURES = ("udp_call", "rule_callee_busy", "rule_server_error", "rule_timeout", "rule_proxy_timeout", "rule_no_answer")
UAS, PROXY = "198.18.0.2:5060", "198.18.0.3:5060"


def _reports() -> list[CallReport]:
    """14 calls: 12 to the UAS (4 answered; 486, 603, 503 ×2, 480, 408, 2 timeouts), 2 to
    Kamailio (408 ×2)."""
    return [r for name in CAPTURES for r in analyze(SAMPLE_PCAPS / f"{name}.pcap").calls]


def test_peer_rows() -> None:
    rows = peer_rows(_reports(), peer_namer({}))
    got = [(r.peer, r.kpis.attempts, r.kpis.answered, r.kpis.asr, r.kpis.ner, r.top_failure, r.failed_by_class)
           for r in rows]  # fmt: skip
    assert got == [
        # 503 and timeout both twice: the tie goes to the first by name.
        (UAS, 12, 4, 33.33, 66.67, "503 (2)", {"4xx": 3, "5xx": 2, "6xx": 1, "none": 2}),
        (PROXY, 2, 0, 0.0, 100.0, "408 (2)", {"4xx": 2}),
    ]


def test_peer_rows_bounded_with_other() -> None:
    rows = peer_rows(_reports(), peer_namer({}), limit=1)
    assert [(r.peer, r.kpis.attempts, r.top_failure) for r in rows] == [(UAS, 12, "503 (2)"), ("other", 2, "408 (2)")]


def test_peer_window_keeps_the_peer_and_trims() -> None:
    reports = _reports()
    window = PeerWindow(window_s=10**7)  # the captures were made days apart
    for r in reports:
        window.add(r)
    assert {r.callee_addr for r in window.calls} == {UAS, PROXY}
    assert [(row.peer, row.kpis.attempts) for row in window.rows(0)] == [(UAS, 12), (PROXY, 2)]
    window.trim(max(r.end_ns for r in reports) + (10**7 + 1) * 1_000_000_000)
    assert len(window.calls) == 0
    # Cached for 10 s; then worked out again from the (now empty) window.
    assert len(window.rows(1)) == 2
    assert window.rows(10_000_000_001) == []


def test_peer_metrics_text() -> None:
    text = render(peer_metrics(peer_rows(_reports(), peer_namer({}), limit=1)))
    assert text.splitlines() == [
        "# HELP sipflow_peer_attempts Call attempts that ended in the window, per peer (next hop of the caller; "
        "the rest: other).",
        "# TYPE sipflow_peer_attempts gauge",
        f'sipflow_peer_attempts{{peer="{UAS}"}} 12',
        'sipflow_peer_attempts{peer="other"} 2',
        "# HELP sipflow_peer_answered Answered calls that ended in the window, per peer.",
        "# TYPE sipflow_peer_answered gauge",
        f'sipflow_peer_answered{{peer="{UAS}"}} 4',
        'sipflow_peer_answered{peer="other"} 0',
        "# HELP sipflow_peer_failed Failed calls in the window, per peer and final code class.",
        "# TYPE sipflow_peer_failed gauge",
        f'sipflow_peer_failed{{class="4xx",peer="{UAS}"}} 3',
        f'sipflow_peer_failed{{class="5xx",peer="{UAS}"}} 2',
        f'sipflow_peer_failed{{class="6xx",peer="{UAS}"}} 1',
        f'sipflow_peer_failed{{class="none",peer="{UAS}"}} 2',
        'sipflow_peer_failed{class="4xx",peer="other"} 2',
    ]


def test_view_shows_peers() -> None:
    reports = _reports()
    rolling = Rolling(window_s=10**7)
    for r in reports:
        rolling.add(r)
    state = ViewState(
        sources="-i eth0",
        uptime_s=5,
        frames=1,
        sip_messages=1,
        open_conversations=0,
        reported=14,
        evicted=0,
        alerts=0,
        dropped={},
        window_s=600,
        kpis=rolling.kpis(),
        recent_failed=(),
        peers=tuple(peer_rows(reports, peer_namer({}))),
    )
    out = io.StringIO()
    Console(file=out, width=140, color_system=None, force_terminal=False).print(render_view(state))
    lines = [line.rstrip() for line in out.getvalue().splitlines()]
    at = lines.index("per peer (next hop of the caller)")
    assert [line.split() for line in lines[at + 1 :]] == [
        ["peer", "calls", "ASR", "NER", "top", "failure"],
        [UAS, "12", "33.3%", "66.7%", "503", "(2)"],
        [PROXY, "2", "0.0%", "100.0%", "408", "(2)"],
    ]
