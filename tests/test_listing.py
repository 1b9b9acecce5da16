"""The rows of `sipflow messages`: several processes list what one lists, with the same stats."""

from __future__ import annotations

from pathlib import Path

import pytest

import analyzer.shards as shards
from analyzer.listing import MessageRows
from analyzer.report.columns import MESSAGE_COLUMNS
from analyzer.report.render import TEXTS, Row

ROOT = Path(__file__).resolve().parents[1]
PUBLIC = ROOT.parent / "shared" / "pcaps"
CAPTURES = [
    *sorted(ROOT.glob("sample_pcaps/*.pcap*")),
    *sorted(PUBLIC.glob("*/*.pcap")),
    *sorted(PUBLIC.glob("*/*.pcapng")),
]


def _listed(path: Path, jobs: int) -> tuple[list[Row], MessageRows]:
    rows = MessageRows(path, MESSAGE_COLUMNS, jobs=jobs)
    return list(rows), rows


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_three_processes_list_what_one_lists(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shards, "MIN_BYTES_PER_JOB", 1)
    monkeypatch.setattr(shards, "MIN_SIP_PER_JOB", 0)
    one, single = _listed(path, 1)
    three, several = _listed(path, 3)
    assert three == one
    assert several.stats == single.stats
    assert several.capture == single.capture


def test_only_pcapng_and_a_classic_pcap_of_ethernet_are_shared_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shards, "MIN_BYTES_PER_JOB", 1)
    monkeypatch.setattr(shards, "MIN_SIP_PER_JOB", 0)
    samples = ROOT / "sample_pcaps"
    processes = [
        MessageRows(samples / name, MESSAGE_COLUMNS, jobs=3).processes()
        for name in ("udp_call.pcap", "multi_if.pcapng", "sll_call.pcap", "udp_call.pcap.gz")
    ]
    assert processes == [3, 3, 1, 3]


def test_a_cut_capture_is_listed_and_reported_alike(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shards, "MIN_BYTES_PER_JOB", 1)
    monkeypatch.setattr(shards, "MIN_SIP_PER_JOB", 0)
    data = (ROOT / "sample_pcaps" / "tcp_large_invite.pcap").read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[: len(data) * 2 // 3])
    one, single = _listed(cut, 1)
    two, several = _listed(cut, 2)
    assert (two, several.stats, several.capture) == (one, single.stats, single.capture)
    assert single.capture.warning.startswith("last record cut short")


@pytest.mark.parametrize("fmt", ["table", "csv", "json", "jsonl"])
def test_rows_made_into_text_by_three_processes_are_one_process_text(fmt: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shards, "MIN_BYTES_PER_JOB", 1)
    monkeypatch.setattr(shards, "MIN_SIP_PER_JOB", 0)
    path = PUBLIC / "goffinet-sip_captures" / "uac-uas-scenario-sipp.pcapng"  # 4,618 messages
    text = TEXTS[fmt](MESSAGE_COLUMNS)
    rows = list(MessageRows(path, MESSAGE_COLUMNS, jobs=1))
    several = MessageRows(path, MESSAGE_COLUMNS, jobs=3)
    assert several.processes() == 3
    assert list(several.lines(text.line)) == [text.line(list(r)) for r in rows]
    assert len(rows) == 4618
