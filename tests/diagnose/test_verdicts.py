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
    # The phone re-registers on one Call-ID: a wrong password (403); 90 s later, user voi18063
    # challenged again after its credentials; 2.5 minutes later, user voi18062 registered; 8
    # minutes later, challenged again. The call challenged with 407 sends its credentials 32 s
    # later (a person typing them): a call tried again within 120 s is one call.
    assert got == [
        ("registration", "578222729-4665d775@578222732-4665d772", "auth_failed", 403, 32, "auth_forbidden"),
        ("registration", "578222729-4665d775@578222732-4665d772", "auth_failed", 401, 122, "auth_loop"),
        ("registration", "578222729-4665d775@578222732-4665d772", "registered", 200, None, None),
        ("call", "105090259-446faf7a@192.168.1.2", "cancelled", 408, None, None),
        ("call", "85216695-42dcdb1d@192.168.1.2", "auth_failed", 403, 348, "auth_forbidden"),
        ("registration", "578222729-4665d775@578222732-4665d772", "auth_failed", 401, 454, "auth_loop"),
        ("registration", "29858147-465b0752@29858051-465b07b2", "auth_failed", 401, 560, "auth_loop"),
        ("call", "24487391-449bf2a0@192.168.1.2", "auth_failed", 403, 581, "auth_forbidden"),
        ("call", "11894297-4432a9f8@192.168.1.2", "no_answer", 480, 621, "callee_rejected"),
        ("registration", "29858147-465b0752@29858051-465b07b2", "registered", 200, None, None),
    ]


def test_auth_loop_counts_rounds_and_names_the_user(shared_pcaps: Path) -> None:
    reg = analyze(shared_pcaps / "wireshark-samplecaptures/aaa.pcap").calls[5]
    assert reg.breaking is not None
    assert reg.breaking.explanation == (
        "Credentials for user 'voi18062' were sent 2 time(s) and challenged again 2 time(s) "
        "(realm 'sip.cybercity.dk'): the password, the user name or the realm is wrong."
    )


def test_q850_cause_is_decoded_in_the_explanation(shared_pcaps: Path) -> None:
    call = analyze(shared_pcaps / "wireshark-samplecaptures/aaa.pcap").calls[-2]
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
    assert len(a.calls) == 10 and len(a.messages) == 81
    frame = a.calls_frame
    assert list(frame["outcome"]) == [
        "auth_failed",
        "auth_failed",
        "registered",
        "cancelled",
        "auth_failed",
        "auth_failed",
        "auth_failed",
        "auth_failed",
        "no_answer",
        "registered",
    ]
    assert list(frame["breaking_code"].fillna(0).astype(int)) == [403, 401, 0, 0, 403, 401, 401, 403, 480, 0]
    assert a.messages_frame.shape == (81, 10)


def test_481_to_a_reinvite_drops_the_call_but_481_to_bye_does_not(sample_pcaps: Path) -> None:
    # The callee restarted after answering (sample_pcaps/rule_dialog_gone.pcap).
    bye, reinvite = analyze(sample_pcaps / "rule_dialog_gone.pcap").calls
    assert (bye.call_id, str(bye.outcome), bye.breaking) == ("1-rule_dialog_gone-bye@198.18.0.1", "answered", None)
    assert [(f.rule, f.severity, f.code) for f in bye.findings] == [("call_leg_gone", "warning", 481)]
    assert reinvite.call_id == "1-rule_dialog_gone-reinvite@198.18.0.1"
    assert (str(reinvite.outcome), reinvite.final_code) == ("dropped", 200)
    assert reinvite.breaking is not None
    assert (reinvite.breaking.code, reinvite.breaking.method, reinvite.breaking.cseq, reinvite.breaking.rule) == (
        481,
        "INVITE",
        2,
        "call_leg_gone",
    )
    assert reinvite.breaking.explanation == (
        "The INVITE (CSeq 2) inside the answered call got 481: the other side no longer knows this dialog "
        "(it restarted, failed over or already ended the call), so the call is over."
    )
    # One finding for the 481, not also a "re-INVITE failed".
    assert [f.rule for f in reinvite.findings] == ["call_leg_gone"]


