"""The fused pcap loop gives what the plain reader gives: same messages, same counters."""

from __future__ import annotations

from pathlib import Path

import pytest

from analyzer.capture.pcap import PcapRecords
from analyzer.capture.pcapng import PcapngBlocks
from analyzer.capture.source import Guarded
from analyzer.reader import MessageReader

ROOT = Path(__file__).resolve().parents[2]
CAPTURES = sorted(ROOT.glob("sample_pcaps/*.pcap")) + sorted((ROOT.parent / "shared" / "pcaps").glob("*/*.pcap"))
PCAPNG = sorted(ROOT.glob("sample_pcaps/*.pcapng")) + sorted((ROOT.parent / "shared" / "pcaps").glob("*/*.pcapng"))


def _plain(path: Path) -> MessageReader:
    """A reader made to take the general path: its pcap records hidden behind a generator."""
    reader = MessageReader(path).open()
    frames = reader._frames
    if isinstance(frames, Guarded) and isinstance(frames.source, PcapRecords | PcapngBlocks):
        frames.source = (f for f in frames.source)  # no longer the reader's own type: no fast path
    return reader


@pytest.mark.parametrize("path", CAPTURES + PCAPNG, ids=lambda p: p.name)
def test_fast_and_plain_readers_agree(path: Path) -> None:
    fast = MessageReader(path)
    plain = _plain(path)
    assert list(fast) == list(plain)
    assert fast.decoder.stats == plain.decoder.stats
    assert (fast.frames_read, fast.capture) == (plain.frames_read, plain.capture)


def test_a_cut_pcapng_block_is_reported_alike(tmp_path: Path) -> None:
    data = (ROOT / "sample_pcaps" / "multi_if.pcapng").read_bytes()
    for cut_at in (len(data) - 7, len(data) // 2, 40):
        cut = tmp_path / "cut.pcapng"
        cut.write_bytes(data[:cut_at])
        fast, plain = MessageReader(cut), _plain(cut)
        assert list(fast) == list(plain)
        assert (fast.decoder.stats, fast.capture) == (plain.decoder.stats, plain.capture)


def test_a_cut_record_is_reported_alike(tmp_path: Path) -> None:
    data = (ROOT / "sample_pcaps" / "udp_call.pcap").read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[: len(data) - 7])
    fast, plain = MessageReader(cut), _plain(cut)
    assert list(fast) == list(plain)
    assert fast.capture.warning == plain.capture.warning
    assert fast.capture.warning.startswith("last record cut short at byte ")


def test_the_plain_reader_really_is_plain() -> None:
    reader = _plain(ROOT / "sample_pcaps" / "udp_call.pcap")
    frames = reader._frames
    assert isinstance(frames, Guarded) and not isinstance(frames.source, PcapRecords)


def _run_of_alike_records(data: bytes, pcapng: bool) -> list[int]:
    """Offsets of the longest run of records (Enhanced Packet Blocks) of one length in a
    little-endian pcap (pcapng)."""
    starts: list[tuple[int, int]] = []
    pos = 0 if pcapng else 24
    while pos + 16 <= len(data):
        if pcapng:
            length = int.from_bytes(data[pos + 4 : pos + 8], "little")
            epb = data[pos : pos + 4] == b"\x06\0\0\0"
            starts.append((pos, length if epb else -pos))  # no run through other blocks
            pos += length or len(data)
        else:
            length = int.from_bytes(data[pos + 8 : pos + 12], "little")
            starts.append((pos, length))
            pos += 16 + length
    runs: list[list[int]] = []
    for i, (pos, length) in enumerate(starts):
        if i and length == starts[i - 1][1]:
            runs[-1].append(pos)
        else:
            runs.append([pos])
    return max(runs, key=len)


# Bytes of one record in a run of RTP packets of one length, changed so that the drop test keeps
# the record (or counts it as cut): the original length, the EtherType, IPv4 version/IHL, MF or a
# fragment offset, the protocol; and a SIP message in the UDP payload (its length in the UDP header).
# Offsets in a pcap record; in an Enhanced Packet Block the frame starts 12 bytes later.
_OPTIONS = b"OPTIONS sip:probe@192.0.2.1 SIP/2.0\r\nCall-ID: unlike@run\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
_CHANGES = {
    "orig": {12: b"\xff"},
    "ethertype": {28: b"\x86"},
    "ihl": {30: b"\x46"},
    "mf": {36: b"\x20"},
    "offset": {37: b"\x01"},
    "tcp": {39: b"\x06"},
    "sip": {54: (8 + len(_OPTIONS)).to_bytes(2, "big"), 58: _OPTIONS},
}
_RUNS = {
    "pcap": ROOT.parent / "shared" / "pcaps" / "wireshark-samplecaptures" / "sip-rtp-g711.pcap",
    "pcapng": ROOT.parent / "shared" / "pcaps" / "goffinet-sip_captures" / "sip.pcapng",
}


@pytest.mark.parametrize("kind", _RUNS)
@pytest.mark.parametrize("change", _CHANGES)
def test_a_record_unlike_the_rest_of_its_run_is_read_alike(tmp_path: Path, kind: str, change: str) -> None:
    data = _RUNS[kind].read_bytes()
    run = _run_of_alike_records(data, kind == "pcapng")
    assert len(run) > 100
    path = tmp_path / f"changed.{kind}"
    for k in (1, 2, 3, 50, len(run) - 1):  # the first ones after two alike, one in the middle, the last
        changed = bytearray(data)
        for at, value in _CHANGES[change].items():
            start = run[k] + at + (12 if kind == "pcapng" else 0)
            changed[start : start + len(value)] = value
        path.write_bytes(changed)
        fast, plain = MessageReader(path), _plain(path)
        assert list(fast) == list(plain)
        assert (fast.decoder.stats, fast.frames_read, fast.capture) == (
            plain.decoder.stats,
            plain.frames_read,
            plain.capture,
        ), (change, k)
    if change == "sip":
        assert [m.call_id for m in MessageReader(path) if m.method == "OPTIONS"] == ["unlike@run"]
