"""The dask engine gives what the local engine gives, on a LocalCluster of this machine."""

from __future__ import annotations

import socket
import struct
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from distributed import Client, LocalCluster

from analyzer.analysis import Analysis, analyze
from analyzer.cli import main
from analyzer.decode.pipeline import DecodeStats, Malformed, Unreachable
from analyzer.diagnose.security import SecurityWatch
from analyzer.engines import dask as engine
from analyzer.engines.table import split_by_call_id, to_table
from analyzer.errors import CaptureFormatError
from analyzer.report.calls import call_dict
from analyzer.sip.message import Origin, SipMessage
from analyzer.sip.parser import parse_message
from tests.oracle import SAMPLE_PCAPS, SHARED_PCAPS

TIMEOUT_S = 60

SHARED = (
    "wireshark-samplecaptures/aaa.pcap",
    "heplify/sip_tcp_websocket.pcap",
    "heplify/sip_sctp.pcap",
    "sngrep/ipv6frag.pcap",
    "arkime/gtp-iphone.pcap",
    "goffinet-sip_captures/sip-routing-error-wireshark.pcapng",
    "wireshark-samplecaptures/h223-over-rtp.pcap.gz",
)
SCANNED = SHARED_PCAPS / "goffinet-sip_captures/Forensic_challenge_4.pcap"
"""One OPTIONS from SIPVicious ("UNfriendly-scanner"): the one security finding of the captures."""
SAMPLES = (
    "udp_call.pcap",
    "tcp_large_invite.pcap",
    "udp_fragmented.pcap",
    "multi_if.pcapng",
    "rule_auth_loop.pcap",
    "rule_timeout.pcap",
)


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    with (
        LocalCluster(
            host="127.0.0.1",
            protocol="tcp://",
            n_workers=2,
            threads_per_worker=1,
            processes=False,
            dashboard_address="127.0.0.1:0",  # its status pages: loopback, any free port
        ) as cluster,
        Client(cluster, timeout=TIMEOUT_S) as c,
    ):
        yield c


def calls(a: Analysis) -> list[dict[str, Any]]:
    return [call_dict(r) for r in a.calls]


def same(a: Analysis) -> tuple[Any, ...]:
    """What an analysis says."""
    by_call = {k: [m.origin.frame for m in v] for k, v in a.by_call.items()}
    return (a.path, a.stats, a.warning, calls(a), a.messages, by_call, a.security)


def run_dask(client: Client, paths: list[Path], **kw: Any) -> Analysis:
    return engine.analyze(paths, client, timeout=TIMEOUT_S, **kw)


@pytest.mark.parametrize("path", [SHARED_PCAPS / n for n in SHARED] + [SAMPLE_PCAPS / n for n in SAMPLES], ids=str)
def test_one_capture_as_the_local_engine(client: Client, path: Path) -> None:
    local = analyze(path)
    far = run_dask(client, [path], partitions=3, keep_messages=True)
    assert same(far) == same(local)
    assert sum(r.messages for r in far.calls) == sum(r.messages for r in local.calls) == len(local.messages)


@pytest.mark.parametrize(("name", "findings"), [(str(SCANNED), 1), (str(SAMPLE_PCAPS / "rule_auth_loop.pcap"), 0)])
@pytest.mark.parametrize("shuffle", ["memory", "parquet"])
def test_security_as_the_local_engine(client: Client, tmp_path: Path, name: str, findings: int, shuffle: str) -> None:
    local = analyze(name)
    far = run_dask(client, [Path(name)], partitions=3, work_dir=tmp_path if shuffle == "parquet" else None)
    assert far.security == local.security
    assert len(far.security) == findings
    if findings:
        (found,) = far.security
        assert (found.rule, found.severity, found.src, found.count, found.frames) == (
            "scanner", "medium", "172.25.105.43", 1, (1,),
        )  # fmt: skip


_OPTIONS = "OPTIONS sip:100@192.0.2.2 SIP/2.0\r\nCall-ID: {cid}\r\nCSeq: 1 OPTIONS\r\n{ua}Content-Length: 0\r\n\r\n"


def _options(cid: str, frame: int, agent: str = "") -> SipMessage:
    raw = _OPTIONS.format(cid=cid, ua=f"User-Agent: {agent}\r\n" if agent else "").encode()
    return parse_message(raw, Origin(frame, (frame,), frame * 1_000_000, "192.0.2.1", 5060, "192.0.2.2", 5060, "udp"))


