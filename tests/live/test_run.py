"""A whole live run without root: a stand-in tcpdump (tests/live/fake_tcpdump.py) writing a
real capture to the pipe, or HEP packets on loopback; and the options around it."""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from analyzer.analysis import analyze
from analyzer.capture.source import open_stream, read_frames
from analyzer.capture.stats import CaptureStats
from analyzer.decode import ip as ip_mod
from analyzer.errors import CaptureOpenError, SipflowError
from analyzer.live.cli import live, parse_duration
from analyzer.live.run import LiveConfig, LiveRun, Outputs
from analyzer.report.calls import call_dict
from tests.live.netns import alive
from tests.oracle import SAMPLE_PCAPS

FAKE = f"{sys.executable} {Path(__file__).with_name('fake_tcpdump.py')}"


@pytest.fixture
def fake_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("FAKE_PCAP", str(SAMPLE_PCAPS / "udp_fragmented.pcap"))
    monkeypatch.setenv("FAKE_FRAMES", "20")
    yield


def run_for(cfg: LiveConfig, seconds: float) -> tuple[LiveRun, list[str]]:
    lines: list[str] = []
    stop = threading.Event()
    run = LiveRun(cfg, Outputs(say=lines.append, call_lines=True), stop)
    timer = threading.Timer(seconds, stop.set)
    timer.start()
    try:
        run.run()
    finally:
        timer.cancel()
    return run, lines


def test_tcpdump_stream_to_jsonl(fake_env: None, tmp_path: Path) -> None:
    """The frames of a capture, through the tcpdump pipe, give `analyze`'s calls; tcpdump is
    stopped with SIGTERM and reaped; its last words are relayed."""
    jsonl = tmp_path / "calls.jsonl"
    cfg = LiveConfig(iface="fake0", tcpdump=FAKE, jsonl=jsonl, pcap_dir=tmp_path / "kept")
    run, lines = run_for(cfg, 1.5)
    assert run.tcpdump is not None and run.tcpdump.pid is not None
    assert not alive(run.tcpdump.pid)
    got = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert got == [call_dict(r) for r in analyze(SAMPLE_PCAPS / "udp_fragmented.pcap").calls]
    assert lines[0] == "sipflow: tcpdump: listening on fake0, link-type EN10MB (Ethernet), snapshot length 262144 bytes"
    assert lines[-1] == (
        "sipflow: live: 20 frames, 14 SIP messages, 2 conversations reported (call:answered 2); 0 evicted; "
        f"0 alerts; 2 lines written to {jsonl}; tcpdump: 20 captured, 0 dropped by kernel"
    )
    # --write-pcap kept every frame, byte for byte.
    (kept,) = (tmp_path / "kept").iterdir()
    with open_stream(kept) as a, open_stream(SAMPLE_PCAPS / "udp_fragmented.pcap") as b:
        assert list(read_frames(a, CaptureStats("a"))) == list(read_frames(b, CaptureStats("b")))


def test_count_bounds_the_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """--count 9: the first call of udp_call.pcap (2 ARP frames, then its 7), nothing of the others."""
    monkeypatch.setenv("FAKE_PCAP", str(SAMPLE_PCAPS / "udp_call.pcap"))
    jsonl = tmp_path / "calls.jsonl"
    run, _lines = run_for(LiveConfig(iface="fake0", tcpdump=FAKE, jsonl=jsonl, count=9), 20)
    got = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [(d["call_id"], d["outcome"], d["messages"]) for d in got] == [("1-udp_call@198.18.0.1", "answered", 7)]
    assert (run.summary.frames, run.summary.sip_messages) == (9, 7)


