"""`sipflow live` against real traffic: SIPp calls between two network namespaces, captured
by tcpdump on one end of the veth pair; and Kamailio's siptrace sending HEP3.

Each test builds its own namespaces (tests/live/netns.py) and removes them afterwards;
every process has a time limit. Skipped unless root with ip, sipp and tcpdump (and
kamailio for the HEP test). About 55 s in all: the first test waits out the 32 s linger
(RFC 3261 Timers D/J/K) after which a finished call is reported.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from analyzer.analysis import analyze
from analyzer.report.calls import call_dict
from tests.live.netns import ROOT, Live, NsPair, alive, ns_cmd, sipp

KAMAILIO_CFG = ROOT / "tests" / "live" / "kamailio_hep.cfg"


def _calls(path: Path) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return [d for d in lines if "alert" not in d]


def _wait_lines(path: Path, n: int, limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if path.exists() and len(path.read_text().splitlines()) >= n:
            return
        time.sleep(0.2)
    got = path.read_text() if path.exists() else "(no file)"
    raise AssertionError(f"fewer than {n} lines in {path} after {limit_s} s: {got}")


def _done(*procs: subprocess.Popen[bytes], limit_s: float = 30) -> None:
    for p in procs:
        assert p.wait(timeout=limit_s) == 0, f"SIPp failed: {p.args!r}"


def _dial_list(tmp: Path, name: str, *users: str) -> Path:
    path = tmp / f"{name}.csv"
    path.write_text("SEQUENTIAL\n" + "".join(f"{u};\n" for u in users))
    return path


def test_calls_reported_as_they_end(make_pair: Callable[[int], NsPair], tmp_path: Path) -> None:
    """3 answered calls, 1 answered call whose ~4 KB INVITE is IP-fragmented (MTU 1300),
    1 call answered 486: each reported once it is over, before sipflow stops."""
    pair = make_pair(1300)
    jsonl, pcaps = tmp_path / "calls.jsonl", tmp_path / "pcap"
    live = Live(
        pair.uas_ns,
        *("-i", pair.uas_if, "--jsonl", str(jsonl), "--write-pcap", str(pcaps), "--duration", "80"),
        cwd=tmp_path,
    )
    try:
        live.wait_for("listening on", 10)
        uas = sipp(pair.uas_ns, "uas.xml", "-i", pair.uas_ip, "-p", "5060", "-m", "4", cwd=tmp_path)
        busy_uas = sipp(pair.uas_ns, "uas_reject.xml", "-i", pair.uas_ip, "-p", "5070", "-m", "1", cwd=tmp_path)
        time.sleep(0.5)  # both listening before the first INVITE
        common = ("-i", pair.uac_ip, "-p", "5060", "-m")
        _done(sipp(pair.uac_ns, "uac.xml", *common, "3", "-r", "5", "-d", "200",
                   "-cid_str", "%u-answered@%s", f"{pair.uas_ip}:5060", cwd=tmp_path))  # fmt: skip
        _done(sipp(pair.uac_ns, "uac_large.xml", *common, "1", "-d", "200",
                   "-cid_str", "%u-large@%s", f"{pair.uas_ip}:5060", cwd=tmp_path))  # fmt: skip
        dial = _dial_list(tmp_path, "busy", "busy")
        _done(sipp(pair.uac_ns, "uac_reject.xml", *common, "1", "-inf", str(dial),
                   "-cid_str", "%u-busy@%s", f"{pair.uas_ip}:5070", cwd=tmp_path))  # fmt: skip
        _done(uas, busy_uas)
        # Reported when the store lets them go (32 s after their last message), not at the end.
        _wait_lines(jsonl, 5, 50)
        assert live.proc.poll() is None, "the calls were only written when sipflow stopped"
        assert live.stop() == 0
    finally:
        live.kill()
    calls = {str(d["call_id"]).split("@")[0]: d for d in _calls(jsonl)}
    assert sorted(calls) == ["1-answered", "1-busy", "1-large", "2-answered", "3-answered"]
    for name in ("1-answered", "2-answered", "3-answered", "1-large"):
        d = calls[name]
        assert (d["outcome"], d["state"], d["messages"], d["hung_up_by"]) == ("answered", "COMPLETED", 7, "caller")
        assert d["final"] == {"code": 200, "reason": "OK"}
        assert d["breaking"] is None
    busy = calls["1-busy"]
    assert (busy["outcome"], busy["final"]) == ("busy", {"code": 486, "reason": "Busy Here"})
    assert isinstance(busy["breaking"], dict)
    assert (busy["breaking"]["code"], busy["breaking"]["rule"]) == (486, "callee_rejected")
    # The frames kept by --write-pcap, read offline, give the same calls: one code path.
    (kept,) = sorted(pcaps.iterdir())
    offline = analyze(kept)
    assert {d["call_id"]: d for d in map(call_dict, offline.calls)} == {d["call_id"]: d for d in _calls(jsonl)}
    # The large INVITE really came in fragments: 3 held until the 4th completed it.
    assert offline.stats.frames_by_reason["ip-fragment"] == 3
    assert any("5 conversations reported (call:answered 4, call:busy 1)" in line for line in live.lines)


def test_sigterm_flushes_open_calls(make_pair: Callable[[int], NsPair], tmp_path: Path) -> None:
    """SIGTERM in the middle of a call: exit 0, every call written (the open one as it
    stands), tcpdump reaped."""
    pair = make_pair(1500)
    jsonl = tmp_path / "calls.jsonl"
    live = Live(pair.uas_ns, "-i", pair.uas_if, "--jsonl", str(jsonl), "--duration", "60", cwd=tmp_path)
    try:
        live.wait_for("listening on", 10)
        tcpdump = live.tcpdump_pid()
        assert Path(f"/proc/{tcpdump}/comm").read_text().strip() == "tcpdump"
        uas = sipp(pair.uas_ns, "uas.xml", "-i", pair.uas_ip, "-p", "5060", "-m", "3", cwd=tmp_path)
        time.sleep(0.5)
        common = ("-i", pair.uac_ip, "-p", "5060", "-m")
        _done(sipp(pair.uac_ns, "uac.xml", *common, "2", "-r", "5", "-d", "200",
                   "-cid_str", "%u-short@%s", f"{pair.uas_ip}:5060", cwd=tmp_path))  # fmt: skip
        # Answered, then a 20 s pause before its BYE: still going at SIGTERM.
        long_call = sipp(pair.uac_ns, "uac.xml", *common, "1", "-d", "20000",
                         "-cid_str", "%u-long@%s", f"{pair.uas_ip}:5060", cwd=tmp_path)  # fmt: skip
        time.sleep(1.5)
        assert live.stop(signal.SIGTERM) == 0
        assert not alive(tcpdump), "tcpdump left running"
        long_call.terminate()
        uas.terminate()
        long_call.wait(timeout=10)
        uas.wait(timeout=10)
    finally:
        live.kill()
    calls = {str(d["call_id"]).split("@")[0]: d for d in _calls(jsonl)}
    assert sorted(calls) == ["1-long", "1-short", "2-short"]
    for name in ("1-short", "2-short"):
        assert (calls[name]["outcome"], calls[name]["messages"]) == ("answered", 7)
    long = calls["1-long"]
    # INVITE 100 180 200 ACK: in the call, no BYE yet.
    assert (long["outcome"], long["state"], long["messages"], long["duration_s"]) == ("answered", "CONFIRMED", 5, None)
    assert any("3 conversations reported" in line for line in live.lines)


def test_without_root_through_cap_net_raw(make_pair: Callable[[int], NsPair], tmp_path: Path) -> None:
    """docs/live.md's recipe: sipflow as an ordinary user (nobody, no capabilities), tcpdump
    with CAP_NET_RAW as a file capability. A copy of tcpdump is given them,
    in a directory removed afterwards; the system's tcpdump is not touched."""
    if shutil.which("setcap") is None or shutil.which("setpriv") is None:
        pytest.skip("setcap/setpriv not installed")
    pair = make_pair(1500)
    work = Path(tempfile.mkdtemp(prefix="sfl-cap-"))
    try:
        tcpdump = work / "tcpdump"
        shutil.copy2(shutil.which("tcpdump") or "", tcpdump)
        subprocess.run(["setcap", "cap_net_raw=eip", str(tcpdump)], check=True, timeout=10)
        work.chmod(0o777)  # nobody writes the JSON lines here
        jsonl = work / "calls.jsonl"
        nobody = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all")
        live = Live(pair.uas_ns, "-i", pair.uas_if, "--tcpdump", str(tcpdump), "--jsonl", str(jsonl),
                    "--duration", "30", cwd=work, wrap=nobody)  # fmt: skip
        try:
            live.wait_for("listening on", 15)
            status = dict(line.split(":", 1) for line in Path(f"/proc/{live.pid}/status").read_text().splitlines())
            assert (status["Uid"].split(), status["CapEff"].strip()) == (["65534"] * 4, "0000000000000000")
            uas = sipp(pair.uas_ns, "uas.xml", "-i", pair.uas_ip, "-p", "5060", "-m", "2", cwd=tmp_path)
            time.sleep(0.5)
            _done(sipp(pair.uac_ns, "uac.xml", "-i", pair.uac_ip, "-p", "5060", "-m", "2", "-r", "5", "-d", "200",
                       "-cid_str", "%u-nobody@%s", f"{pair.uas_ip}:5060", cwd=tmp_path))  # fmt: skip
            _done(uas)
            time.sleep(0.5)
            assert live.stop() == 0
        finally:
            live.kill()
        assert jsonl.stat().st_uid == 65534
        calls = {str(d["call_id"]).split("@")[0]: d for d in _calls(jsonl)}
        assert {k: (d["outcome"], d["messages"]) for k, d in calls.items()} == {
            "1-nobody": ("answered", 7),
            "2-nobody": ("answered", 7),
        }
    finally:
        shutil.rmtree(work)