def test_dialog_gone_event_ends_only_an_answered_call() -> None:
    from analyzer.correlate.state import CallState, Event, run_call

    answered = [Event.INVITE, Event.RINGING, Event.ANSWERED, Event.ACK]
    assert run_call([*answered, Event.DIALOG_GONE, Event.BYE]) is CallState.DROPPED
    assert run_call([*answered, Event.BYE, Event.DIALOG_GONE]) is CallState.COMPLETED
    assert run_call([Event.INVITE, Event.RINGING, Event.DIALOG_GONE]) is CallState.RINGING


def test_forked_names_the_proxy_branches(sample_pcaps: Path) -> None:
    answered, rejected = analyze(sample_pcaps / "rule_forking.pcap").calls
    # The To tags hold SIPp's pid, so they change when the capture is regenerated.
    (finding,) = answered.findings
    assert finding.rule == "forked"
    assert finding.explanation.startswith(
        "The INVITE (CSeq 1) forked: to 2 branches from 198.18.0.3:5060: 198.18.0.2:5060 200, "
        "198.18.0.4:5060 487; 2 early dialogs answered (To tags '"
    )
    assert finding.explanation.endswith("'); the caller got 200.")
    assert answered.breaking is None
    # Only phone B rang, so the caller saw one early dialog; the proxy's legs show the fork.
    assert [f.explanation for f in rejected.findings] == [
        "The INVITE (CSeq 1) forked: to 2 branches from 198.18.0.3:5060: 198.18.0.2:5060 486, "
        "198.18.0.4:5060 603; the caller got 603."
    ]


def test_glare_gives_one_finding_per_reinvite_not_per_proxy_leg(sample_pcaps: Path) -> None:
    # Captured on the proxy: each re-INVITE and its 491 cross twice (caller and callee leg).
    (call,) = analyze(sample_pcaps / "rule_glare.pcap").calls
    assert (str(call.outcome), call.final_code, call.breaking) == ("answered", 200, None)
    # The 491s as the senders got them: the caller's CSeq 2 (frame 25), the callee's (27).
    assert [(f.rule, f.severity, f.code, f.frame, f.explanation) for f in call.findings] == [
        ("reinvite_failed", "warning", 491, 25, "A re-INVITE failed: 491 glare: both sides re-INVITEd at once."),
        ("reinvite_failed", "warning", 491, 27, "A re-INVITE failed: 491 glare: both sides re-INVITEd at once."),
    ]


def test_loop_counts_the_relays(sample_pcaps: Path) -> None:
    too_many_hops, loop_detected = analyze(sample_pcaps / "rule_loop.pcap").calls
    assert too_many_hops.breaking is not None and loop_detected.breaking is not None
    assert too_many_hops.breaking.explanation == (
        "483 Too Many Hops: the request went round in a routing loop. It was relayed 10 times between "
        "198.18.0.3:5060 and 198.18.0.2:5060. It came from 198.18.0.3:5060."
    )
    assert loop_detected.breaking.explanation == (
        "482 Loop Detected: the request went round in a routing loop. It was relayed 2 times between "
        "198.18.0.3:5060 and 198.18.0.2:5060. It came from 198.18.0.3:5060."
    )


def test_a_status_code_past_699_breaks_the_call_as_invalid(shared_pcaps: Path, tmp_path: Path) -> None:
    # found by fuzzing: a status line allows any three digits; the diagnosis raised on 999
    changed = tmp_path / "999.pcap"
    data = (shared_pcaps / "wireshark-samplecaptures" / "aaa.pcap").read_bytes()
    changed.write_bytes(data.replace(b"SIP/2.0 480 ", b"SIP/2.0 999 "))  # UDP checksums are not checked
    (r,) = [c for c in analyze(changed).calls if c.call_id == "11894297-4432a9f8@192.168.1.2"]
    assert r.outcome is Outcome.REJECTED and r.breaking is not None
    assert (r.breaking.code, r.breaking.frame) == (999, 621)
    assert "defines response codes 100 to 699 only" in r.breaking.explanation
