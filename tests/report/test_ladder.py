"""Call-flow ladders (text, Mermaid, SVG) of real captures: exact output."""

from __future__ import annotations

import dataclasses
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from analyzer.analysis import analyze
from analyzer.diagnose.verdict import CallReport
from analyzer.report.ladder import build_ladder, ladder_mermaid, ladder_svg, ladder_text
from analyzer.sip.message import SipMessage

SVG = "{http://www.w3.org/2000/svg}"


def call(path: Path, prefix: str = "") -> tuple[CallReport, list[SipMessage]]:
    """The first conversation of ``path`` whose Call-ID starts with ``prefix``, and its messages."""
    a = analyze(path)
    report = next(r for r in a.calls if r.call_id.startswith(prefix))
    return report, a.messages_of(report)


def with_reason(report: CallReport, messages: list[SipMessage], reason: str) -> tuple[CallReport, list[SipMessage]]:
    """The same call with the breaking response's reason phrase replaced."""
    b = report.breaking
    assert b is not None
    msgs = [m._replace(reason=reason) if m.frame == b.frame else m for m in messages]
    return dataclasses.replace(report, breaking=dataclasses.replace(b, reason=reason)), msgs


# -- terminal text -------------------------------------------------------------------------
def test_two_endpoints_answered_call(sample_pcaps: Path) -> None:
    report, msgs = call(sample_pcaps / "udp_call.pcap")
    expected = """\
call 1-udp_call@198.18.0.1: answered, 200 OK
    time frame      198.18.0.1:5060         198.18.0.2:5060
                           │                       │
+0.000 s     3             │─────INVITE (SDP)─────▶│
+0.000 s     4             │◀──────100 Trying──────│
+0.001 s     5             │◀─────180 Ringing──────│
+0.107 s     6             │◀─────200 OK (SDP)─────│
+0.108 s     7             │─────────ACK──────────▶│
+0.311 s     8             │─────────BYE──────────▶│
+0.311 s     9             │◀────────200 OK────────│
"""
    assert ladder_text(report, msgs) == expected


def test_proxy_capture_has_three_columns_and_the_breaking_response(sample_pcaps: Path) -> None:
    report, msgs = call(sample_pcaps / "rule_proxy_remap.pcap")
    expected = """\
call 1-rule_proxy_remap@198.18.0.1: rejected, 500 Service Unavailable
    time frame      198.18.0.1:5060            198.18.0.3:5060            198.18.0.2:5060
                            │                          │                          │
+0.000 s     3              │──────INVITE (SDP)───────▶│                          │
+0.001 s     4              │◀─100 trying -- your cal…─│                          │
+0.001 s     7              │                          │──────INVITE (SDP)───────▶│
+0.002 s     8              │                          │◀───────100 Trying────────│
+0.012 s     9              │                          │◀─503 Service Unavailable─│
+0.012 s    10              │                          │───────────ACK───────────▶│
+0.012 s    11              │◀─500 Service Unavailable─│                          │  ✖
                 rule: server_error
                 A server failed the call with 500 Service Unavailable. It came from
                 198.18.0.2:5060, which answered 503 Service Unavailable; the proxy turned it into
                 500.
                 hint: Check that server's logs at the time of the call; a Retry-After header means
                       the problem may be temporary.
+0.012 s    12              │───────────ACK───────────▶│                          │
"""
    assert ladder_text(report, msgs) == expected


def test_early_media_rejected(sample_pcaps: Path) -> None:
    report, msgs = call(sample_pcaps / "rule_early_media_rejected.pcap")
    expected = """\
call 1-rule_early_media_rejected@198.18.0.1: rejected, 488 Not Acceptable Here
    time frame        198.18.0.1:5060                198.18.0.2:5060
                              │                              │
+0.000 s     3                │────────INVITE (SDP)─────────▶│
+0.001 s     4                │◀─────────100 Trying──────────│
+0.012 s     5                │◀─183 Session Progress (SDP)──│
+0.516 s     6                │◀───488 Not Acceptable Here───│  ✖
                 rule: early_media_rejected
                 The callee sent early media (183 with SDP, frame 5) and then rejected the offer
                 with 488: offered PCMU, PCMA; early media answered G729.
                 hint: Compare the offered codecs with what the callee accepts; enable a common
                       codec (e.g. G.711) or transcoding on the SBC/PBX.
+0.516 s     7                │─────────────ACK─────────────▶│
"""
    assert ladder_text(report, msgs) == expected


