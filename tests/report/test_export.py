"""Exporting calls to a new capture: the same frames, bytes and timestamps, read back by tshark and sipflow."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from analyzer.analysis import Analysis, analyze
from analyzer.capture.source import open_stream, read_frames
from analyzer.capture.stats import CaptureStats, RawFrame
from analyzer.diagnose.verdict import CallReport
from analyzer.errors import SipflowError, UsageError
from analyzer.report.columns import iso_time
from analyzer.report.export import export_frames, frames_for
from tests.edit import with_interface_options

PCAP_US_LE = bytes.fromhex("d4c3b2a1")
PCAP_NS_LE = bytes.fromhex("4d3cb2a1")
PCAPNG = bytes.fromhex("0a0d0d0a")


def frames_of(path: Path) -> list[RawFrame]:
    with open_stream(path) as stream:
        return list(read_frames(stream, CaptureStats(str(path))))


def pick(a: Analysis, call_id: str) -> CallReport:
    return next(r for r in a.calls if r.call_id == call_id)


def tshark_sip(path: Path, call_id: str) -> list[str]:
    """time, Call-ID, CSeq and start line of each SIP message tshark finds for ``call_id``."""
    fields = ["frame.time_epoch", "sip.Call-ID", "sip.CSeq", "sip.Request-Line", "sip.Status-Line"]
    argv = ["tshark", "-n", "-r", str(path), "-Y", f'sip.Call-ID == "{call_id}" && !icmp', "-T", "fields"]
    argv += ["-E", "separator=|"] + [x for f in fields for x in ("-e", f)]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60).stdout
    return out.splitlines()


def messages(a: Analysis, report: CallReport) -> list[tuple[int, str, int, str, bytes]]:
    return [(m.origin.ts_ns, m.label, m.cseq, m.cseq_method, m.raw) for m in a.messages_of(report)]


def check_export(capture: Path, call_id: str, out: Path, frames: list[int], magic: bytes) -> None:
    """Export one call, then read it back: same frames, same messages, same verdict."""
    a = analyze(capture)
    report = pick(a, call_id)
    selected = frames_for(a, [report])
    assert sorted(selected) == frames
    assert export_frames(capture, selected, out) == len(frames)
    assert out.read_bytes()[:4] == magic
    original = frames_of(capture)
    assert frames_of(out) == [original[n - 1] for n in frames]  # ts (ns), link type, bytes, length
    b = analyze(out)
    again = pick(b, call_id)
    assert messages(b, again) == messages(a, report)
    assert (again.outcome, again.breaking and again.breaking.rule) == (
        report.outcome,
        report.breaking and report.breaking.rule,
    )
    assert sorted(frames_for(b, [again])) == list(range(1, len(frames) + 1))  # every frame is the call's again
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no temporary file left


@pytest.mark.tools
def test_failed_call_with_retransmissions(shared_pcaps: Path, tmp_path: Path) -> None:
    capture = shared_pcaps / "wireshark-samplecaptures/aaa.pcap"
    call_id = "85216695-42dcdb1d@192.168.1.2"
    out = tmp_path / "aaa-call.pcap"
    check_export(capture, call_id, out, [321, 323, 325, 326, 327, 346, 348, 349], PCAP_US_LE)
    got = tshark_sip(out, call_id)
    assert got == tshark_sip(capture, call_id)
    assert got[:4] == [
        "1120470233.794463000|85216695-42dcdb1d@192.168.1.2|1 INVITE|INVITE sip:0097239287044@sip.cybercity.dk SIP/2.0|",
        "1120470234.292134000|85216695-42dcdb1d@192.168.1.2|1 INVITE|INVITE sip:0097239287044@sip.cybercity.dk SIP/2.0|",
        "1120470235.293976000|85216695-42dcdb1d@192.168.1.2|1 INVITE|INVITE sip:0097239287044@sip.cybercity.dk SIP/2.0|",
        "1120470235.448732000|85216695-42dcdb1d@192.168.1.2|1 INVITE||SIP/2.0 407 authentication required",
    ]
    assert len(got) == 8


@pytest.mark.tools
def test_fragmented_invite_keeps_every_fragment(sample_pcaps: Path, tmp_path: Path) -> None:
    capture = sample_pcaps / "udp_fragmented.pcap"
    call_id = "1-udp_fragmented@198.18.0.1"
    out = tmp_path / "frag-call.pcap"
    check_export(capture, call_id, out, [3, 4, 5, 6, 7, 8, 9, 10, 11], PCAP_US_LE)
    got = tshark_sip(out, call_id)
    assert got == tshark_sip(capture, call_id)
    assert (
        got[0]
        == "1795289144.676319000|1-udp_fragmented@198.18.0.1|1 INVITE|INVITE sip:service@198.18.0.2:5060 SIP/2.0|"
    )
    assert len(got) == 7


@pytest.mark.tools
def test_tcp_segmented_invite_keeps_every_segment(sample_pcaps: Path, tmp_path: Path) -> None:
    capture = sample_pcaps / "tcp_large_invite.pcap"
    call_id = "2-tcp_large_invite@198.18.0.1"
    out = tmp_path / "tcp-call.pcap"
    check_export(capture, call_id, out, [24, 25, 27, 28, 30, 32, 34, 36, 38], PCAP_US_LE)
    got = tshark_sip(out, call_id)
    assert got == tshark_sip(capture, call_id)
    assert (
        got[0]
        == "1795289137.884154000|2-tcp_large_invite@198.18.0.1|1 INVITE|INVITE sip:service@198.18.0.2:5060 SIP/2.0|"
    )
    assert len(got) == 7


@pytest.mark.tools
def test_unanswered_call_takes_its_icmp_errors_along(sample_pcaps: Path, tmp_path: Path) -> None:
    capture = sample_pcaps / "rule_timeout.pcap"
    call_id = "1-rule_timeout@198.18.0.1"
    out = tmp_path / "timeout-call.pcap"
    # its INVITEs and every ICMP error from their destination until Timer B ran out (those
    # of the other call to that address too: they show the time it waited)
    frames = [3, 4, 6, 7, 8, 10, 11, 12, 14, 15, 16, 18, 21, 22, 24, 25, 26, 28, 29, 30, 32]
    check_export(capture, call_id, out, frames, PCAP_US_LE)
    report = analyze(out).calls[0]
    assert report.breaking is not None
    assert report.breaking.explanation.endswith(
        "ICMP destination unreachable came from 198.18.0.2 (7x, first in frame 2)."  # those quoting its Call-ID
    )
    assert len(tshark_sip(out, call_id)) == 7


def test_nanosecond_timestamps_are_kept(sample_pcaps: Path, tmp_path: Path) -> None:
    # One call of a pcapng: one link type, so a pcap, nanosecond because the times need it.
    check_export(
        sample_pcaps / "multi_if.pcapng",
        "1-multi_if_b@127.0.0.1",
        tmp_path / "b.pcap",
        [8, 9, 10, 13, 14, 15, 16],
        PCAP_NS_LE,
    )


@pytest.mark.tools
def test_several_link_types_give_a_pcapng(sample_pcaps: Path, tmp_path: Path) -> None:
    capture = sample_pcaps / "multi_if.pcapng"
    a = analyze(capture)
    out = tmp_path / "both.pcapng"
    assert export_frames(capture, frames_for(a, a.calls), out) == 14
    assert out.read_bytes()[:4] == PCAPNG
    original = frames_of(capture)
    assert frames_of(out) == original[2:]
    assert {lt for _, lt, _, _ in frames_of(out)} == {1, 113}  # Ethernet, Linux cooked (SLL)
    b = analyze(out)
    assert [messages(b, r) for r in b.calls] == [messages(a, r) for r in a.calls]
    for r in a.calls:
        assert tshark_sip(out, r.call_id) == tshark_sip(capture, r.call_id)


def test_refuses_to_overwrite_the_input(sample_pcaps: Path) -> None:
    capture = sample_pcaps / "udp_call.pcap"
    before = (capture.stat().st_mtime_ns, capture.read_bytes())
    for out in (
        capture,
        sample_pcaps / "." / "udp_call.pcap",
        sample_pcaps.parent / "sample_pcaps/../sample_pcaps/udp_call.pcap",
    ):
        with pytest.raises(UsageError, match="refusing to overwrite an input capture"):
            export_frames(capture, {3, 4}, out)
    assert (capture.stat().st_mtime_ns, capture.read_bytes()) == before
    assert not [p for p in sample_pcaps.iterdir() if p.name.endswith(".tmp")]


def test_refuses_a_hard_link_to_the_input(tmp_path: Path) -> None:
    # A hard link has another name but is the same file: replacing it would not hurt the
    # input, but the user asked to write over the capture they are reading; refuse.
    capture = tmp_path / "in.pcap"
    capture.write_bytes(empty_pcap())
    link = tmp_path / "link.pcap"
    os.link(capture, link)
    with pytest.raises(UsageError, match="refusing to overwrite an input capture"):
        export_frames(capture, {1}, link)


def empty_pcap() -> bytes:
    """An empty little-endian microsecond pcap (Ethernet)."""
    return PCAP_US_LE + bytes.fromhex("02000400 00000000 00000000 00000400 01000000")


def test_bad_requests_are_usage_errors(sample_pcaps: Path, tmp_path: Path) -> None:
    capture = sample_pcaps / "udp_call.pcap"
    out = tmp_path / "out.pcap"
    with pytest.raises(UsageError, match="no frames selected"):
        export_frames(capture, set(), out)
    with pytest.raises(UsageError, match=r"has no frame 24, 99 \(it holds 1 of the 3 asked for\)"):
        export_frames(capture, {3, 24, 99}, out)
    with pytest.raises(UsageError, match="standard input"):
        export_frames(Path("-"), {1}, out)
    with pytest.raises(UsageError, match="is a directory"):
        export_frames(capture, {3}, tmp_path)
    with pytest.raises(UsageError, match=r"cannot write \(No such file or directory\)"):
        export_frames(capture, {3}, tmp_path / "missing" / "out.pcap")
    assert list(tmp_path.iterdir()) == []


def test_replacing_an_existing_file_keeps_its_mode(sample_pcaps: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.pcap"
    out.write_bytes(b"old")
    out.chmod(0o600)
    assert export_frames(sample_pcaps / "udp_call.pcap", {3, 4, 5}, out) == 3
    assert out.stat().st_mode & 0o777 == 0o600
    assert frames_of(out) == frames_of(sample_pcaps / "udp_call.pcap")[2:5]
    new = tmp_path / "new.pcap"
    export_frames(sample_pcaps / "udp_call.pcap", {3}, new)
    assert new.stat().st_mode & 0o777 == 0o644


def test_gzipped_capture_exports_plain(sample_pcaps: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.pcap"
    assert export_frames(sample_pcaps / "udp_call.pcap.gz", {3, 9}, out) == 2
    plain = frames_of(sample_pcaps / "udp_call.pcap")
    assert frames_of(out) == [plain[2], plain[8]]
    assert out.read_bytes()[:4] == PCAP_US_LE


def _offset_capture(tmp_path: Path, offset_s: int) -> Path:
    """A real pcapng whose interface adds ``offset_s`` seconds to its times (if_tsoffset)."""
    data = (
        Path(__file__).resolve().parents[3] / "shared" / "pcaps" / "goffinet-sip_captures" / "sip.pcapng"
    ).read_bytes()
    path = tmp_path / "offset.pcapng"
    path.write_bytes(with_interface_options(data, {14: offset_s.to_bytes(8, "little", signed=True)}))
    return path


def test_times_past_2106_are_exported_to_pcapng(tmp_path: Path) -> None:
    capture = _offset_capture(tmp_path, 200 * 365 * 86400)  # the 2210s: past a pcap's 32-bit seconds
    a = analyze(capture)
    out = tmp_path / "late.pcap"
    frames = frames_for(a, a.calls[:1])
    assert export_frames(capture, frames, out) == len(frames)
    assert out.read_bytes()[:4] == PCAPNG
    original = frames_of(capture)
    assert frames_of(out) == [original[n - 1] for n in sorted(frames)]
    assert iso_time(frames_of(out)[0][0]).startswith("22")


def test_times_no_capture_file_holds_are_a_one_line_error(tmp_path: Path) -> None:
    capture = _offset_capture(tmp_path, -2 * 10**9)  # the 1950s: before 1970, which neither format can say
    a = analyze(capture)
    frames = frames_for(a, a.calls[:1])
    with pytest.raises(SipflowError, match=r"offset.pcapng: frame \d+: its time \(-\d+ ns from 1970\) fits neither"):
        export_frames(capture, frames, tmp_path / "early.pcap")
    assert not (tmp_path / "early.pcap").exists()
