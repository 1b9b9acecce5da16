"""The dask engine gives what the local engine gives, on a LocalCluster of this machine."""

from __future__ import annotations

import socket
import struct
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from distributed import Client, LocalCluster

from analyzer.analysis import Analysis, analyze
from analyzer.cli import main
from analyzer.decode.pipeline import DecodeStats, Malformed, Unreachable
from analyzer.engines import dask as engine
from analyzer.errors import CaptureFormatError
from analyzer.report.calls import call_dict
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
    """What an analysis says, messages compared by content (``Headers`` has no ``__eq__``)."""
    msgs = [(m._replace(headers=None), m.headers.items()) for m in a.messages]
    by_call = {k: [m.origin.frame for m in v] for k, v in a.by_call.items()}
    return (a.path, a.stats, a.warning, calls(a), msgs, by_call)


def run_dask(client: Client, paths: list[Path], **kw: Any) -> Analysis:
    return engine.analyze(paths, client, timeout=TIMEOUT_S, **kw)


@pytest.mark.parametrize("path", [SHARED_PCAPS / n for n in SHARED] + [SAMPLE_PCAPS / n for n in SAMPLES], ids=str)
def test_one_capture_as_the_local_engine(client: Client, path: Path) -> None:
    local = analyze(path)
    far = run_dask(client, [path], partitions=3, keep_messages=True)
    assert same(far) == same(local)
    assert sum(r.messages for r in far.calls) == sum(r.messages for r in local.calls) == len(local.messages)


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