def test_retransmissions_are_marked(shared_pcaps: Path) -> None:
    report, msgs = call(shared_pcaps / "wireshark-samplecaptures/aaa.pcap", "85216695-")
    expected = """\
call 85216695-42dcdb1d@192.168.1.2: auth_failed, 403 Wrong password or domain
     time frame         192.168.1.2:5060                212.242.33.35:5060
                                │                                │
 +0.000 s   321                 │─────────INVITE (SDP)──────────▶│
 +0.498 s   323                 │─────────INVITE (SDP)──────────▶│  (retrans)
 +1.500 s   325                 │─────────INVITE (SDP)──────────▶│  (retrans)
 +1.654 s   326                 │◀──407 authentication required──│
 +1.727 s   327                 │──────────────ACK──────────────▶│
+34.129 s   346                 │─────────INVITE (SDP)──────────▶│
+34.334 s   348                 │◀─403 Wrong password or domain──│  ✖
                  rule: auth_forbidden
                  The server refused the request (403) although credentials were sent: wrong
                  password, or the account may not make this call.
                  hint: Check the password and the account's permissions (dial plan, allowed
                        destinations, IP ACL).
+34.386 s   349                 │──────────────ACK──────────────▶│
"""
    assert ladder_text(report, msgs) == expected


def test_retransmitted_requests_and_responses(shared_pcaps: Path) -> None:
    # CANCEL retransmitted 10 times (same branch as the INVITE, method CANCEL); on the
    # IPv6 capture the callee's 200 OK is repeated (same status, CSeq, branch, To tag).
    report, msgs = call(shared_pcaps / "wireshark-samplecaptures/aaa.pcap", "105090259-")
    retransmitted = [s.frame for s in build_ladder(report, msgs).steps if s.retransmission]
    assert retransmitted == [225, 227, 249, 251, 255, 257, 259, 260, 264, 265, 266, 272]
    report, msgs = call(shared_pcaps / "sngrep/ipv6frag.pcap")
    assert [s.frame for s in build_ladder(report, msgs).steps if s.retransmission] == [27]


def test_unanswered_request_is_the_breaking_message(sample_pcaps: Path) -> None:
    report, msgs = call(sample_pcaps / "rule_timeout.pcap")
    expected = """\
call 1-rule_timeout@198.18.0.1: timeout
     time frame      198.18.0.1:5060         198.18.0.2:5060
                            │                       │
 +0.000 s     3             │─────INVITE (SDP)─────▶│  ✖
                  rule: no_final_response
                  The INVITE to 198.18.0.2:5060 was sent 7 time(s) (Timer A/E
                  retransmissions) and nothing came back: 198.18.0.2:5060 is
                  unreachable or not answering. ICMP destination unreachable
                  came from 198.18.0.2 (7x, first in frame 4).
                  hint: Check that the next hop is up and reachable on this
                        address, port and transport (firewall, DNS, routing);
                        look for ICMP unreachable.
 +0.503 s     7             │─────INVITE (SDP)─────▶│  (retrans)
 +1.507 s    11             │─────INVITE (SDP)─────▶│  (retrans)
 +3.511 s    15             │─────INVITE (SDP)─────▶│  (retrans)
 +7.515 s    21             │─────INVITE (SDP)─────▶│  (retrans)
+15.519 s    25             │─────INVITE (SDP)─────▶│  (retrans)
+31.523 s    29             │─────INVITE (SDP)─────▶│  (retrans)
"""
    assert ladder_text(report, msgs, width=80) == expected


def test_ipv6_endpoints_are_shortened_and_listed(shared_pcaps: Path) -> None:
    report, msgs = call(shared_pcaps / "sngrep/ipv6frag.pcap")
    lines = ladder_text(report, msgs).splitlines()
    assert lines[:7] == [
        "call 71846-1647924829-397430@fd17:625c:f037:2:a00:27ff:feb9:1521: answered, 200 OK",
        "  1: [fd17:625c:f037:2:a00:27ff:feb9:1521]:15060",
        "  2: [fd17:625c:f037:2:a00:27ff:feb9:3519]:5062",
        "  3: [fd17:625c:f037:2:a00:27ff:feb9:4222]:25060",
        "      time frame  [fd17:625c:…1521]:15060 [fd17:625c:…:3519]:5062 [fd17:625c:…4222]:25060",
        "                             │                       │                       │",
        "  +0.000 s     2             │─────INVITE (SDP)─────▶│                       │",
    ]
    assert lines[9:11] == [
        "  +0.322 s     6             │                       │◀─183 Session Progres…─│",
        "  +0.323 s     7             │◀─183 Session Progres…─│                       │",
    ]
    assert lines[30:] == [
        "  +4.342 s    27             │                       │◀────────200 OK────────│  (retrans)",
        "  +4.605 s    28             │◀────────200 OK────────│                       │",
        "  +4.605 s    29             │─────────ACK──────────▶│                       │",
        "  +4.611 s    30             │                       │─────────ACK──────────▶│",
        "+164.608 s    31             │─────────BYE──────────▶│                       │",
        "+164.612 s    32             │                       │─────────BYE──────────▶│",
        "+164.613 s    33             │                       │◀────────200 OK────────│",
        "+164.614 s    34             │◀────────200 OK────────│                       │",
    ]
    assert len(lines) == 38
    assert max(len(line) for line in lines) == 89


