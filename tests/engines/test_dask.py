"""The dask engine gives what the local engine gives, on a LocalCluster of this machine."""

from __future__ import annotations

import dataclasses
import shutil
import socket
import struct
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
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
from analyzer.engines.timeline import frame_numbers
from analyzer.errors import CaptureFormatError
from analyzer.limits import Limits
from analyzer.report.calls import call_dict
from analyzer.sip.message import Origin, SipMessage
from analyzer.sip.parser import parse_message
from tests.oracle import SAMPLE_PCAPS, SHARED_PCAPS

TIMEOUT_S = 60
MS = 1_000_000

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
    return (a.path, a.stats, a.warning, calls(a), a.messages, by_call, a.security, a.copies)


def run_dask(client: Client, paths: list[Path], **kw: Any) -> Analysis:
    return engine.analyze(paths, client, timeout=TIMEOUT_S, **kw)


@pytest.mark.parametrize("path", [SHARED_PCAPS / n for n in SHARED] + [SAMPLE_PCAPS / n for n in SAMPLES], ids=str)
def test_one_capture_as_the_local_engine(client: Client, path: Path) -> None:
    local = analyze(path)
    far = run_dask(client, [path], partitions=3, keep_messages=True)
    assert same(far) == same(local)
    assert sum(r.messages for r in far.calls) == sum(r.messages for r in local.calls) == len(local.messages)


def test_limits_reach_the_workers_decoders(client: Client) -> None:
    path = SAMPLE_PCAPS / "udp_fragmented.pcap"
    limits = Limits(fragment_pieces=1)
    local = analyze(path, limits=limits)
    far = run_dask(client, [path], partitions=2, keep_messages=True, limits=limits)
    assert same(far) == same(local)
    assert far.stats.limits == {"fragment_pieces": 2}


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
    index: int,
    messages: list[SipMessage],
    tail_from: int,
    partitions: int,
    out: Path | None,
    stamps: list[int] | None = None,
) -> engine.FileDecode:
    """What :func:`engine.decode_capture` gives for a capture of 10 frames (at ``stamps``,
    1 ms apart by default) whose decoder produced ``messages`` (those from ``tail_from`` on
    by its ``finish``): parts in memory, or Parquet under ``out``."""
    table = to_table(messages, file=index, tail_from=tail_from)
    parts: list[engine.Part] = []
    for j, part in enumerate(split_by_call_id(table, partitions)):
        if out is not None and part.num_rows:
            pq.write_table(part, out / f"{index}-{j}.parquet", row_group_size=2)
            parts.append(str(out / f"{index}-{j}.parquet"))
        else:
            parts.append(part if part.num_rows else None)
    times = np.array(stamps if stamps is not None else [f * MS for f in range(1, 11)], dtype=np.int64)
    ts = [m.origin.ts_ns for m in messages]
    return engine.FileDecode(
        index,
        f"f{index}",
        10,
        DecodeStats(frames=10),
        0,
        max(ts),
        "",
        len(messages) - tail_from,
        tuple(parts),
        times,
        (),
        min(ts),
        len(messages),
    )


class Recorder(SecurityWatch):
    def __init__(self) -> None:
        super().__init__()
        self.frames: list[int] = []

    def message(self, msg: SipMessage) -> None:
        self.frames.append(msg.frame)
        super().message(msg)


