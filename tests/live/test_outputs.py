"""Live outputs: the metrics text, summary lines, the terminal view, rotating pcaps, --alert-cmd."""

from __future__ import annotations

import dataclasses
import io
import sys
import time
from pathlib import Path

from rich.console import Console

from analyzer.analysis import analyze
from analyzer.capture.source import open_stream, read_frames
from analyzer.capture.stats import CaptureStats
from analyzer.live.alerts import Alert
from analyzer.live.metrics import Metric, counter, kpi_metrics, labelled, render
from analyzer.live.output import AlertCommand, JsonlWriter, alert_line, call_line
from analyzer.live.pcapwriter import RotatingPcap
from analyzer.live.view import ViewState
from analyzer.live.view import render as render_view
from analyzer.live.window import Rolling, slim
from analyzer.report.kpi import kpis
from tests.oracle import SAMPLE_PCAPS

_S = 1_000_000_000
SAMPLES = sorted(p.name for p in SAMPLE_PCAPS.glob("*.pcap"))


def test_prometheus_text_format() -> None:
    text = render(
        [
            counter("sipflow_frames_total", "Frames decoded.", 12),
            labelled("sipflow_x_total", "counter", "By reason.", "reason", {'say "hi"\\\n': 2.5, "a": 1}),
            Metric("sipflow_empty", "gauge", "Nothing yet.", ()),
        ]
    )
    assert text == (
        "# HELP sipflow_frames_total Frames decoded.\n"
        "# TYPE sipflow_frames_total counter\n"
        "sipflow_frames_total 12\n"
        "# HELP sipflow_x_total By reason.\n"
        "# TYPE sipflow_x_total counter\n"
        'sipflow_x_total{reason="a"} 1\n'
        'sipflow_x_total{reason="say \\"hi\\"\\\\\\n"} 2.5\n'
        "# HELP sipflow_empty Nothing yet.\n"
        "# TYPE sipflow_empty gauge\n"
    )


def test_kpi_metrics_leave_out_what_is_unknown() -> None:
    reports = analyze(SAMPLE_PCAPS / "rule_callee_busy.pcap").calls + analyze(SAMPLE_PCAPS / "udp_call.pcap").calls
    text = render(kpi_metrics(kpis(reports), 900))
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    assert lines == [
        "sipflow_window_seconds 900",
        "sipflow_window_attempts 5",
        "sipflow_window_answered 3",
        "sipflow_window_failed 2",
        "sipflow_window_registrations 0",
        'sipflow_kpi_percent{kpi="asr"} 60',
        'sipflow_kpi_percent{kpi="isa"} 0',
        'sipflow_kpi_percent{kpi="ner"} 100',
        'sipflow_kpi_percent{kpi="scr"} 60',
        'sipflow_kpi_percent{kpi="seer"} 100',
        'sipflow_kpi_percent{kpi="ser"} 60',
        f"sipflow_acd_seconds {kpis(reports).acd_s}",
        f"sipflow_pdd_median_ms {kpis(reports).pdd_median_ms}",
        f"sipflow_pdd_p95_ms {kpis(reports).pdd_p95_ms}",
        f"sipflow_sdd_median_ms {kpis(reports).sdd_median_ms}",
    ]


def test_summary_lines() -> None:
    answered = analyze(SAMPLE_PCAPS / "udp_call.pcap").calls[0]
    busy = analyze(SAMPLE_PCAPS / "rule_callee_busy.pcap").calls[0]
    timeout = analyze(SAMPLE_PCAPS / "rule_timeout.pcap").calls[0]
    assert call_line(answered)[8:] == " call answered alice@198.18.0.1 -> service@198.18.0.2  0.2 s"
    assert call_line(busy)[8:] == (
        " call busy alice@198.18.0.1 -> busy@198.18.0.2  486 Busy Here (callee_rejected, caller leg)"
    )
    assert call_line(timeout)[9:].startswith("call timeout alice@198.18.0.1 -> ")
    assert call_line(timeout).endswith("INVITE unanswered (no_final_response, 198.18.0.1:5060 -> 198.18.0.2:5060)")
    alert = Alert("scanner", 1_700_000_000 * _S, "198.18.0.9", "198.18.0.9 sends OPTIONS …")
    assert alert_line(alert) == "22:13:20 ALERT scanner: 198.18.0.9 sends OPTIONS …"


