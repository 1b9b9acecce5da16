"""Several captures as one: rotated files joined, capture points' copies counted once."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from analyzer.analysis import analyze
from analyzer.correlate.dedup import Dedup
from analyzer.reader import read_messages
from analyzer.report.calls import call_dict
from analyzer.sip.message import Origin
from analyzer.sip.parser import parse_message

SAMPLES = Path(__file__).resolve().parents[2] / "sample_pcaps"
FORKING = SAMPLES / "rule_forking.pcap"
INVITE = (
    b"INVITE sip:bob@192.0.2.2 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1\r\n"
    b"From: <sip:alice@192.0.2.1>;tag=a\r\nTo: <sip:bob@192.0.2.2>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n"
    b"Content-Length: 0\r\n\r\n"
)
MS = 1_000_000


def seen(ms: int, raw: bytes = INVITE):  # type: ignore[no-untyped-def]
    return parse_message(raw, Origin(1, (1,), ms * MS, "192.0.2.1", 5060, "192.0.2.2", 5060, "udp"))


def test_a_second_points_copy_is_dropped_a_retransmission_is_not() -> None:
    d = Dedup()
    got = [
        d.copy(seen(0), 0),  # the INVITE at point A
        d.copy(seen(3), 1),  # B's copy of it
        d.copy(seen(500), 0),  # Timer A: A sees the retransmission
        d.copy(seen(502), 1),  # and B its copy
        d.copy(seen(504), 1),  # B again: nothing of A's left to match
    ]
    assert got == [False, True, False, True, False]
    assert d.copies == 2


def test_three_points_give_one_message_and_old_sightings_are_forgotten() -> None:
    d = Dedup()
    assert [d.copy(seen(0), p) for p in (0, 1, 2)] == [False, True, True]
    assert d.copy(seen(201), 1) is False  # beyond the 200 ms window: a message of its own
    assert d.copy(seen(202, INVITE.replace(b"c1", b"c2")), 0) is False  # other bytes
    assert (d.copies, len(d._recent)) == (2, 2)


def _editcap(*args: str) -> None:
    subprocess.run(["editcap", *args], check=True, capture_output=True, timeout=60)


needs_editcap = pytest.mark.skipif(shutil.which("editcap") is None, reason="editcap (wireshark-common) missing")


@needs_editcap
def test_rotated_files_read_as_the_whole_capture(tmp_path: Path) -> None:
    _editcap("-c", "20", str(FORKING), str(tmp_path / "rot.pcap"))  # as tcpdump -C/-G rotates
    pieces = sorted(tmp_path.glob("rot_*.pcap"))
    assert len(pieces) == 3
    whole, rotated = analyze(FORKING), analyze(list(reversed(pieces)))  # order given does not matter
    assert [call_dict(r) for r in rotated.calls] == [call_dict(r) for r in whole.calls]
    assert (rotated.copies, len(rotated.messages)) == (0, 36)


@needs_editcap
def test_a_second_capture_point_adds_no_message(tmp_path: Path) -> None:
    point_b = tmp_path / "point_b.pcap"
    _editcap("-t", "0.004", str(FORKING), str(point_b))  # the same traffic, 4 ms later
    one, two = analyze(FORKING), analyze([FORKING, point_b])
    assert (two.copies, len(two.messages)) == (36, 36)
    assert [r.outcome for r in two.calls] == [r.outcome for r in one.calls]
    assert [r.messages for r in two.calls] == [r.messages for r in one.calls] == [22, 14]
    assert [r.retransmissions for r in two.calls] == [0, 0]
    # frame numbers are those of the merged capture mergecap writes (chronological merge)
    merged = tmp_path / "merged.pcap"
    subprocess.run(["mergecap", "-w", str(merged), str(FORKING), str(point_b)], check=True, timeout=60)
    in_merged = [m.frame for m in read_messages(merged)]
    assert len(in_merged) == 72
    ours = [m.frame for m in two.messages]
    assert set(ours) <= set(in_merged)
    assert (ours[:3], in_merged[:3]) == ([3, 4, 7], [3, 4, 7])  # A's copies come 4 ms before B's