def six_hops(sample_pcaps: Path) -> tuple[CallReport, list[SipMessage]]:
    """udp_call's first call moved onto a chain of six endpoints 10.0.0.1 … 10.0.0.6."""
    report, msgs = call(sample_pcaps / "udp_call.pcap")
    moved = []
    for i, m in enumerate(msgs):
        src, dst = (6, 1) if m.frame == 9 else (i % 6 + 1, (i + 1) % 6 + 1)
        moved.append(m._replace(origin=m.origin._replace(src_ip=f"10.0.0.{src}", dst_ip=f"10.0.0.{dst}")))
    return dataclasses.replace(report, caller_addr="10.0.0.1:5060"), moved


def test_six_endpoints_fit_in_100_columns(sample_pcaps: Path) -> None:
    report, msgs = six_hops(sample_pcaps)
    expected = """\
call 1-udp_call@198.18.0.1: answered, 200 OK
    time frame  10.0.0.1:5060 10.0.0.2:5060 10.0.0.3:5060 10.0.0.4:5060 10.0.0.5:5060 10.0.0.6:5060
                      │             │             │             │             │             │
+0.000 s     3        │─INVITE (S…─▶│             │             │             │             │
+0.000 s     4        │             │─100 Trying─▶│             │             │             │
+0.001 s     5        │             │             │─180 Ringi…─▶│             │             │
+0.107 s     6        │             │             │             │─200 OK (S…─▶│             │
+0.108 s     7        │             │             │             │             │────ACK─────▶│
+0.311 s     8        │◀────────────────────────────────BYE─────────────────────────────────│
+0.311 s     9        │◀───────────────────────────────200 OK───────────────────────────────│
"""
    assert ladder_text(report, msgs) == expected


def test_narrow_terminal_shrinks_columns_and_lists_endpoints(sample_pcaps: Path) -> None:
    report, msgs = six_hops(sample_pcaps)
    text = ladder_text(report, msgs, width=60)
    expected = """\
call 1-udp_call@198.18.0.1: answered, 200 OK
  1: 10.0.0.1:5060
  2: 10.0.0.2:5060
  3: 10.0.0.3:5060
  4: 10.0.0.4:5060
  5: 10.0.0.5:5060
  6: 10.0.0.6:5060
    time frame 10.…60 10.…60 10.…60 10.…60 10.…60 10.…60
                  │      │      │      │      │      │
+0.000 s     3    │─IN…─▶│      │      │      │      │
+0.000 s     4    │      │─10…─▶│      │      │      │
+0.001 s     5    │      │      │─18…─▶│      │      │
+0.107 s     6    │      │      │      │─20…─▶│      │
+0.108 s     7    │      │      │      │      │─ACK─▶│
+0.311 s     8    │◀───────────────BYE───────────────│
+0.311 s     9    │◀─────────────200 OK──────────────│
"""
    assert text == expected
    assert max(len(line) for line in text.splitlines()) <= 60


def test_control_characters_never_reach_the_terminal(sample_pcaps: Path) -> None:
    report, msgs = with_reason(*call(sample_pcaps / "rule_early_media_rejected.pcap"), "Not\x1b[31m Here\x07")
    text = ladder_text(report, msgs)
    assert "\x1b" not in text and "\x07" not in text
    assert "│◀─────488 Not\ufffd[31m Here\ufffd──────│  ✖" in text


def test_no_messages() -> None:
    report, _ = call(Path(__file__).parents[2] / "sample_pcaps" / "udp_call.pcap")
    assert ladder_text(report, []) == "call 1-udp_call@198.18.0.1: answered, 200 OK\n(no messages)\n"


