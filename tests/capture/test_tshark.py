"""``--engine tshark``: SIP over TLS decrypted by tshark with a key log, parsed by sipflow.

``sample_pcaps/tls_call.pcap`` holds two calls made by SIPp over TLS (OpenSSL relays, see
``sample_pcaps/generate_tls.sh``); ``tls_call.keys`` is the key log s_client wrote. Each
INVITE (3943 bytes) spans two TLS records, each record two TCP segments.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from analyzer.analysis import analyze
from analyzer.capture.tshark import (
    TLS_NO_SIP,
    TsharkMessages,
    TsharkPacket,
    analyze_with_tshark,
    epoch_ns,
    packet_from_ek,
    tshark_argv,
)
from analyzer.cli import main
from tests.oracle import SAMPLE_PCAPS, SHARED_PCAPS

CAPTURE = SAMPLE_PCAPS / "tls_call.pcap"
KEYS = SAMPLE_PCAPS / "tls_call.keys"
UAC, UAS = ("198.18.1.1", 38104), ("198.18.1.2", 5061)

needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")


def _call(n: int, invite: tuple[int, ...]) -> list[tuple[object, ...]]:
    """One call's messages: (frame, frames, from, to, label, Call-ID, CSeq, CSeq method);
    ``invite``: the frames of the INVITE's two TLS records (two TCP segments each)."""
    cid = f"{n}-tls_call@198.18.1.1"
    f = invite[-1] - 3
    return [
        (f + 3, invite, UAC, UAS, "INVITE", cid, 1, "INVITE"),
        (f + 5, (f + 5,), UAS, UAC, "100 Trying", cid, 1, "INVITE"),
        (f + 7, (f + 7,), UAS, UAC, "180 Ringing", cid, 1, "INVITE"),
        (f + 9, (f + 9,), UAS, UAC, "200 OK", cid, 1, "INVITE"),
        (f + 11, (f + 11,), UAC, UAS, "ACK", cid, 1, "ACK"),
        (f + 13, (f + 13,), UAC, UAS, "BYE", cid, 2, "BYE"),
        (f + 15, (f + 15,), UAS, UAC, "200 OK", cid, 2, "BYE"),
    ]


@needs_tshark
def test_tls_call_with_keylog() -> None:
    a = analyze_with_tshark(str(CAPTURE), KEYS)
    got = [
        (m.frame, m.origin.frames, (m.origin.src_ip, m.origin.src_port), (m.origin.dst_ip, m.origin.dst_port),
         m.label, m.call_id, m.cseq, m.cseq_method)
        for m in a.messages
    ]  # fmt: skip
    assert got == _call(1, (17, 18, 20, 21)) + _call(2, (35, 36, 37, 38))
    assert {m.origin.transport for m in a.messages} == {"tls"}
    assert [len(m.raw) for m in a.messages if m.method == "INVITE"] == [3943, 3943]
    assert all(m.defects == () for m in a.messages)
    assert [(r.call_id, str(r.kind), str(r.outcome), r.final_code, r.breaking) for r in a.calls] == [
        ("1-tls_call@198.18.1.1", "call", "answered", 200, None),
        ("2-tls_call@198.18.1.1", "call", "answered", 200, None),
    ]
    assert (a.stats.frames, a.stats.sip_messages, a.warning) == (29, 14, "")
    assert a.stats.frames_by_reason == {"sip": 14, TLS_NO_SIP: 15}
    assert a.security == []


@needs_tshark
def test_security_as_the_native_engine() -> None:
    # plain UDP that both engines read alike: one OPTIONS from SIPVicious ("UNfriendly-scanner")
    path = SHARED_PCAPS / "goffinet-sip_captures/Forensic_challenge_4.pcap"
    a, native = analyze_with_tshark(str(path)), analyze(path)
    assert a.messages == native.messages
    assert a.security == native.security
    (found,) = a.security
    assert (found.rule, found.severity, found.src, found.count, found.frames) == (
        "scanner", "medium", "172.25.105.43", 1, (1,),
    )  # fmt: skip


@needs_tshark
def test_tls_call_without_keylog_says_why() -> None:
    a = analyze_with_tshark(str(CAPTURE))
    assert (a.messages, a.calls, a.stats.sip_messages) == ([], [], 0)
    assert a.stats.frames_by_reason == {TLS_NO_SIP: 29}
    assert a.warning == (
        "no SIP message could be read, but 29 frames carry TLS: give --tls-keylog FILE with the key log "
        "of these sessions (SSLKEYLOGFILE), or the key log given does not match them"
    )


@needs_tshark
def test_cli_analyze_engine_tshark() -> None:
    result = CliRunner().invoke(
        main, ["analyze", str(CAPTURE), "--engine", "tshark", "--tls-keylog", str(KEYS), "--format", "jsonl"]
    )
    assert result.exit_code == 0, result.output
    calls = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(c["call_id"], c["outcome"], c["messages"]) for c in calls] == [
        ("1-tls_call@198.18.1.1", "answered", 7),
        ("2-tls_call@198.18.1.1", "answered", 7),
    ]