def test_hep_from_kamailio(make_ns: Callable[[], str], tmp_path: Path) -> None:
    """Kamailio's siptrace (HEP3, auth key) copies both legs of two proxied calls to
    sipflow's HEP listener, which reports the calls."""
    if shutil.which("kamailio") is None:
        pytest.skip("kamailio not installed")
    ns = make_ns()
    jsonl = tmp_path / "calls.jsonl"
    live = Live(ns, "--hep", "127.0.0.1:9060", "--hep-key", "sfl-key", "--jsonl", str(jsonl), "--duration", "40",
                cwd=tmp_path)  # fmt: skip
    rundir = tmp_path / "kamailio"
    rundir.mkdir()
    defines = (
        'PROXY_IP="127.0.0.3"', "PROXY_PORT=5060", 'UAS_URI="sip:127.0.0.4:5060"',
        'HEP_URI="sip:127.0.0.1:9060"', 'HEP_KEY="sfl-key"',
    )  # fmt: skip
    kamailio = subprocess.Popen(
        ns_cmd(ns, "timeout", "40", "kamailio", "-f", str(KAMAILIO_CFG), "-DD", "-E", "-m", "32", "-M", "4",
               "-Y", str(rundir), *(a for d in defines for a in ("-A", d))),
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "kamailio.log").open("wb"),
    )  # fmt: skip
    try:
        live.wait_for("HEP on udp+tcp 127.0.0.1:9060", 10)
        _wait_listening(ns, "127.0.0.3:5060", 10)
        uas = sipp(ns, "uas.xml", "-i", "127.0.0.4", "-p", "5060", "-m", "2", cwd=tmp_path)
        time.sleep(0.5)
        _done(sipp(ns, "uac.xml", "-i", "127.0.0.2", "-p", "5060", "-m", "2", "-r", "5", "-d", "200",
                   "-cid_str", "%u-hep@%s", "127.0.0.3:5060", cwd=tmp_path))  # fmt: skip
        _done(uas)
        time.sleep(0.5)  # the last HEP copies are on their way
        assert live.stop() == 0
    finally:
        live.kill()
        kamailio.terminate()
        kamailio.wait(timeout=10)
    calls = {str(d["call_id"]).split("@")[0]: d for d in _calls(jsonl)}
    assert sorted(calls) == ["1-hep", "2-hep"]
    for d in calls.values():
        # Both legs through the proxy: INVITE 100 INVITE 100 180 180 200 200 ACK ACK BYE BYE 200 200.
        assert (d["outcome"], d["state"], d["messages"], d["callee_addr"]) == (
            "answered",
            "COMPLETED",
            14,
            "127.0.0.3:5060",
        )
    assert any("HEP: 28 received, none dropped" in line for line in live.lines), live.lines


def _wait_listening(ns: str, addr: str, limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        out = subprocess.run(ns_cmd(ns, "ss", "-Hlun"), capture_output=True, text=True, timeout=10).stdout
        if addr in out:
            time.sleep(0.5)  # the socket is bound before Kamailio's workers start
            return
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on {addr}")