def _decode(
    index: int, messages: list[SipMessage], tail_from: int, partitions: int, out: Path | None
) -> engine.FileDecode:
    """What :func:`engine.decode_capture` gives for a capture whose decoder produced ``messages``
    (those from ``tail_from`` on by its ``finish``): parts in memory, or Parquet under ``out``."""
    table = to_table(messages, file=index, tail_from=tail_from)
    parts: list[engine.Part] = []
    for j, part in enumerate(split_by_call_id(table, partitions)):
        if out is not None and part.num_rows:
            pq.write_table(part, out / f"{index}-{j}.parquet", row_group_size=2)
            parts.append(str(out / f"{index}-{j}.parquet"))
        else:
            parts.append(part if part.num_rows else None)
    stats = DecodeStats(frames=10)
    return engine.FileDecode(index, f"f{index}", 10, stats, 0, 0, "", len(messages) - tail_from, tuple(parts))


class Recorder(SecurityWatch):
    def __init__(self) -> None:
        super().__init__()
        self.frames: list[int] = []

    def message(self, msg: SipMessage) -> None:
        self.frames.append(msg.frame)
        super().message(msg)


@pytest.mark.parametrize("shuffle", ["memory", "parquet"])
def test_watch_capture_streams_a_file_in_decoder_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shuffle: str
) -> None:
    monkeypatch.setattr(engine, "WATCH_BATCH_ROWS", 2)  # several batches per part, merged
    msgs = [_options(c, i + 1) for i, c in enumerate("abcadbea")]
    decoded = _decode(1, msgs, 6, 3, tmp_path if shuffle == "parquet" else None)
    watch = engine.watch_capture(Recorder(), decoded, [0, 100], False)
    assert isinstance(watch, Recorder)
    assert watch.frames == [101, 102, 103, 104, 105, 106]
    engine.watch_capture(watch, decoded, [0, 100], True)
    assert watch.frames == [101, 102, 103, 104, 105, 106, 107, 108]


def test_watch_feeds_the_decoders_finish_after_every_file(client: Client) -> None:
    # the first scanner message fed names the tool: file 1's, not file 0's ``finish``
    first = [_options("a", 1), _options("b", 2, "sipcli 1.0"), _options("c", 3, "sipcli 1.0")]
    second = [_options("d", 1, "friendly-scanner"), _options("e", 2)]
    decoded = [_decode(0, first, 1, 2, None), _decode(1, second, 2, 2, None)]
    offsets = [0, 10]
    decodes = [client.scatter(d, hash=False) for d in decoded]  # type: ignore[no-untyped-call]
    try:
        got = engine._watch(client, decodes, decoded, offsets, TIMEOUT_S)
    finally:
        client.cancel(decodes)  # type: ignore[no-untyped-call]
    expected = SecurityWatch()
    for msg in [
        first[0],
        *(m._replace(origin=m.origin._replace(frame=m.frame + 10, frames=(m.frame + 10,))) for m in second),
        *first[1:],
    ]:
        expected.message(msg)
    assert got.findings() == expected.findings()
    (found,) = got.findings()
    assert (found.rule, found.count, found.frames, dict(found.details)["tool"]) == (
        "scanner", 3, (2, 3, 11), "friendly-scanner",
    )  # fmt: skip


def test_many_captures_as_one_analysis(client: Client, tmp_path: Path) -> None:
    # every sample capture and a few real ones: frame numbers count on across 42 files
    paths = sorted(SAMPLE_PCAPS.glob("*.pcap*")) + [SHARED_PCAPS / n for n in SHARED]
    local = analyze(paths)
    far = run_dask(client, paths, work_dir=tmp_path, partitions=5, keep_messages=True)
    assert same(far) == same(local)
    assert (len(far.calls), far.stats.sip_messages, far.stats.frames) == (106, 805, 2504)
    assert list(tmp_path.iterdir()) == []  # the shuffle's Parquet files are gone


def test_partition_count_does_not_change_the_result(client: Client) -> None:
    path = SHARED_PCAPS / "goffinet-sip_captures/sip-register-publish-subscribe-489-401.pcapng"
    one = run_dask(client, [path], partitions=1)
    seven = run_dask(client, [path], partitions=7)
    assert (calls(one), one.stats) == (calls(seven), seven.stats)
    assert one.messages == [] and one.by_call == {}


def test_a_file_that_is_not_a_capture_fails_as_locally(client: Client) -> None:
    with pytest.raises(CaptureFormatError):
        run_dask(client, [SAMPLE_PCAPS / "udp_call.pcap", SAMPLE_PCAPS / "README.md"])