@needs_tshark
def test_cli_without_keylog_warns() -> None:
    result = CliRunner().invoke(main, ["analyze", str(CAPTURE), "--engine", "tshark", "--format", "jsonl"])
    assert (result.exit_code, result.stdout) == (0, "")
    assert result.stderr.startswith("sipflow: warning: no SIP message could be read, but 29 frames carry TLS")


def test_cli_keylog_needs_engine_tshark() -> None:
    result = CliRunner().invoke(main, ["analyze", str(CAPTURE), "--tls-keylog", str(KEYS)])
    assert result.exit_code == 2
    assert result.stderr == "sipflow: error: --tls-keylog is read by tshark: give --engine tshark too\n"


@needs_tshark
def test_cli_unreadable_keylog(tmp_path: Path) -> None:
    missing = tmp_path / "nope.keys"
    result = CliRunner().invoke(main, ["analyze", str(CAPTURE), "--engine", "tshark", "--tls-keylog", str(missing)])
    assert result.exit_code == 2
    assert result.stderr == f"sipflow: error: --tls-keylog {missing}: cannot read it: No such file or directory\n"


def test_cli_tshark_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    result = CliRunner().invoke(main, ["analyze", str(CAPTURE), "--engine", "tshark"])
    assert result.exit_code == 2
    assert (
        result.stderr
        == "sipflow: error: --engine tshark: 'tshark' not found (install tshark, Wireshark 3.6 or later)\n"
    )


# -- the pure parts ------------------------------------------------------------------------------

_OPTIONS = "OPTIONS sip:a@b SIP/2.0\r\nCall-ID: c{n}\r\nCSeq: {n} OPTIONS\r\nContent-Length: 0\r\n\r\n"


def _ek(**layers: object) -> str:
    return json.dumps({"timestamp": "1", "layers": layers})


def test_packet_from_ek_two_messages_in_one_frame() -> None:
    line = _ek(
        frame={"frame_frame_number": "7", "frame_frame_time_epoch": "1700000000.000000123", "frame_frame_len": "300"},
        ip={"ip_ip_src": "10.0.0.1", "ip_ip_dst": "10.0.0.2"},
        tcp={"tcp_tcp_srcport": "40000", "tcp_tcp_dstport": "5060"},
        tcp_tcp_segment=["6", "7"],
        sip_raw=[_OPTIONS.format(n=1).encode().hex(), _OPTIONS.format(n=2).encode().hex()],
    )
    pkt = packet_from_ek(line)
    assert pkt == TsharkPacket(
        7, 1_700_000_000_000_000_123, 300, "10.0.0.1", 40000, "10.0.0.2", 5060, "tcp",
        (_OPTIONS.format(n=1).encode(), _OPTIONS.format(n=2).encode()), (6, 7), (),
    )  # fmt: skip
    msgs = TsharkMessages().feed(pkt)
    assert [(m.call_id, m.origin.frames) for m in msgs] == [("c1", (6, 7)), ("c2", (7,))]


def test_packet_from_ek_skips_index_lines() -> None:
    assert packet_from_ek('{"index":{"_index":"packets-2026-11-21","_type":"doc"}}') is None


def test_frames_of_a_message_over_tls_records() -> None:
    """Record 1 reassembled from TCP in frame 18 (17+18), record 2 in 21 (20+21)."""
    conv = TsharkMessages()
    assert conv.feed(TsharkPacket(18, 1, 60, "a", 1, "b", 2, "tls", (), (17, 18), ())) == []
    (msg,) = conv.feed(
        TsharkPacket(21, 2, 60, "a", 1, "b", 2, "tls", (_OPTIONS.format(n=1).encode(),), (20, 21), (18, 21))
    )
    assert (msg.frame, msg.origin.frames, msg.origin.transport) == (21, (17, 18, 20, 21), "tls")
    assert (conv.stats.frames, conv.stats.sip_messages, conv.stats.frames_by_reason) == (
        2, 1, {TLS_NO_SIP: 1, "sip": 1},
    )  # fmt: skip


def test_unparseable_sip_is_counted() -> None:
    conv = TsharkMessages()
    assert conv.feed(TsharkPacket(3, 1, 60, "a", 1, "b", 2, "udp", (b"SIP/2.0 99x\r\n\r\n",), (), ())) == []
    (bad,) = conv.stats.malformed
    assert (bad.frame, bad.reason) == (3, "bad-status-line")


def test_epoch_ns() -> None:
    assert epoch_ns("1795297619.028322000") == 1_795_297_619_028_322_000
    assert epoch_ns("12.5") == 12_500_000_000
    assert epoch_ns("12") == 12_000_000_000


def test_tshark_argv() -> None:
    base = ["tshark", "-n", "-T", "ek", "-x", "-Y", "sip || tls", "--enable-heuristic", "sip_udp",
            "--enable-heuristic", "sip_tcp", "--enable-heuristic", "sip_sctp"]  # fmt: skip
    assert tshark_argv("tshark", read="x.pcap", keylog=Path("/k")) == [
        *base, "-o", "tls.keylog_file:/k", "-r", "x.pcap",
    ]  # fmt: skip
    assert tshark_argv("tshark", iface="eth0", bpf="port 5061") == [*base, "-l", "-i", "eth0", "-f", "port 5061"]
