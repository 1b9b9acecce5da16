"""Verdicts on real captures: outcome, breaking message, rule — exact values."""

from __future__ import annotations

from pathlib import Path

import pytest

from analyzer.analysis import analyze
from analyzer.correlate.model import Kind, Outcome


def verdicts(path: Path) -> list[tuple[str, str, str, int | None, int | None, str | None]]:
    return [
        (
            str(r.kind),
            r.call_id,
            str(r.outcome),
            r.final_code,
            r.breaking.frame if r.breaking else None,
            r.breaking.rule if r.breaking else None,
        )
        for r in analyze(path).calls
    ]


def test_aaa_auth_failures_and_cancel(shared_pcaps: Path) -> None:
    got = verdicts(shared_pcaps / "wireshark-samplecaptures/aaa.pcap")
    assert got == [
        ("registration", "578222729-4665d775@578222732-4665d772", "auth_failed", 401, 454, "auth_loop"),
        ("call", "105090259-446faf7a@192.168.1.2", "cancelled", 408, None, None),
        ("call", "85216695-42dcdb1d@192.168.1.2", "auth_failed", 403, 348, "auth_forbidden"),
        ("registration", "29858147-465b0752@29858051-465b07b2", "registered", 200, None, None),
        ("call", "24487391-449bf2a0@192.168.1.2", "auth_failed", 403, 581, "auth_forbidden"),
        ("call", "11894297-4432a9f8@192.168.1.2", "no_answer", 480, 621, "callee_rejected"),
    ]


def test_auth_loop_counts_rounds_and_names_the_user(shared_pcaps: Path) -> None:
    reg = analyze(shared_pcaps / "wireshark-samplecaptures/aaa.pcap").calls[0]
    assert reg.breaking is not None
    assert reg.breaking.explanation == (
        "Credentials for user 'voi18062' were sent 6 time(s) and challenged again 4 time(s) "
        "(realm 'sip.cybercity.dk'): the password, the user name or the realm is wrong."
    )


def test_q850_cause_is_decoded_in_the_explanation(shared_pcaps: Path) -> None:
    call = analyze(shared_pcaps / "wireshark-samplecaptures/aaa.pcap").calls[-1]
    assert call.breaking is not None
    assert call.breaking.explanation.endswith("Reason: Q.850 cause 21 (Call rejected).")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "goffinet-sip_captures/sip-488-Not-Acceptable-Here-codec-null.pcapng",
            ("rejected", 488, "extension_or_media"),
        ),
        ("pcap2sipp/example.pcap", ("rejected", 483, "loop")),
        ("wireshark-samplecaptures/SIP_DTMF2.cap", ("rejected", 603, "callee_rejected")),
        ("goffinet-sip_captures/sip-routing-error-wireshark.pcapng", ("rejected", 404, "numbering")),
    ],
)
def test_failed_call_rules(shared_pcaps: Path, name: str, expected: tuple[str, int, str]) -> None:
    failed = [r for r in analyze(shared_pcaps / name).calls if r.kind is Kind.CALL and r.breaking]
    assert failed
    r = failed[0]
    assert r.breaking is not None
    assert (str(r.outcome), r.breaking.code, r.breaking.rule) == expected


def test_answered_calls_have_timings(shared_pcaps: Path) -> None:
    call = analyze(shared_pcaps / "wireshark-samplecaptures/sip-rtp-g711.pcap").calls[0]
    assert call.outcome is Outcome.ANSWERED and call.breaking is None
    t = call.timings
    assert t.setup_ms is not None and t.duration_s is not None and t.hung_up_by in ("caller", "callee")


def test_sipp_load_capture_is_771_answered_calls(shared_pcaps: Path) -> None:
    a = analyze(shared_pcaps / "goffinet-sip_captures/uac-uas-scenario-sipp.pcapng")
    outcomes = {(str(r.kind), str(r.outcome)) for r in a.calls}
    assert len(a.calls) == 771 and outcomes == {("call", "answered")}


def test_python_api_gives_objects_and_dataframes(shared_pcaps: Path) -> None:
    import analyzer

    a = analyzer.analyze(shared_pcaps / "wireshark-samplecaptures/aaa.pcap")
    assert len(a.calls) == 6 and len(a.messages) == 81
    frame = a.calls_frame
    assert list(frame["outcome"]) == [
        "auth_failed",
        "cancelled",
        "auth_failed",
        "registered",
        "auth_failed",
        "no_answer",
    ]
    assert list(frame["breaking_code"].fillna(0).astype(int)) == [401, 0, 403, 0, 403, 480]
    assert a.messages_frame.shape == (81, 10)
