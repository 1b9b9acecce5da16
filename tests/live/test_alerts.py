"""Alerts: scanner user-agents (a real honeypot capture), floods, storms, a peer turning to 503, spikes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from analyzer.analysis import analyze
from analyzer.diagnose.verdict import CallReport
from analyzer.live.alerts import AlertConfig, Alerts
from analyzer.reader import read_messages
from analyzer.sip.message import Origin, SipMessage
from analyzer.sip.parser import parse_message
from tests.oracle import SAMPLE_PCAPS

_S = 1_000_000_000
T0 = 1_700_000_000 * _S


def register(src: str, n: int, ts_ns: int) -> SipMessage:
    raw = (
        f"REGISTER sip:pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP {src}:5060;branch=z9hG4bK{n}\r\n"
        f"From: <sip:{n}@pbx.test>;tag={n}\r\nTo: <sip:{n}@pbx.test>\r\nCall-ID: reg-{n}\r\n"
        f"CSeq: 1 REGISTER\r\nContact: <sip:{n}@{src}>\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    return parse_message(raw, Origin(n, (n,), ts_ns, src, 5060, "198.18.0.2", 5060, "udp"))


def challenge(dst: str, n: int, ts_ns: int, code: int = 401) -> SipMessage:
    reason = "Unauthorized" if code == 401 else "Forbidden"
    raw = (
        f"SIP/2.0 {code} {reason}\r\nVia: SIP/2.0/UDP {dst}:5060;branch=z9hG4bK{n}\r\n"
        f"From: <sip:{n}@pbx.test>;tag={n}\r\nTo: <sip:{n}@pbx.test>;tag=x\r\nCall-ID: reg-{n}\r\n"
        f"CSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    return parse_message(raw, Origin(n, (n,), ts_ns, "198.18.0.2", 5060, dst, 5060, "udp"))


def test_scanner_in_a_honeypot_capture(shared_pcaps: Path) -> None:
    alerts = Alerts()
    raised = [
        a
        for m in read_messages(shared_pcaps / "goffinet-sip_captures/Forensic_challenge_4.pcap")
        for a in alerts.message(m)
    ]
    assert [(a.kind, a.subject) for a in raised] == [("scanner", "172.25.105.43")]
    assert raised[0].details["user_agent"] == "UNfriendly-scanner - for demo purposes"
    assert raised[0].details["method"] == "OPTIONS"


def test_register_flood_once_per_cooldown() -> None:
    alerts = Alerts(AlertConfig(register_limit=3, register_window_s=10, cooldown_s=60))
    kinds = [[a.kind for a in alerts.message(register("198.18.5.5", n, T0 + n * _S))] for n in range(6)]
    assert kinds == [[], [], [], ["register_flood"], [], []]
    # A slow registrar client never trips it: one REGISTER every 4 s.
    slow = [a for n in range(10) for a in alerts.message(register("198.18.5.6", 100 + n, T0 + 4 * n * _S))]
    assert slow == []
    # After the cooldown the same source alerts again.
    later = T0 + 100 * _S
    again = [a.kind for n in range(4) for a in alerts.message(register("198.18.5.5", 200 + n, later))]
    assert again == ["register_flood"]
    assert alerts.raised["register_flood"] == 2


def test_auth_storm_counts_401_and_403_per_client() -> None:
    alerts = Alerts(AlertConfig(auth_limit=2, auth_window_s=60))
    out = [
        a
        for n, code in enumerate((401, 403, 401))
        for a in alerts.message(challenge("198.18.6.6", n, T0 + n * _S, code))
    ]
    assert [(a.kind, a.subject, a.details["last_code"]) for a in out] == [("auth_storm", "198.18.6.6", 401)]
    assert [a for a in alerts.message(challenge("198.18.6.7", 9, T0)) if a] == []


def _report(name: str, index: int) -> CallReport:
    return analyze(SAMPLE_PCAPS / name).calls[index]


def test_peer_switching_from_200_to_503() -> None:
    answered, overload = _report("udp_call.pcap", 0), _report("rule_server_error.pcap", 0)
    assert (answered.final_code, overload.final_code, answered.callee_addr) == (200, 503, overload.callee_addr)
    alerts = Alerts()
    assert alerts.report(dataclasses.replace(overload, end_ns=T0)) == []  # 503 first: no switch seen
    assert alerts.report(dataclasses.replace(answered, end_ns=T0 + _S)) == []
    (a,) = alerts.report(dataclasses.replace(overload, end_ns=T0 + 2 * _S))
    assert (a.kind, a.subject, a.details["previous_code"], a.details["code"]) == (
        "peer_503",
        "198.18.0.2:5060",
        200,
        503,
    )
    assert a.message == "peer 198.18.0.2:5060 answered a call with 2xx, now with 503 Service Unavailable"


def test_failure_spike_against_the_baseline() -> None:
    answered, busy = _report("udp_call.pcap", 0), _report("rule_callee_busy.pcap", 0)
    assert busy.breaking is not None and answered.breaking is None
    alerts = Alerts(AlertConfig(spike_window_s=60, baseline_window_s=600, spike_min_calls=10))
    out = []
    # Ten minutes of calls, one in ten failing: the baseline.
    for i in range(100):
        r = busy if i % 10 == 0 else answered
        out += alerts.report(dataclasses.replace(r, end_ns=T0 + i * 6 * _S))
    assert out == []
    # Then a minute in which 8 of 10 calls fail.
    start = T0 + 600 * _S
    for i in range(10):
        r = busy if i < 8 else answered
        out += alerts.report(dataclasses.replace(r, end_ns=start + i * 5 * _S))
    # It fires on the 4th failure: with the 7 answered calls of the minute before, 4 of 11
    # (36%) against 10 of 93 (11%) before that; once only (cooldown).
    assert [(a.kind, a.time_ns - start, dict(a.details)) for a in out] == [
        (
            "failure_spike",
            15 * _S,
            {"calls": 11, "failed": 4, "rate": 0.3636, "baseline_rate": 0.1075, "baseline_calls": 93},
        )
    ]