def split_pcap(src: Path, at: int, out: Path) -> list[Path]:
    """Rotate a classic pcap after ``at`` frames, as tcpdump -C would."""
    data = src.read_bytes()
    order = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    records, pos = [], 24
    while pos < len(data):
        (incl,) = struct.unpack_from(order + "I", data, pos + 8)
        records.append(data[pos : pos + 16 + incl])
        pos += 16 + incl
    parts = [out / "a.pcap", out / "b.pcap"]
    parts[0].write_bytes(data[:24] + b"".join(records[:at]))
    parts[1].write_bytes(data[:24] + b"".join(records[at:]))
    return parts


def test_a_message_split_by_rotation_is_lost_per_file(client: Client, tmp_path: Path) -> None:
    # The documented difference: each file has its own decoder, so the INVITE whose TCP
    # segments are frames 5-9 is cut after frame 6; the local engine still joins it.
    whole = SHARED_PCAPS / "suricata-verify/sip-body-large.pcap"
    parts = split_pcap(whole, 6, tmp_path)
    assert calls(analyze(parts)) == calls(analyze(whole))
    far = run_dask(client, parts)
    assert far.stats.sip_messages == 1
    assert far.stats.malformed[0].reason == "tcp-incomplete"
    assert (far.stats.malformed[0].frame, far.stats.malformed[0].frames) == (6, (5, 6))
    assert [(r.messages, r.frames) for r in far.calls] == [(1, (11,))]


def test_merge_stats_numbers_on_and_keeps_finish_last() -> None:
    def stats(frames: int, malformed: list[Malformed], icmp: list[Unreachable]) -> DecodeStats:
        return DecodeStats(frames, 10 * frames, 1, Counter(sip=1), malformed, icmp, 100, 100 + frames)

    first = engine.FileDecode(
        0,
        "a",
        4,
        stats(4, [Malformed(2, (2,), "sip-x", ""), Malformed(0, (), "tcp-junk", "")], []),
        1,
        0,
        "",
    )
    icmp = Unreachable(3, 5, "192.0.2.9", "192.0.2.1:5060", 3)
    second = engine.FileDecode(1, "b", 5, stats(5, [Malformed(5, (4, 5), "tcp-incomplete", "")], [icmp]), 0, 0, "")
    offsets = engine.frame_offsets([first, second])
    merged = engine.merge_stats([first, second], offsets)
    assert offsets == [0, 4]
    assert (merged.frames, merged.bytes, merged.sip_messages, merged.frames_by_reason) == (9, 90, 2, Counter(sip=2))
    assert [(m.frame, m.frames, m.reason) for m in merged.malformed] == [
        (2, (2,), "sip-x"),
        (0, (), "tcp-junk"),
        (9, (8, 9), "tcp-incomplete"),
    ]
    assert [u.frame for u in merged.unreachable] == [7]
    assert (merged.first_ts_ns, merged.last_ts_ns) == (100, 105)


def cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_cli_dask_without_scheduler_starts_a_local_cluster() -> None:
    captures = [str(SAMPLE_PCAPS / "rule_cancelled.pcap"), str(SHARED_PCAPS / SHARED[0])]
    code, out, err = cli("analyze", "--engine", "dask", "--format", "jsonl", *captures)
    assert (code, err) == (0, "")
    assert out == cli("analyze", "--format", "jsonl", *captures)[1]
    assert len(out.splitlines()) == 8


def test_cli_dask_on_a_scheduler_with_a_report(client: Client, tmp_path: Path) -> None:
    capture = str(SAMPLE_PCAPS / "tcp_large_invite.pcap")
    code, _, err = cli(
        "analyze", "--engine", "dask", "--scheduler", client.scheduler.address, "--report", str(tmp_path / "r"), capture
    )
    assert code == 0, err
    assert (tmp_path / "r" / "report.html").is_file()
    rows = (tmp_path / "r" / "messages.csv").read_text().splitlines()
    assert len(rows) == 1 + 21


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_cli_unreachable_scheduler_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "CONNECT_TIMEOUT_S", 1)
    address = f"tcp://127.0.0.1:{free_port()}"
    code, out, err = cli("analyze", "--engine", "dask", "--scheduler", address, str(SAMPLE_PCAPS / "udp_call.pcap"))
    assert (code, out) == (2, "")
    assert err.startswith(f"sipflow: error: cannot reach the Dask scheduler at {address}: ")
    assert len(err.splitlines()) == 1


def test_cli_scheduler_needs_the_dask_engine() -> None:
    code, _, err = cli("analyze", "--scheduler", "tcp://127.0.0.1:8786", str(SAMPLE_PCAPS / "udp_call.pcap"))
    assert code == 2
    assert err == "sipflow: error: --scheduler and --work-dir go with --engine dask\n"