# -- Mermaid -------------------------------------------------------------------------------
# What Mermaid's sequence grammar accepts in a label: no '#', ';', newline (they end the
# statement), no '%%' (a comment), no HTML; entity codes '#NN;' are decoded after parsing.
_LABEL = r"(?:[^#;%<>\"&\n]|#\d+;)+"
_STATEMENT = re.compile(
    rf"    (?:title {_LABEL}|participant E\d+ as {_LABEL}|E\d+(?:->>|-->>|-x|--x)E\d+: {_LABEL}"
    rf"|Note over E\d+(?:,E\d+)?: {_LABEL}(?:<br/>{_LABEL})*)"
)


def assert_mermaid_grammar(text: str) -> None:
    lines = text.splitlines()
    assert lines[0] == "sequenceDiagram"
    for line in lines[1:]:
        assert _STATEMENT.fullmatch(line), line


def test_mermaid_proxy_call(sample_pcaps: Path) -> None:
    report, msgs = call(sample_pcaps / "rule_proxy_remap.pcap")
    text = ladder_mermaid(report, msgs)
    expected = """\
sequenceDiagram
    title call 1-rule_proxy_remap@198.18.0.1: rejected, 500 Service Unavailable
    participant E1 as 198.18.0.1:5060
    participant E2 as 198.18.0.3:5060
    participant E3 as 198.18.0.2:5060
    E1->>E2: INVITE (SDP) · frame 3 · +0.000 s
    E2-->>E1: 100 trying -- your call is important to us · frame 4 · +0.001 s
    E2->>E3: INVITE (SDP) · frame 7 · +0.001 s
    E3-->>E2: 100 Trying · frame 8 · +0.002 s
    E3-->>E2: 503 Service Unavailable · frame 9 · +0.012 s
    E2->>E3: ACK · frame 10 · +0.012 s
    E2--xE1: 500 Service Unavailable · frame 11 · +0.012 s
    Note over E1,E2: rule: server_error<br/>A server failed the call with 500 Service Unavailable. It<br/>came from 198.18.0.2:5060, which answered 503 Service<br/>Unavailable#59; the proxy turned it into 500.<br/>hint: Check that server's logs at the time of the call#59; a<br/>Retry-After header means the problem may be temporary.
    E1->>E2: ACK · frame 12 · +0.012 s
"""
    assert text == expected
    assert_mermaid_grammar(text)


def test_mermaid_ipv6_participants_and_retransmission(shared_pcaps: Path) -> None:
    report, msgs = call(shared_pcaps / "sngrep/ipv6frag.pcap")
    lines = ladder_mermaid(report, msgs).splitlines()
    assert lines[2:5] == [
        "    participant E1 as [fd17:625c:f037:2:a00:27ff:feb9:1521]:15060",
        "    participant E2 as [fd17:625c:f037:2:a00:27ff:feb9:3519]:5062",
        "    participant E3 as [fd17:625c:f037:2:a00:27ff:feb9:4222]:25060",
    ]
    assert "    E3-->>E2: 200 OK · frame 27 · +4.342 s (retrans)" in lines
    assert len(lines) == 5 + 32
    assert_mermaid_grammar("\n".join(lines))


def test_mermaid_unanswered_request_is_a_crossed_arrow(sample_pcaps: Path) -> None:
    report, msgs = call(sample_pcaps / "rule_timeout.pcap")
    lines = ladder_mermaid(report, msgs).splitlines()
    assert lines[4:6] == [
        "    E1-xE2: INVITE (SDP) · frame 3 · +0.000 s",
        "    Note over E1,E2: rule: no_final_response<br/>The INVITE to 198.18.0.2:5060 was sent 7 time(s) (Timer A/E"
        "<br/>retransmissions) and nothing came back: 198.18.0.2:5060 is<br/>unreachable or not answering. ICMP"
        " destination unreachable<br/>came from 198.18.0.2 (7x, first in frame 4).<br/>hint: Check that the next"
        " hop is up and reachable on this<br/>address, port and transport (firewall, DNS, routing)#59; look<br/>for"
        " ICMP unreachable.",
    ]


def test_mermaid_escapes_what_would_break_the_syntax(sample_pcaps: Path) -> None:
    report, msgs = with_reason(
        *call(sample_pcaps / "rule_early_media_rejected.pcap"), 'Not <b>OK</b> "here"; #1 100%% & more'
    )
    report = dataclasses.replace(report, call_id="a;b#c%%d")
    text = ladder_mermaid(report, msgs)
    lines = text.splitlines()
    assert lines[1] == "    title call a#59;b#35;c#37;#37;d: rejected, 488 Not Acceptable Here"
    assert lines[7] == (
        "    E2--xE1: 488 Not #60;b#62;OK#60;/b#62; #34;here#34;#59; #35;1 100#37;#37; #38; more · frame 6 · +0.516 s"
    )
    assert_mermaid_grammar(text)


