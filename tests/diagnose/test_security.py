"""Security findings: a real honeypot capture, every public and sample capture (nothing else
fires), and each rule's thresholds on small message sequences built by the parser."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import pytest

from analyzer.analysis import analyze
from analyzer.correlate.model import Outcome
from analyzer.diagnose.security import (
    SecurityConfig,
    SecurityFinding,
    SecurityWatch,
    international_number,
    scanner_tool,
)
from analyzer.diagnose.verdict import CallReport
from analyzer.sip.message import Origin, SipMessage
from analyzer.sip.parser import parse_message

_S = 1_000_000_000
T0 = 1_700_000_000 * _S
PBX = "198.18.0.2"
FORENSIC = "goffinet-sip_captures/Forensic_challenge_4.pcap"


def request(
    method: str,
    src: str,
    ts_ns: int,
    frame: int,
    call_id: str,
    *,
    uri: str = "sip:100@pbx.test",
    branch: str = "",
    headers: str = "",
    dst: str = PBX,
    user: str = "100",
) -> SipMessage:
    raw = (
        f"{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {src}:5060;branch={branch or f'z9hG4bK{frame}'}\r\n"
        f"From: <sip:{user}@pbx.test>;tag=f{frame}\r\nTo: <sip:{user}@pbx.test>\r\nCall-ID: {call_id}\r\n"
        f"CSeq: 1 {method}\r\n{headers}Content-Length: 0\r\n\r\n"
    ).encode()
    return parse_message(raw, Origin(frame, (frame,), ts_ns, src, 5060, dst, 5060, "udp"))


def response(
    status: int,
    dst: str,
    ts_ns: int,
    frame: int,
    call_id: str,
    branch: str,
    method: str = "REGISTER",
    *,
    headers: str = "",
    src: str = PBX,
) -> SipMessage:
    raw = (
        f"SIP/2.0 {status} Reason\r\nVia: SIP/2.0/UDP {dst}:5060;branch={branch}\r\n"
        f"From: <sip:100@pbx.test>;tag=f\r\nTo: <sip:100@pbx.test>;tag=t\r\nCall-ID: {call_id}\r\n"
        f"CSeq: 1 {method}\r\n{headers}Content-Length: 0\r\n\r\n"
    ).encode()
    return parse_message(raw, Origin(frame, (frame,), ts_ns, src, 5060, dst, 5060, "udp"))


def creds(user: str) -> str:
    return f'Authorization: Digest username="{user}",realm="pbx.test",nonce="n",uri="sip:pbx.test",response="ab12"\r\n'


def guess(watch: SecurityWatch, src: str, n: int, ts_ns: int, user: str = "100", status: int = 401) -> None:
    """One REGISTER with credentials from ``src`` and its final answer (frames 2n, 2n+1)."""
    watch.message(request("REGISTER", src, ts_ns, 2 * n, f"reg-{n}", headers=creds(user)))
    watch.message(response(status, src, ts_ns + _S // 10, 2 * n + 1, f"reg-{n}", f"z9hG4bK{2 * n}"))


def rules(watch: SecurityWatch) -> list[tuple[str, str, str, int]]:
    return [(f.rule, f.severity, f.src, f.count) for f in watch.findings()]


# -- real captures ---------------------------------------------------------------------------------


def test_honeypot_scanner(shared_pcaps: Path) -> None:
    """Honeynet Forensic Challenge 4: one OPTIONS from a renamed SIPVicious svmap (tshark frame 1)."""
    a = analyze(shared_pcaps / FORENSIC)
    assert a.security == [
        SecurityFinding(
            rule="scanner",
            severity="medium",
            src="172.25.105.43",
            first_ns=a.security[0].first_ns,
            last_ns=a.security[0].first_ns,
            count=1,
            frames=(1,),
            summary="172.25.105.43 sent 1 request(s) (OPTIONS) marked as the SIP scanner friendly-scanner "
            "(User-Agent 'UNfriendly-scanner - for demo purposes')",
            hint=a.security[0].hint,
            details=(
                ("tool", "friendly-scanner"),
                ("evidence", "User-Agent 'UNfriendly-scanner - for demo purposes'"),
                ("methods", "OPTIONS"),
            ),
        )
    ]
    assert a.security[0].first_ns == 1_272_737_580_947_873_000  # tshark: frame.time_epoch of frame 1
    streamed = analyze(shared_pcaps / FORENSIC, keep_messages=False)
    assert streamed.security == a.security


def _captures(root: Path, patterns: tuple[str, ...]) -> list[Path]:
    return sorted(p for pattern in patterns for p in root.glob(pattern) if p.suffix not in (".tsv", ".md", ".pem"))


def test_ordinary_captures_give_no_findings(shared_pcaps: Path, sample_pcaps: Path) -> None:
    """Every public capture (calls, registrations, a fuzzed copy of aaa.pcap) and every sample
    capture: only the honeypot's scanner fires. aaa.pcap's user has refused credentials and
    dials abroad, but it registers: no toll fraud."""
    found = {}
    paths = _captures(shared_pcaps, ("*/*",)) + _captures(sample_pcaps, ("*.pcap", "*.pcapng", "*.gz"))
    assert len(paths) >= 120
    for path in paths:
        security = analyze(path, keep_messages=False).security
        if security:
            found[str(path.relative_to(path.parents[1]))] = [(f.rule, f.src) for f in security]
    assert found == {FORENSIC: [("scanner", "172.25.105.43")]}


# -- scanner ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "tool"),
    [
        ("User-Agent: friendly-scanner\r\n", "friendly-scanner"),
        ("User-Agent: sipcli/v1.8\r\n", "sipcli"),
        ("User-Agent: VaxSIPUserAgent/3.1\r\n", "vaxsipuseragent"),
        ("User-Agent: pplsip\r\n", "pplsip"),
        ("uSeR-aGeNt: Friendly-Scanner\r\n", "friendly-scanner"),  # names and values in any case
        ("User-Agent:\r\n\tfriendly-scanner\r\n", "friendly-scanner"),  # folded
        ("User-Agent: sipsak 0.9.6\r\n", None),  # operators' own health checks
        ("User-Agent: Linphone/3.6.1 (eXosip2/4.0.0)\r\n", None),
    ],
)
def test_scanner_user_agents(headers: str, tool: str | None) -> None:
    found = scanner_tool(request("OPTIONS", "203.0.113.9", T0, 1, "scan-1", headers=headers))
    assert (found[0] if found else None) == tool


def test_scanner_from_marks() -> None:
    raw = (
        b"OPTIONS sip:nm SIP/2.0\r\nVia: SIP/2.0/TCP nm;branch=foo\r\nFrom: <sip:nm@nm>;tag=root\r\n"
        b"To: <sip:nm2@nm2>\r\nCall-ID: 50000\r\nCSeq: 42 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
    nmap = parse_message(raw, Origin(1, (1,), T0, "203.0.113.7", 40000, PBX, 5060, "tcp"))
    assert scanner_tool(nmap) == ("nmap", "From sip:nm@nm")
    vicious = raw.replace(b"From: <sip:nm@nm>", b'From: "sipvicious"<sip:100@1.1.1.1>')
    msg = parse_message(vicious, nmap.origin)
    assert scanner_tool(msg) == ("sipvicious", "From names sipvicious")
    # header values are read in any case: so are the marks (the bytes' first look missed these)
    odd = parse_message(raw.replace(b"From: <sip:nm@nm>", b'From: "SiPvIcIoUs"<sip:100@1.1.1.1>'), nmap.origin)
    assert scanner_tool(odd) == ("sipvicious", "From names sipvicious")
    shouted = parse_message(raw.replace(b"<sip:nm@nm>", b"<SIP:NM@NM>"), nmap.origin)
    assert scanner_tool(shouted) == ("nmap", "From sip:nm@nm")


def test_scanner_one_finding_per_source() -> None:
    watch = SecurityWatch()
    for n in range(3):
        watch.message(
            request("OPTIONS", "203.0.113.9", T0 + n * _S, n + 1, f"s{n}", headers="User-Agent: sipvicious\r\n")
        )
    watch.message(request("INVITE", "203.0.113.9", T0 + 5 * _S, 9, "s9", headers="User-Agent: sipvicious\r\n"))
    [f] = watch.findings()
    assert (f.rule, f.src, f.count, f.frames, f.first_ns, f.last_ns) == (
        "scanner",
        "203.0.113.9",
        4,
        (1, 2, 3, 9),
        T0,
        T0 + 5 * _S,
    )
    assert f.details_dict["methods"] == "INVITE,OPTIONS"


# -- register_bruteforce ---------------------------------------------------------------------------


def test_bruteforce_needs_ten_refusals_in_a_minute() -> None:
    watch = SecurityWatch()
    for n in range(9):
        guess(watch, "203.0.113.20", n, T0 + n * 5 * _S)
    assert watch.findings() == []
    guess(watch, "203.0.113.20", 9, T0 + 45 * _S)
    [f] = watch.findings()
    assert (f.rule, f.severity, f.src, f.count) == ("register_bruteforce", "medium", "203.0.113.20", 10)
    assert f.frames == (1, 3, 5, 7, 9)
    assert f.first_ns == T0 + _S // 10
    assert f.details_dict == {"usernames": 1, "examples": "100"}
    guess(watch, "203.0.113.20", 10, T0 + 50 * _S, status=403)
    assert rules(watch) == [("register_bruteforce", "medium", "203.0.113.20", 11)]


def test_credentials_in_any_case_count() -> None:
    """A header name is read in any case (RFC 3261 §7.3.1): so are the credentials of a guesser
    that writes AUTHORIZATION or aUtHoRiZaTiOn (the watch's first look at the bytes missed it)."""
    for n, name in enumerate(["AUTHORIZATION", "aUtHoRiZaTiOn", "Proxy-AuthoriZation"]):
        watch = SecurityWatch()
        for k in range(10):
            header = creds("100").replace("Authorization", name)
            frame = 100 * n + 2 * k
            watch.message(request("REGISTER", "203.0.113.24", T0 + k * _S, frame, f"r{n}-{k}", headers=header))
            watch.message(response(401, "203.0.113.24", T0 + k * _S, frame + 1, f"r{n}-{k}", f"z9hG4bK{frame}"))
        assert rules(watch) == [("register_bruteforce", "medium", "203.0.113.24", 10)], name


def test_bruteforce_slow_retries_and_stale_nonces_do_not_count() -> None:
    watch = SecurityWatch()
    for n in range(12):  # one refusal every 7 s: never 10 within 60 s
        guess(watch, "203.0.113.21", n, T0 + n * 7 * _S)
    stale = 'WWW-Authenticate: Digest realm="pbx.test",nonce="n2",stale=true\r\n'
    for n in range(20, 40):  # RFC 3261 §22.4: a stale nonce is no refusal
        watch.message(request("REGISTER", "203.0.113.22", T0, 2 * n, f"reg-{n}", headers=creds("100")))
        watch.message(response(401, "203.0.113.22", T0, 2 * n + 1, f"reg-{n}", f"z9hG4bK{2 * n}", headers=stale))
    for n in range(40, 60):  # first REGISTERs without credentials, challenged: ordinary
        watch.message(request("REGISTER", "203.0.113.23", T0, 2 * n, f"reg-{n}"))
        watch.message(response(401, "203.0.113.23", T0, 2 * n + 1, f"reg-{n}", f"z9hG4bK{2 * n}"))
    assert watch.findings() == []


def test_bruteforce_five_usernames_then_a_guessed_password() -> None:
    watch = SecurityWatch()
    for n, user in enumerate(("100", "101", "102", "103")):
        guess(watch, "203.0.113.30", n, T0 + n * _S, user=user)
    assert watch.findings() == []
    guess(watch, "203.0.113.30", 4, T0 + 4 * _S, user="104")
    assert rules(watch) == [("register_bruteforce", "medium", "203.0.113.30", 5)]
    guess(watch, "203.0.113.30", 5, T0 + 5 * _S, user="999", status=200)  # never refused: no guess
    assert rules(watch) == [("register_bruteforce", "medium", "203.0.113.30", 5)]
    guess(watch, "203.0.113.30", 6, T0 + 6 * _S, user="102", status=200)
    [f] = watch.findings()
    assert (f.severity, f.count, f.last_ns) == ("high", 5, T0 + 6 * _S + _S // 10)
    assert f.details_dict["guessed_user"] == "102"
    assert f.details_dict["success_frame"] == 13
    assert f.summary == (
        "203.0.113.30: 5 REGISTER attempts refused, then the REGISTER of '102' succeeded (frame 13): "
        "likely guessed password"
    )


def test_extension_probing_without_credentials() -> None:
    watch = SecurityWatch()
    for n in range(5):  # svwar: REGISTER for 100…104, "no such user" answers
        watch.message(request("REGISTER", "203.0.113.31", T0, 2 * n, f"reg-{n}", user=f"10{n}"))
        watch.message(response(404, "203.0.113.31", T0, 2 * n + 1, f"reg-{n}", f"z9hG4bK{2 * n}"))
    assert rules(watch) == [("register_bruteforce", "medium", "203.0.113.31", 5)]


# -- invite_flood ----------------------------------------------------------------------------------


def _invites(watch: SecurityWatch, src: str, n: int, per_s: int) -> None:
    for i in range(n):
        watch.message(request("INVITE", src, T0 + i * _S // per_s, i + 1, f"{src}-{i}"))


def test_invite_flood_rate() -> None:
    watch = SecurityWatch()
    _invites(watch, "203.0.113.40", 499, 50)  # 499 new calls in 10 s: below 50 a second
    assert watch.findings() == []
    _invites(watch, "203.0.113.41", 600, 50)
    [f] = watch.findings()
    assert (f.rule, f.src, f.count, f.first_ns) == ("invite_flood", "203.0.113.41", 600, T0 + 499 * _S // 50)
    assert f.details_dict == {"peak_per_window": 500, "window_s": 10}


def test_retransmissions_and_reinvites_are_not_new_calls() -> None:
    watch = SecurityWatch()
    for i in range(600):
        watch.message(request("INVITE", "203.0.113.42", T0 + i * _S // 60, i + 1, "same-call"))
    assert watch.findings() == []


def _report(base: CallReport, n: int, src: str, start_ns: int, outcome: Outcome, user: str = "") -> CallReport:
    return dataclasses.replace(
        base,
        call_id=f"r{n}",
        start_ns=start_ns,
        end_ns=start_ns,
        caller_addr=f"{src}:5060",
        outcome=outcome,
        request_user=user,
        frames=(n,),
    )


@pytest.fixture(scope="module")
def base_report(sample_pcaps: Path) -> CallReport:
    return analyze(sample_pcaps / "udp_call.pcap").calls[0]


def test_unanswered_surge(base_report: CallReport) -> None:
    watch = SecurityWatch()
    for n in range(49):
        watch.report(_report(base_report, n, "203.0.113.50", T0 + n * _S, Outcome.TIMEOUT))
    assert watch.findings() == []
    watch.report(_report(base_report, 49, "203.0.113.50", T0 + 49 * _S, Outcome.TIMEOUT))
    assert rules(watch) == [("invite_flood", "medium", "203.0.113.50", 50)]
    for n in range(100):  # answered calls never count
        watch.report(_report(base_report, 100 + n, "203.0.113.51", T0, Outcome.ANSWERED))
    assert len(watch.findings()) == 1


# -- toll_fraud ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("sip:+442079460000@pbx.test;user=phone", "+442079460000"),
        ("tel:+1-212-555-0100", "+12125550100"),
        ("0097239287044", "0097239287044"),
        ("sip:011972592000000@pbx.test", "011972592000000"),
        ("sip:000123456789@pbx.test", ""),  # 000: emergency in Australia
        ("sip:+123@pbx.test", ""),  # too short for a number abroad
        ("sip:0044abc@pbx.test", ""),
        ("sip:35104724@pbx.test", ""),
        ("", ""),
    ],
)
def test_international_number(text: str, number: str) -> None:
    assert international_number(text) == number


def test_toll_fraud_probing(base_report: CallReport) -> None:
    watch = SecurityWatch()
    src = "203.0.113.60"
    for n in range(4):
        watch.report(_report(base_report, n, src, T0 + n * _S, Outcome.REJECTED, f"00972592{n:06d}"))
    assert watch.findings() == []
    watch.report(_report(base_report, 4, src, T0 + 4 * _S, Outcome.REJECTED, "011972592000004"))
    [f] = watch.findings()
    assert (f.rule, f.severity, f.count, f.frames) == ("toll_fraud", "medium", 5, (0, 1, 2, 3, 4))
    assert f.summary == f"{src} tried 5 international numbers (5 of 5 calls refused or unanswered): " + (
        "dial-plan probing for a route abroad"
    )
    watch.report(_report(base_report, 5, src, T0 + 5 * _S, Outcome.ANSWERED, "+97259200005"))
    [f] = watch.findings()
    assert (f.severity, f.count) == ("high", 6)
    assert f.details_dict["answered_example"] == "+97259200005"


def test_a_trunk_calling_abroad_is_no_fraud(base_report: CallReport) -> None:
    watch = SecurityWatch()
    outcomes = (Outcome.ANSWERED, Outcome.BUSY, Outcome.NO_ANSWER, Outcome.REJECTED, Outcome.CANCELLED)
    for n in range(50):
        watch.report(_report(base_report, n, "198.51.100.1", T0 + n * _S, outcomes[n % 5], f"+4420794600{n:02d}"))
    assert watch.findings() == []


def test_toll_fraud_after_refused_credentials(base_report: CallReport) -> None:
    watch = SecurityWatch()
    src = "203.0.113.61"
    guess(watch, src, 0, T0)  # its password is refused, and it never registers
    watch.report(_report(base_report, 7, src, T0 + _S, Outcome.AUTH_FAILED, "sip:0097239287044@pbx.test"))
    [f] = watch.findings()
    assert (f.rule, f.severity, f.count) == ("toll_fraud", "medium", 1)
    assert f.summary == (
        f"{src} called 1 international number(s) although its credentials were refused "
        "and it never registered in this capture"
    )
    # The same with a registration that worked: aaa.pcap's user, no finding.
    watch = SecurityWatch()
    guess(watch, src, 0, T0)
    guess(watch, src, 1, T0 + _S, status=200)
    watch.report(_report(base_report, 7, src, T0 + 2 * _S, Outcome.AUTH_FAILED, "0097239287044"))
    assert watch.findings() == []


# -- spoofed_response ------------------------------------------------------------------------------


A, B = "198.18.0.1", "198.18.0.2"


def _spoof_setup() -> SecurityWatch:
    """A sent B an OPTIONS at T0, and B answered it."""
    watch = SecurityWatch()
    watch.message(request("OPTIONS", A, T0, 1, "ping-1", dst=B))
    watch.message(response(200, A, T0, 2, "ping-1", "z9hG4bK1", "OPTIONS", src=B))
    return watch


def test_response_to_no_request() -> None:
    watch = _spoof_setup()
    watch.message(response(200, A, T0 + 40 * _S, 3, "forged", "z9hG4bKx", "INVITE", src=B))
    watch.message(response(200, A, T0 + 41 * _S, 4, "forged", "z9hG4bKx", "INVITE", src=B))  # resent
    assert watch.findings() == []  # waits for an ACK
    watch.message(request("OPTIONS", A, T0 + 45 * _S, 5, "ping-2", dst=B))
    [f] = watch.findings()
    assert (f.rule, f.severity, f.src, f.count, f.frames) == ("spoofed_response", "low", B, 1, (3,))
    assert f.details_dict == {"example_response": "200 Reason"}


def test_response_cleared_by_its_ack() -> None:
    """An INVITE sent before the capture began, answered late: the ACK shows it was real."""
    watch = _spoof_setup()
    watch.message(response(200, A, T0 + 40 * _S, 3, "rang-long", "z9hG4bKx", "INVITE", src=B))
    watch.message(request("ACK", A, T0 + 40 * _S, 4, "rang-long", dst=B))
    watch.message(request("OPTIONS", A, T0 + 60 * _S, 5, "ping-2", dst=B))
    assert watch.findings() == []


@pytest.mark.parametrize("case", ["early", "one-way", "damaged", "damaged-path"])
def test_response_to_no_request_needs_evidence(case: str) -> None:
    watch = SecurityWatch() if case == "one-way" else _spoof_setup()
    if case == "one-way":  # the capture never saw A send B a request
        watch.message(response(200, A, T0, 1, "ping-1", "z9hG4bK1", "OPTIONS", src=B))
    if case == "damaged-path":  # A sent B a damaged request after a sound one: Call-IDs prove nothing that way
        watch.message(request("OPTIONS", A, T0 + 20 * _S, 2, "bad call id", dst=B))
    when = T0 + (10 if case == "early" else 40) * _S  # early: may answer a request before the capture
    call_id = "bad call id" if case == "damaged" else "forged"
    watch.message(response(200, A, when, 3, call_id, "z9hG4bKx", "INVITE", src=B))
    watch.message(request("OPTIONS", A, when + 10 * _S, 5, "ping-2", dst=B))
    assert watch.findings() == []


def test_2xx_to_a_branch_never_sent() -> None:
    watch = _spoof_setup()
    watch.message(request("INVITE", A, T0 + 40 * _S, 3, "call-1", dst=B, branch="z9hG4bKreal"))
    watch.message(response(200, A, T0 + 41 * _S, 4, "call-1", "z9hG4bKreal", "INVITE", src=B))
    assert watch.findings() == []
    watch.message(response(200, A, T0 + 42 * _S, 5, "call-1", "z9hG4bKforged", "INVITE", src="203.0.113.70"))
    watch.message(response(486, A, T0 + 42 * _S, 6, "call-1", "z9hG4bKforged2", "INVITE", src=B))  # not a 2xx
    [f] = watch.findings()
    assert (f.rule, f.severity, f.src, f.count, f.frames) == ("spoofed_response", "medium", "203.0.113.70", 1, (5,))
    assert f.details_dict == {"example_branch": "z9hG4bKforged"}


# -- bounds ----------------------------------------------------------------------------------------


def test_tables_are_bounded() -> None:
    watch = SecurityWatch(SecurityConfig(max_sources=8, max_findings=3, max_calls=16, max_pending=4))
    for n in range(100):
        src = f"203.0.{n // 250}.{n % 250 + 1}"
        watch.message(request("REGISTER", src, T0 + n, n + 1, f"c{n}", headers="User-Agent: friendly-scanner\r\n"))
    assert len(watch.findings()) == 3
    assert watch.evicted == {"sources": 0, "pending": 96, "calls": 84, "paths": 92, "findings": 97, "candidates": 0}
    for n in range(20):
        watch.message(request("INVITE", f"198.51.100.{n + 1}", T0 + n, 200 + n, f"i{n}"))
    assert watch.evicted["sources"] == 12


def test_a_settled_watch_replays_and_finds_as_before(base_report: CallReport) -> None:
    """What a process of the calls hands on once every message is in (``settled``): the same
    findings, counts of what was forgot, and replay of reports, without the message tables."""

    def fed() -> SecurityWatch:
        watch = SecurityWatch(SecurityConfig(max_calls=256))
        for n in range(400):
            ua = "User-Agent: friendly-scanner\r\n"
            watch.message(request("OPTIONS", "203.0.113.9", T0 + n, n + 1, f"o{n}", headers=ua))
        guess(watch, "203.0.113.61", 100, T0 + _S)  # refused, and it never registers
        watch.message(request("REGISTER", "203.0.113.62", T0 + 2 * _S, 300, "open-reg"))  # no answer yet
        return watch

    whole, settled = fed(), fed().settled()
    assert len(pickle.dumps(settled)) < len(pickle.dumps(whole)) // 4
    assert (
        settled.evicted
        == whole.evicted
        == {
            "sources": 0,
            "pending": 0,
            "calls": 146,
            "paths": 0,
            "findings": 0,
            "candidates": 0,
        }
    )
    for watch in (whole, settled):
        watch.report(_report(base_report, 7, "203.0.113.61", T0 + 3 * _S, Outcome.AUTH_FAILED, "0097239287044"))
        for n in range(50):
            watch.report(_report(base_report, 10 + n, "203.0.113.50", T0 + n * _S, Outcome.TIMEOUT))
    assert settled.findings() == whole.findings()
    assert [(f.rule, f.src, f.count) for f in settled.findings()] == [
        ("scanner", "203.0.113.9", 400),
        ("toll_fraud", "203.0.113.61", 1),
        ("invite_flood", "203.0.113.50", 50),
    ]
