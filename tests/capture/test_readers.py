"""Capture sources: pcap (both byte orders, micro/nano), pcapng, gzip, stdin, truncation."""

from __future__ import annotations

import gzip
import io
import shutil
import subprocess
from pathlib import Path

import pytest

from analyzer.capture.source import read_frames
from analyzer.capture.stats import CaptureStats
from analyzer.errors import CaptureFormatError
from analyzer.reader import MessageReader


def frames(path: Path) -> tuple[CaptureStats, list[tuple[int, int, bytes, int]]]:
    stats = CaptureStats(str(path))
    with path.open("rb") as f:
        return stats, list(read_frames(f, stats))


def test_pcap_little_endian_microseconds(shared_pcaps: Path) -> None:
    stats, fr = frames(shared_pcaps / "wireshark-samplecaptures/aaa.pcap")
    assert (stats.format, stats.linktypes, len(fr), stats.warning) == ("pcap", {1}, 691, "")
    ts, linktype, data, orig = fr[18]  # frame 19: the first REGISTER
    assert (ts, linktype, len(data), orig) == (1120469572_844249000, 1, 509, 509)


def test_pcap_big_endian(shared_pcaps: Path) -> None:
    stats, fr = frames(shared_pcaps / "ndpi/fuzz-2006-06-26-2594.pcap")
    assert (stats.format, len(fr)) == ("pcap", 691)
    assert fr[18][0] == 1120469572_844249000


def test_pcapng_and_gzip(shared_pcaps: Path) -> None:
    stats, fr = frames(shared_pcaps / "goffinet-sip_captures/sip-register.pcapng")
    assert (stats.format, stats.linktypes, len(fr)) == ("pcapng", {1}, 2)
    stats, fr = frames(shared_pcaps / "wireshark-samplecaptures/h223-over-rtp.pcap.gz")
    assert (stats.format, len(fr)) == ("pcap+gzip", 776)


@pytest.mark.tools
def test_nanosecond_pcap_made_by_editcap(shared_pcaps: Path, tmp_path: Path) -> None:
    if shutil.which("editcap") is None:
        pytest.skip("editcap missing")
    out = tmp_path / "ns.pcap"
    subprocess.run(
        ["editcap", "-F", "nsecpcap", str(shared_pcaps / "wireshark-samplecaptures/aaa.pcap"), str(out)],
        check=True,
        capture_output=True,
    )
    stats, fr = frames(out)
    assert (stats.format, len(fr), fr[18][0]) == ("pcap-ns", 691, 1120469572_844249000)


def test_truncated_capture_keeps_what_came_before(shared_pcaps: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.pcap"
    cut.write_bytes((shared_pcaps / "wireshark-samplecaptures/aaa.pcap").read_bytes()[:3000])
    reader = MessageReader(cut)
    got = [(m.frame, m.label) for m in reader]
    assert got == [(19, "REGISTER"), (20, "401 Unauthorized")]
    assert reader.capture.warning == "last record cut short at byte 2952 (48 bytes left over)"
    assert reader.decoder.stats.frames == 21


def test_truncated_gzip_keeps_what_came_before(shared_pcaps: Path, tmp_path: Path) -> None:
    data = gzip.compress((shared_pcaps / "wireshark-samplecaptures/aaa.pcap").read_bytes())
    cut = tmp_path / "cut.pcap.gz"
    cut.write_bytes(data[: len(data) // 2])
    reader = MessageReader(cut)
    n = sum(1 for _ in reader)
    assert n > 0
    assert reader.capture.warning.startswith("compressed data is damaged or cut short")


def test_lying_record_length_stops_with_warning(shared_pcaps: Path, tmp_path: Path) -> None:
    raw = bytearray((shared_pcaps / "wireshark-samplecaptures/aaa.pcap").read_bytes())
    raw[24 + 8 : 24 + 12] = (0x7FFFFFFF).to_bytes(4, "little")  # first record's incl_len
    bad = tmp_path / "liar.pcap"
    bad.write_bytes(bytes(raw))
    stats, fr = frames(bad)
    assert fr == []
    assert stats.warning == "record at byte 24 claims 2147483647 bytes (corrupt length)"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "x: not a pcap or pcapng capture (an empty file)"),
        (b"hello world", "x: not a pcap or pcapng capture (first bytes 68656c6c)"),
    ],
)
def test_not_a_capture(content: bytes, message: str) -> None:
    with pytest.raises(CaptureFormatError) as err:
        read_frames(io.BytesIO(content), CaptureStats("x"))
    assert str(err.value) == message


def test_pcapng_must_start_with_section_header() -> None:
    data = b"\x0a\x0d\x0d\x0a" + b"\x00" * 4
    with pytest.raises(CaptureFormatError):
        list(read_frames(io.BytesIO(data), CaptureStats("x")))