# -- SVG -----------------------------------------------------------------------------------
def test_svg_is_well_formed_and_has_every_message(sample_pcaps: Path) -> None:
    report, msgs = call(sample_pcaps / "rule_proxy_remap.pcap")
    root = ET.fromstring(ladder_svg(report, msgs))
    assert root.tag == f"{SVG}svg"
    endpoints = [g.findtext(f"{SVG}text") for g in root.iter(f"{SVG}g") if g.get("class") == "endpoint"]
    assert endpoints == ["198.18.0.1:5060", "198.18.0.3:5060", "198.18.0.2:5060"]
    steps = [g for g in root.iter(f"{SVG}g") if (g.get("class") or "").startswith("msg")]
    assert [g.findtext(f"{SVG}title") for g in steps] == [
        "frame 3, +0.000 s: INVITE (SDP)",
        "frame 4, +0.001 s: 100 trying -- your call is important to us",
        "frame 7, +0.001 s: INVITE (SDP)",
        "frame 8, +0.002 s: 100 Trying",
        "frame 9, +0.012 s: 503 Service Unavailable",
        "frame 10, +0.012 s: ACK",
        "frame 11, +0.012 s: ✖ 500 Service Unavailable",
        "frame 12, +0.012 s: ACK",
    ]
    assert [g.get("class") for g in steps].count("msg breaking") == 1
    note = next(g for g in root.iter(f"{SVG}g") if g.get("class") == "note")
    assert [t.text for t in note.iter(f"{SVG}text")] == [
        "rule: server_error",
        "A server failed the call with 500 Service Unavailable. It came from 198.18.0.2:5060, which answered",
        "503 Service Unavailable; the proxy turned it into 500.",
        "hint: Check that server's logs at the time of the call; a Retry-After header means the problem may",
        "      be temporary.",
    ]


def test_svg_marks_retransmissions(shared_pcaps: Path) -> None:
    report, msgs = call(shared_pcaps / "wireshark-samplecaptures/aaa.pcap", "85216695-")
    root = ET.fromstring(ladder_svg(report, msgs))
    classes = [g.get("class") for g in root.iter(f"{SVG}g") if (g.get("class") or "").startswith("msg")]
    assert classes == ["msg", "msg retrans", "msg retrans", "msg", "msg", "msg", "msg breaking", "msg"]


def test_svg_escapes_reason_phrases(sample_pcaps: Path) -> None:
    reason = 'Not <Acceptable> "Here" & \x01there'
    report, msgs = with_reason(*call(sample_pcaps / "rule_early_media_rejected.pcap"), reason)
    svg = ladder_svg(report, msgs)
    assert '488 Not &lt;Acceptable&gt; "Here" &amp; \ufffdthere</text>' in svg
    root = ET.fromstring(svg)  # well-formed although the phrase had markup and a control character
    title = root.find(f"{SVG}text")
    assert title is not None
    assert title.text == "call 1-rule_early_media_rejected@198.18.0.1: rejected, 488 Not Acceptable Here"
    labels = [t.text for t in root.iter(f"{SVG}text")]
    assert '✖ 488 Not <Acceptable> "Here" & \ufffdthere' in labels


@pytest.mark.parametrize("name", ["udp_call.pcap", "rule_timeout.pcap", "tcp_large_invite.pcap"])
def test_svg_parses_for_sample_calls(sample_pcaps: Path, name: str) -> None:
    report, msgs = call(sample_pcaps / name)
    root = ET.fromstring(ladder_svg(report, msgs))
    steps = [g for g in root.iter(f"{SVG}g") if (g.get("class") or "").startswith("msg")]
    assert len(steps) == len(msgs) == report.messages


def test_message_to_itself_is_a_loop(sample_pcaps: Path) -> None:
    report, msgs = call(sample_pcaps / "udp_call.pcap")
    ack = msgs[4]
    msgs[4] = ack._replace(origin=ack.origin._replace(dst_ip=ack.origin.src_ip, dst_port=ack.origin.src_port))
    assert ladder_text(report, msgs).splitlines()[7] == "+0.108 s     7             │↺ ACK                  │"
    assert "    E1->>E1: ACK · frame 7 · +0.108 s" in ladder_mermaid(report, msgs).splitlines()
    root = ET.fromstring(ladder_svg(report, msgs))
    assert len([g for g in root.iter(f"{SVG}g") if (g.get("class") or "").startswith("msg")]) == 7
