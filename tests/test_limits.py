"""The decoder's limits (analyzer.limits): parsed from ``--limit``, handed to every table,
and, once passed, the excess dropped and counted (real captures: sample_pcaps)."""

from __future__ import annotations

import json
import threading
from dataclasses import fields
from pathlib import Path

import pytest
from click.testing import CliRunner

from analyzer import shards
from analyzer.analysis import analyze
from analyzer.cli import main
from analyzer.decode.pipeline import Decoder
from analyzer.errors import UsageError
from analyzer.limits import DEFAULT_LIMITS, Limits
from analyzer.live.run import LiveConfig, LiveRun, Outputs
from analyzer.reader import MessageReader

TCP = "tcp_large_invite.pcap"
"""Three calls whose INVITE (3,953 bytes) comes in three TCP segments of over 1 KiB."""
FRAGMENTED = "udp_fragmented.pcap"
"""Two calls whose INVITE comes in three IPv4 fragments."""

NAMES = (
    "max_sip_header, max_sip_body, tcp_buffer, tcp_pending_segments, tcp_streams, ws_message, "
    "sctp_message, sctp_fragments, hep_payload, fragment_pieces, fragment_bytes, fragment_datagrams"
)


def read(path: Path, limits: Limits = DEFAULT_LIMITS) -> tuple[list[str], Decoder]:
    reader = MessageReader(path, decoder=Decoder(limits))
    return [m.method or str(m.status) for m in reader], reader.decoder


# -- parsing -------------------------------------------------------------------------
def test_defaults_are_todays_constants() -> None:
    assert Limits() == Limits(
        max_sip_header=65_536,
        max_sip_body=1_048_576,
        tcp_buffer=2_097_152,
        tcp_pending_segments=256,
        tcp_streams=65_536,
        ws_message=1_048_576,
        sctp_message=1_048_576,
        sctp_fragments=1_024,
        hep_payload=1_048_576,
        fragment_pieces=64,
        fragment_bytes=67_108_864,
        fragment_datagrams=4_096,
    )
    assert ", ".join(Limits.names()) == NAMES


def test_parse_suffixes() -> None:
    got = Limits.parse(["tcp_buffer=4M", "fragment_bytes=128M", "max_sip_header=16k", "hep_payload=1G"])
    assert got == Limits(tcp_buffer=4 << 20, fragment_bytes=128 << 20, max_sip_header=16 << 10, hep_payload=1 << 30)
    assert Limits.parse(["tcp_streams=1000", " fragment_pieces = 8 ", "ws_message=2MiB"]) == Limits(
        tcp_streams=1000, fragment_pieces=8, ws_message=2 << 20
    )
    assert Limits.parse(["tcp_buffer=1K", "tcp_buffer=2K"]) == Limits(tcp_buffer=2048)  # the last one counts
    assert Limits.parse([]) == Limits()


@pytest.mark.parametrize("item", ["nope=1", "tcp_buffer", "=4M", "TCP_BUFFER=4M"])
def test_parse_refuses_unknown_names(item: str) -> None:
    with pytest.raises(UsageError) as exc:
        Limits.parse([item])
    assert str(exc.value) == f"--limit {item!r}: expected NAME=VALUE, NAME one of {NAMES}"


@pytest.mark.parametrize("item", ["tcp_buffer=0", "tcp_buffer=-1", "tcp_buffer=", "tcp_buffer=4T", "tcp_buffer=1.5M"])
def test_parse_refuses_bad_values(item: str) -> None:
    with pytest.raises(UsageError) as exc:
        Limits.parse([item])
    assert str(exc.value) == f"--limit {item!r}: the value must be a positive whole number, K, M or G after it (4M)"


# -- the decoder ---------------------------------------------------------------------
def test_every_limit_reaches_its_table() -> None:
    values = {f.name: 1000 + i for i, f in enumerate(fields(Limits))}
    d = Decoder(Limits(**values))
    assert (d.tcp.max_header, d.tcp.max_body, d.tcp.max_buffer, d.tcp.max_pending) == (1000, 1001, 1002, 1003)
    assert (d.tcp.max_streams, d.tcp.ws_message) == (1004, 1005)
    assert (d.sctp.max_message, d.sctp.max_pending, d._hep_max) == (1006, 1007, 1008)
    assert (d.fragments.max_pieces, d.fragments.max_bytes, d.fragments.max_pending) == (1009, 1010, 1011)


def test_tcp_buffer_drops_a_big_message(sample_pcaps: Path) -> None:
    kept, default = read(sample_pcaps / TCP)
    assert kept.count("INVITE") == 3 and len(kept) == 21 and default.stats.malformed == []
    methods, small = read(sample_pcaps / TCP, Limits(tcp_buffer=1024))
    assert "INVITE" not in methods and len(methods) == 18
    # each segment of an INVITE overflows the buffer: given up as junk, one report each
    junk = [(m.frame, m.reason) for m in small.stats.malformed]
    assert junk == [(f, "tcp-junk") for f in (6, 8, 10, 24, 25, 27, 40, 41, 42)]
    assert small.stats.frames_by_reason["tcp-sip-segment"] == 9


def test_max_sip_body_drops_a_big_message(sample_pcaps: Path) -> None:
    methods, d = read(sample_pcaps / TCP, Limits(max_sip_body=1024))
    assert "INVITE" not in methods and len(methods) == 18
    assert [(m.frame, m.reason) for m in d.stats.malformed] == [(6, "tcp-junk"), (24, "tcp-junk"), (40, "tcp-junk")]