@pytest.mark.parametrize("shuffle", ["memory", "parquet"])
def test_watch_captures_streams_files_in_merged_order_without_copies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shuffle: str
) -> None:
    monkeypatch.setattr(engine, "WATCH_BATCH_ROWS", 2)  # several batches per part, merged
    out = tmp_path if shuffle == "parquet" else None
    msgs = [_options(c, i + 1) for i, c in enumerate("abcadbea")]
    # a second capture point's file: copies of the first three, 1 ms later, its frames
    # interleaved with the first file's (file 0's frame n is merged frame 2n - 1, file 1's 2n)
    copies = [m._replace(origin=m.origin._replace(ts_ns=m.origin.ts_ns + MS // 2)) for m in msgs[:3]]
    decoded = [
        _decode(0, msgs, 6, 3, out),
        _decode(1, [*copies, _options("z", 4)], 4, 3, out, [f * MS + MS // 2 for f in range(1, 11)]),
    ]
    numbers = frame_numbers([d.stamps for d in decoded])
    assert engine.watch_groups(decoded, numbers) == [[0, 1]]
    watch = engine.watch_captures(Recorder(), decoded, numbers, False)
    assert isinstance(watch, Recorder)
    assert watch.frames == [1, 3, 5, 7, 8, 9, 11]  # file 1's copies (2, 4, 6) left out
    engine.watch_captures(watch, decoded[:1], numbers, True)
    assert watch.frames == [1, 3, 5, 7, 8, 9, 11, 13, 15]


def test_watch_groups_follow_the_time_line() -> None:
    def decode(index: int, first_ms: int, frames: int = 10) -> engine.FileDecode:
        stamps = [(first_ms + f) * MS for f in range(frames)]
        return dataclasses.replace(
            _decode(index, [_options("a", 1)], 1, 1, None, stamps),
            frames=frames,
            first_msg_ns=stamps[0],
            last_msg_ns=stamps[-1],
        )

    # rotated pieces given in reverse (0 comes last), another point's file overlapping piece 1,
    # and one starting 150 ms after piece 2 ends: within the dedup window
    decoded = [decode(0, 2000), decode(1, 1000), decode(2, 0), decode(3, 1005), decode(4, 159)]
    numbers = frame_numbers([d.stamps for d in decoded])
    assert engine.watch_groups(decoded, numbers) == [[2, 4], [1, 3], [0]]
    without_rows = dataclasses.replace(decoded[4], rows=0, tail_rows=0)
    assert engine.watch_groups([*decoded[:4], without_rows], numbers) == [[2], [1, 3], [0]]


def test_watch_feeds_the_decoders_finish_after_every_file(client: Client) -> None:
    # the first scanner message fed names the tool: file 1's, not file 0's ``finish``
    first = [_options("a", 1), _options("b", 2, "sipcli 1.0"), _options("c", 3, "sipcli 1.0")]
    second = [_options("d", 1, "friendly-scanner"), _options("e", 2)]
    decoded = [_decode(0, first, 1, 2, None), _decode(1, second, 2, 2, None, [f * MS for f in range(11, 21)])]
    numbers = frame_numbers([d.stamps for d in decoded])
    decodes = [client.scatter(d, hash=False) for d in decoded]  # type: ignore[no-untyped-call]
    steps = [([decodes[i] for i in g], False) for g in engine.watch_groups(decoded, numbers)]
    assert len(steps) == 1  # message times within the dedup window: one group, merged by frame
    try:
        got = engine._watch(client, [*steps, ([decodes[0]], True)], numbers, TIMEOUT_S)
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
    assert (len(far.calls), far.stats.sip_messages, far.stats.frames) == (114, 862, 2571)  # grows with sample_pcaps
    assert list(tmp_path.iterdir()) == []  # the shuffle's Parquet files are gone


FORKING = SAMPLE_PCAPS / "rule_forking.pcap"
needs_editcap = pytest.mark.skipif(shutil.which("editcap") is None, reason="editcap (wireshark-common) missing")


def editcap(*args: str) -> None:
    subprocess.run(["editcap", *args], check=True, capture_output=True, timeout=60)


@needs_editcap
@pytest.mark.parametrize("shuffle", ["memory", "parquet"])
def test_two_capture_points_as_the_local_engine(client: Client, tmp_path: Path, shuffle: str) -> None:
    # the same traffic seen at a second point 4 ms later: frames interleave, every message twice
    point_b = tmp_path / "point_b.pcap"
    editcap("-t", "0.004", str(FORKING), str(point_b))
    paths = [FORKING, point_b]
    local = analyze(paths)
    work = tmp_path / "work" if shuffle == "parquet" else None
    if work is not None:
        work.mkdir()
    far = run_dask(client, paths, partitions=3, keep_messages=True, work_dir=work)
    assert same(far) == same(local)
    assert (far.copies, len(far.messages), [r.messages for r in far.calls]) == (36, 36, [22, 14])
    assert [m.frame for m in far.messages][:3] == [3, 4, 7]  # as mergecap -w numbers them
    assert far.stats.frames == 2 * analyze(FORKING).stats.frames
    streamed = run_dask(client, [point_b, FORKING], partitions=2)  # point B given first: it wins the ties
    assert (streamed.copies, calls(streamed)) == (36, calls(analyze([point_b, FORKING])))


@needs_editcap
def test_rotated_pieces_in_reverse_as_the_local_engine(client: Client, tmp_path: Path) -> None:
    editcap("-c", "20", str(FORKING), str(tmp_path / "rot.pcap"))  # as tcpdump -C/-G rotates
    pieces = sorted(tmp_path.glob("rot_*.pcap"), reverse=True)
    assert len(pieces) == 3
    local = analyze(pieces)
    far = run_dask(client, pieces, partitions=2, keep_messages=True)
    assert same(far) == same(local)
    whole = analyze(FORKING)
    assert (far.copies, [m.origin for m in far.messages]) == (0, [m.origin for m in whole.messages])
    assert calls(far) == calls(whole)


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


def test_merge_stats_numbers_as_the_merged_capture_and_keeps_finish_last() -> None:
    def stats(frames: int, malformed: list[Malformed], icmp: list[Unreachable]) -> DecodeStats:
        return DecodeStats(frames, 10 * frames, 1, Counter(sip=1), malformed, icmp, 100, 100 + frames)

    # two capture points, frames interleaved: a's frame n is merged frame 2n - 1, b's 2n (9 for its 5th)
    a = np.array([0, 10, 20, 30], dtype=np.int64)
    b = np.array([5, 15, 25, 35, 45], dtype=np.int64)
    first = engine.FileDecode(
        0,
        "a",
        4,
        stats(4, [Malformed(2, (2,), "sip-x", ""), Malformed(0, (), "tcp-junk", "")], []),
        1,
        0,
        "",
        stamps=a,
        malformed_at=(2,),
    )
    icmp = Unreachable(3, 5, "192.0.2.9", "192.0.2.1:5060", 3)
    second = engine.FileDecode(
        1,
        "b",
        5,
        stats(
            5,
            [
                Malformed(1, (1,), "sip-y", ""),
                Malformed(1, (1,), "ip-fragments-incomplete", ""),
                Malformed(5, (4, 5), "tcp-incomplete", ""),
            ],
            [icmp],
        ),
        1,
        0,
        "",
        stamps=b,
        malformed_at=(1,),
    )
    numbers = frame_numbers([a, b])
    merged = engine.merge_stats([first, second], numbers)
    assert (merged.frames, merged.bytes, merged.sip_messages, merged.frames_by_reason) == (9, 90, 2, Counter(sip=2))
    assert [(m.frame, m.frames, m.reason) for m in merged.malformed] == [
        (2, (2,), "sip-y"),
        (3, (3,), "sip-x"),
        (0, (), "tcp-junk"),
        (9, (8, 9), "tcp-incomplete"),
        (2, (2,), "ip-fragments-incomplete"),
    ]
    assert [u.frame for u in merged.unreachable] == [6]
    assert (merged.first_ts_ns, merged.last_ts_ns) == (0, 45)


def cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_cli_dask_without_scheduler_starts_a_local_cluster() -> None:
    captures = [str(SAMPLE_PCAPS / "rule_cancelled.pcap"), str(SHARED_PCAPS / SHARED[0])]
    code, out, err = cli("analyze", "--engine", "dask", "--format", "jsonl", *captures)
    assert (code, err) == (0, "")
    assert out == cli("analyze", "--format", "jsonl", *captures)[1]
    assert len(out.splitlines()) == 12


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