def test_kind_limits_what_is_written(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """--kind call on a capture of registrations: nothing written, all of them counted."""
    monkeypatch.setenv("FAKE_PCAP", str(SAMPLE_PCAPS / "rule_registration.pcap"))
    jsonl = tmp_path / "calls.jsonl"
    run, lines = run_for(LiveConfig(iface="fake0", tcpdump=FAKE, jsonl=jsonl, kinds=frozenset({"call"})), 1.5)
    assert jsonl.read_text() == ""
    assert run.summary.reported == {
        "registration:registered": 2,
        "registration:rejected": 1,
        "registration:unregistered": 1,
    }
    assert not any(" registration " in line for line in lines)


def test_tcpdump_that_cannot_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_FAIL", "eth9: No such device exists")
    with pytest.raises(CaptureOpenError, match=r"^tcpdump stopped: eth9: No such device exists$"):
        run_for(LiveConfig(iface="eth9", tcpdump=FAKE), 10)


def test_tcpdump_that_stops_on_its_own(fake_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """tcpdump gone mid-run (interface removed): what it captured is still reported, then an error."""
    monkeypatch.setenv("FAKE_LIFETIME", "0.5")
    jsonl = tmp_path / "calls.jsonl"
    with pytest.raises(SipflowError, match=r"^tcpdump stopped$"):
        run_for(LiveConfig(iface="fake0", tcpdump=FAKE, jsonl=jsonl), 10)
    assert len(jsonl.read_text().splitlines()) == 2


def hep_payloads(path: Path) -> list[bytes]:
    out = []
    with open_stream(path) as f:
        for _ts, _lt, data, _ in read_frames(f, CaptureStats(str(path))):
            seg = ip_mod.ipv4(data, 14).payload
            out.append(seg[8 : (seg[4] << 8 | seg[5])])
    return out


def test_hep_run_with_metrics(shared_pcaps: Path, tmp_path: Path) -> None:
    """HEP on loopback; /metrics scraped while running; the calls reported at the end."""
    port = _free_port()
    jsonl = tmp_path / "hep.jsonl"
    cfg = LiveConfig(hep=("127.0.0.1", port), jsonl=jsonl, prometheus=("127.0.0.1", 0), report_dir=tmp_path / "rep")
    lines: list[str] = []
    stop = threading.Event()
    run = LiveRun(cfg, Outputs(say=lines.append, call_lines=False), stop)
    scraped: list[str] = []

    def client() -> None:
        # Send once the listener says it is up (opening --report loads pandas first: a fixed
        # half second was not always enough on a loaded machine).
        deadline = time.monotonic() + 30
        while not any("HEP on udp+tcp" in line for line in lines) and time.monotonic() < deadline:
            time.sleep(0.05)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for p in hep_payloads(shared_pcaps / "hep-wireshark/hep.pcap"):
                s.sendto(p, ("127.0.0.1", port))
        time.sleep(1.5)  # a tick renders the metrics
        assert run.metrics is not None
        with urllib.request.urlopen(f"http://127.0.0.1:{run.metrics.port}/metrics", timeout=5) as resp:
            scraped.append(resp.headers["Content-Type"])
            scraped.append(resp.read().decode())
        stop.set()

    t = threading.Thread(target=client)
    t.start()
    run.run()
    t.join()
    content_type, text = scraped
    assert content_type == "text/plain; version=0.0.4; charset=utf-8"
    for sample in (
        "sipflow_frames_total 8",
        "sipflow_sip_messages_total 6",
        'sipflow_frames_skipped_total{reason="hep-not-sip"} 2',
        "sipflow_conversations_open 1",  # one Call-ID: the INVITE, and an OPTIONS and a PUBLISH in it
        "sipflow_hep_received_total 8",
        "sipflow_window_attempts 0",
    ):
        assert sample in text.splitlines(), sample
    got = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert got == [call_dict(r) for r in analyze(shared_pcaps / "hep-wireshark/hep.pcap").calls]
    assert [(d["kind"], d["outcome"]) for d in got] == [("call", "auth_failed")]
    assert lines[-1].endswith("HEP: 8 received, none dropped")
    report = json.loads((tmp_path / "rep" / "calls.json").read_text())
    assert [c["call_id"] for c in report["calls"]] == [d["call_id"] for d in got]
    assert (tmp_path / "rep" / "calls.csv").read_text().startswith("call_id,kind,outcome,")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_alert_command_gets_the_alert_on_stdin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The honeypot capture's scanner, through the tcpdump pipe, runs --alert-cmd once."""
    out = tmp_path / "alert.json"
    script = tmp_path / "hook.py"
    script.write_text(f"import sys; open({str(out)!r}, 'wb').write(sys.stdin.buffer.read())\n")
    monkeypatch.setenv("FAKE_PCAP", "/work/shared/pcaps/goffinet-sip_captures/Forensic_challenge_4.pcap")
    if not Path(os.environ["FAKE_PCAP"]).exists():
        pytest.skip("shared captures not present")
    jsonl = tmp_path / "calls.jsonl"
    cfg = LiveConfig(iface="fake0", tcpdump=FAKE, jsonl=jsonl, alert_cmd=f"{sys.executable} {script}")
    _run, lines = run_for(cfg, 2.0)
    alert = json.loads(out.read_text())
    assert (alert["alert"], alert["subject"], alert["user_agent"]) == (
        "scanner",
        "172.25.105.43",
        "UNfriendly-scanner - for demo purposes",
    )
    in_jsonl = [json.loads(line) for line in jsonl.read_text().splitlines() if '"alert"' in line]
    assert in_jsonl == [alert]
    assert any(" ALERT scanner: 172.25.105.43 sends OPTIONS " in line for line in lines)


def test_parse_duration() -> None:
    assert [parse_duration(t) for t in ("90", "90s", "5m", "1.5h", "1d")] == [90, 90, 300, 5400, 86400]
    with pytest.raises(SipflowError):
        parse_duration("5 minutes")


def test_cli_errors_and_filter() -> None:
    runner = CliRunner()
    res = runner.invoke(live, [])
    assert (res.exit_code, res.output) == (
        2,
        "sipflow: error: nothing to listen to: give -i INTERFACE and/or --hep [ADDR:]PORT\n",
    )
    res = runner.invoke(live, ["--hep", "collector:9060"])
    assert res.exit_code == 2 and "expected PORT, ADDRESS:PORT" in res.output
    res = runner.invoke(live, ["--hep", "9060", "--write-pcap", "x"])
    assert (res.exit_code, res.output) == (2, "sipflow: error: --write-pcap keeps what -i captures: give -i too\n")
    res = runner.invoke(live, ["-i", "any", "--print-filter"])
    assert (res.exit_code, res.output) == (
        0,
        "portrange 5060-5090 or (ip[6:2] & 0x3fff != 0) or (ip6[6] == 44) or (icmp and icmp[0] == 3) "
        "or (icmp6 and ip6[40] == 1)\n",
    )