def test_fragment_pieces_drops_a_fragmented_invite(sample_pcaps: Path) -> None:
    kept, default = read(sample_pcaps / FRAGMENTED)
    assert kept.count("INVITE") == 2 and default.fragments.refused == 0
    methods, d = read(sample_pcaps / FRAGMENTED, Limits(fragment_pieces=1))
    assert "INVITE" not in methods and len(methods) == 12
    assert d.fragments.refused == 2  # the second fragment of each INVITE is one too many
    assert d.sync_stats().limits == {"fragment_pieces": 2}
    assert d.stats.frames_by_reason["ip-fragment"] == 6
    # the third fragment starts a datagram of its own, still incomplete at the end
    assert [(m.frames, m.reason) for m in d.stats.malformed] == [
        ((5,), "ip-fragments-incomplete"),
        ((14,), "ip-fragments-incomplete"),
    ]


@pytest.mark.parametrize("jobs", [1, 2])
def test_analyze_passes_limits_to_every_process(sample_pcaps: Path, monkeypatch: pytest.MonkeyPatch, jobs: int) -> None:
    monkeypatch.setattr(shards, "MIN_BYTES_PER_JOB", 1)  # two processes even for a small capture
    monkeypatch.setattr(shards, "MIN_SIP_PER_CALLS_JOB", 0)
    reports: list[str] = []
    a = analyze(
        sample_pcaps / TCP,
        keep_messages=False,
        jobs=jobs,
        on_report=lambda r: reports.append(r.call_id),
        limits=Limits(tcp_buffer=1024),
    )
    assert len(a.stats.malformed) == 9 and a.stats.sip_messages == 18
    assert len(analyze(sample_pcaps / TCP, keep_messages=False, jobs=jobs).stats.malformed) == 0


def test_live_engine_builds_its_decoder_with_the_limits() -> None:
    run = LiveRun(LiveConfig(limits=Limits(tcp_buffer=1024)), Outputs(say=lambda _: None), threading.Event())
    assert run.engine.decoder.tcp.max_buffer == 1024
    assert LiveRun(LiveConfig(), Outputs(say=lambda _: None), threading.Event()).engine.decoder.limits == Limits()


# -- the command line ----------------------------------------------------------------
def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_messages_limit(sample_pcaps: Path) -> None:
    code, out, err = invoke("messages", "--format", "csv", "--limit", "tcp_buffer=1K", str(sample_pcaps / TCP))
    assert code == 0
    assert len(out.splitlines()) == 19 and ",INVITE," not in out  # header + 18 messages
    assert err == "sipflow: 9 malformed SIP message(s) skipped (--show-skipped lists them)\n"


def test_analyze_limit(sample_pcaps: Path) -> None:
    path = str(sample_pcaps / FRAGMENTED)
    code, out, _ = invoke("analyze", "--format", "json", "-j", "1", "--limit", "fragment_pieces=1", path)
    assert code == 0
    capture = json.loads(out)["capture"]
    assert (capture["sip_messages"], capture["malformed"], capture["skipped"]["ip-fragment"]) == (12, 2, 6)
    assert capture["limits_reached"] == {"fragment_pieces": 2}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--limit", "nope=1"), f"--limit 'nope=1': expected NAME=VALUE, NAME one of {NAMES}"),
        (
            ("--limit", "tcp_buffer=0"),
            "--limit 'tcp_buffer=0': the value must be a positive whole number, K, M or G after it (4M)",
        ),
        (
            ("--engine", "tshark", "--limit", "tcp_buffer=1M"),
            "--limit bounds sipflow's own decoder: not with --engine tshark",
        ),
    ],
)
def test_analyze_bad_limit_exits_2(sample_pcaps: Path, args: tuple[str, ...], message: str) -> None:
    code, out, err = invoke("analyze", *args, str(sample_pcaps / TCP))
    assert (code, out, err) == (2, "", f"sipflow: error: {message}\n")


def test_messages_and_live_bad_limit_exit_2(sample_pcaps: Path) -> None:
    expected = (
        "sipflow: error: --limit 'tcp_buffer=x': the value must be a positive whole number, K, M or G after it (4M)\n"
    )
    assert invoke("messages", "--limit", "tcp_buffer=x", str(sample_pcaps / TCP)) == (2, "", expected)
    assert invoke("live", "--hep", "127.0.0.1:0", "--limit", "tcp_buffer=x") == (2, "", expected)


def test_analyze_help_lists_the_names() -> None:
    code, out, _ = invoke("analyze", "--help")
    assert code == 0
    flat = " ".join(out.split())
    assert "--limit NAME=VALUE" in flat and NAMES in flat


def test_an_oversized_websocket_message_is_dropped_and_the_connection_goes_on(shared_pcaps: Path) -> None:
    capture = shared_pcaps / "heplify" / "sip_tcp_websocket.pcap"
    full = list(MessageReader(capture))
    reader = MessageReader(capture, decoder=Decoder(Limits(ws_message=700)))
    small = list(reader)
    dropped = sorted({m.frame for m in full} - {m.frame for m in small})
    assert (len(full), len(small), dropped) == (39, 34, [11, 18, 24, 34, 46])
    # every message that was not over the limit is still read, later ones included
    assert [m for m in full if m.frame not in dropped] == small
    assert [(m.frame, m.reason) for m in reader.decoder.stats.malformed] == [
        (10, "tcp-junk"),
        (16, "tcp-junk"),
        (24, "tcp-junk"),
        (33, "tcp-junk"),
        (45, "tcp-junk"),
    ]
