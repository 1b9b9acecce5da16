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