def test_jsonl_appends(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text('{"old": 1}\n')
    w = JsonlWriter(path)
    w.alert(Alert("peer_503", 1_700_000_000 * _S, "198.18.0.2:5060", "m", {"code": 503}))
    assert path.read_text().splitlines()[1] == (  # flushed at once, before close
        '{"alert": "peer_503", "time": "2023-11-14T22:13:20.000000Z", "subject": "198.18.0.2:5060", '
        '"message": "m", "code": 503}'
    )
    w.close()
    assert w.lines == 1


def test_view_renders_on_a_fixed_console() -> None:
    reports = analyze(SAMPLE_PCAPS / "rule_callee_busy.pcap").calls
    rolling = Rolling(window_s=600)
    for r in reports:
        rolling.add(r)
    state = ViewState(
        sources="-i eth0",
        uptime_s=3725,
        frames=120,
        sip_messages=40,
        open_conversations=3,
        reported=2,
        evicted=0,
        alerts=1,
        dropped={"rate-limited": 4},
        window_s=600,
        kpis=rolling.kpis(),
        recent_failed=tuple(rolling.failed),
    )
    out = io.StringIO()
    console = Console(file=out, width=140, color_system=None, force_terminal=False)
    console.print(render_view(state))
    text = out.getvalue()
    lines = [line.rstrip() for line in text.splitlines()]
    assert lines[0] == (
        "sipflow live -i eth0  up 1:02:05  120 frames  40 SIP  3 in progress  2 reported  0 evicted  1 alerts  "
        "dropped rate-limited 4"
    )
    assert lines[1] == "last 10 min"
    assert lines[2].split() == ["calls", "answered", "failed", "ASR", "NER", "SEER", "ISA", "PDD", "p50", "PDD", "p95",
                                "ACD", "regs"]  # fmt: skip
    assert lines[3].split() == ["2", "0", "2", "0.0%", "100.0%", "100.0%", "0.0%", "7", "ms", "8", "ms", "-", "0"]
    assert lines[4] == "recent failed calls"
    assert lines[6].split()[1:] == ["alice@198.18.0.1", "decline@198.18.0.2", "rejected", "603", "Decline",
                                    "callee_rejected", "caller", "leg"]  # fmt: skip
    assert lines[7].split()[1:] == ["alice@198.18.0.1", "busy@198.18.0.2", "busy", "486", "Busy", "Here",
                                    "callee_rejected", "caller", "leg"]  # fmt: skip


def test_view_shows_markup_from_the_wire_as_it_is() -> None:
    # a reason phrase or a peer's name holding rich's markup made the view raise MarkupError
    r = analyze(SAMPLE_PCAPS / "rule_callee_busy.pcap").calls[0]
    assert r.breaking is not None
    marked = dataclasses.replace(r, breaking=dataclasses.replace(r.breaking, reason="Busy [/x] Here"))
    rolling = Rolling(window_s=600)
    rolling.add(marked)
    state = ViewState("-i lo", 1, 1, 1, 0, 1, 0, 0, {}, 600, rolling.kpis(), tuple(rolling.failed))
    out = io.StringIO()
    Console(file=out, width=200, color_system=None, force_terminal=False).print(render_view(state))
    assert f"{r.breaking.code} Busy [/x] Here" in out.getvalue()


def test_rolling_window_forgets_old_calls() -> None:
    r = analyze(SAMPLE_PCAPS / "udp_call.pcap").calls[0]
    rolling = Rolling(window_s=60, max_reports=3)
    for i in range(5):
        rolling.add(dataclasses.replace(r, end_ns=i * 10 * _S))
    assert [x.end_ns for x in rolling.reports] == [20 * _S, 30 * _S, 40 * _S]  # at most 3
    rolling.trim(95 * _S)
    assert [x.end_ns for x in rolling.reports] == [40 * _S]
    assert rolling.totals == {"call:answered": 5}


def test_slim_reports_give_the_same_kpis() -> None:
    reports = [r for name in SAMPLES for r in analyze(SAMPLE_PCAPS / name).calls]
    slimmed = [slim(r) for r in reports]
    assert kpis(slimmed) == kpis(reports)
    # 66 before rule_session_interval.pcap added its 2 calls (one answered after a 422 retry),
    # 68 before rule_glare.pcap added its 1 (answered; two re-INVITEs got 491).
    assert kpis(slimmed).attempts == 69
    busy = next(r for r in slimmed if r.final_code == 486)
    assert (busy.call_id, busy.caller, busy.frames, busy.messages, str(busy.outcome)) == ("", "", (), 0, "busy")


def test_rotating_pcap(tmp_path: Path) -> None:
    src = SAMPLE_PCAPS / "udp_fragmented.pcap"
    with open_stream(src) as f:
        frames = list(read_frames(f, CaptureStats("src")))
    sizes = [16 + len(data) for _, _, data, _ in frames]
    w = RotatingPcap(tmp_path, max_bytes=24 + sum(sizes[:7]), max_files=2)
    for ts, lt, data, _ in frames:
        w.write(ts, lt, data)
    w.close()
    kept = sorted(tmp_path.iterdir())
    # 20 frames, 7 per file: 3 files written, the first deleted.
    assert [p.name for p in kept] == [p.name for p in w.files] and len(kept) == 2
    assert kept[0].name.endswith("-0002.pcap") and kept[1].name.endswith("-0003.pcap")
    read = []
    for p in kept:
        with open_stream(p) as f:
            read += list(read_frames(f, CaptureStats(str(p))))
    assert read == frames[7:]


def test_alert_command(tmp_path: Path) -> None:
    out = tmp_path / "got.txt"
    hook = tmp_path / "hook.py"
    hook.write_text(f"import sys\nopen({str(out)!r}, 'ab').write(sys.stdin.buffer.read())\nsys.exit(3)\n")
    cmd = AlertCommand(f"{sys.executable} {hook}")
    cmd.submit(Alert("scanner", 0, "198.18.0.9", "msg; rm -rf /", {"user_agent": "sipvicious"}))
    deadline = time.monotonic() + 10
    while cmd.ran < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    cmd.close()
    assert out.read_bytes() == (
        b'{"alert": "scanner", "time": "1970-01-01T00:00:00.000000Z", "subject": "198.18.0.9", '
        b'"message": "msg; rm -rf /", "user_agent": "sipvicious"}\n'
    )
    assert (cmd.ran, cmd.failed, cmd.errors.get_nowait()) == (1, 1, "--alert-cmd: exit code 3")


def test_alert_command_time_limit(tmp_path: Path) -> None:
    cmd = AlertCommand(f"{sys.executable} -c 'import time; time.sleep(30)'", timeout_s=0.5)
    cmd.submit(Alert("scanner", 0, "x", "m"))
    cmd.submit(Alert("scanner", 0, "y", "m"))
    t0 = time.monotonic()
    time.sleep(0.2)
    cmd.close()  # the second never starts; the first is killed at its limit
    assert time.monotonic() - t0 < 3
    assert (cmd.ran, cmd.failed, cmd.dropped) == (0, 1, 1)
    assert cmd.errors.get_nowait() == "--alert-cmd: killed after 0.5 s"
