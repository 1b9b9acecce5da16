"""analyzer.analysis: the run as a whole (processes, garbage, bounds)."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

import analyzer.analysis as analysis
from analyzer.analysis import analyze, first_share, jobs_for, shard_of
from analyzer.report.calls import call_dict

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_pcaps"
PUBLIC = ROOT.parent / "shared" / "pcaps"


def test_an_analysis_leaves_no_reference_cycle() -> None:
    """no_gc_pauses() turns the collector off during a run: that is only sound while nothing
    sipflow builds holds a cycle (reference counting alone must free it all)."""
    captures = sorted(SAMPLES.glob("*.pcap")) + sorted(PUBLIC.glob("*/*.pcap"))[:30]
    analyze(captures[0])
    gc.collect()
    gc.disable()
    try:
        for capture in captures:
            analyze(capture)
            analyze(capture, keep_messages=False)
        assert gc.collect() == 0
    finally:
        gc.enable()


def test_the_collector_is_back_on_after_a_run() -> None:
    analyze(SAMPLES / "udp_call.pcap")
    assert gc.isenabled()


def test_shards_are_stable_numbers() -> None:
    # CRC-32 % 1024: slots 0, 304 and 718; of 4 processes the first takes slots 0-60, the others every third one after
    assert [shard_of(cid, 4) for cid in ("", "1-12985@127.0.0.80", "a84b4c76e66710")] == [0, 1, 1]
    assert [shard_of(cid, 1) for cid in ("", "1-12985@127.0.0.80", "a84b4c76e66710")] == [0, 0, 0]


def test_the_first_process_takes_a_smaller_share() -> None:
    """It also parses and watches every message: (4 + 78 - 25) / (58 + 78) with two processes."""
    assert [round(first_share(n), 3) for n in (1, 2, 3, 4, 8)] == [1.0, 0.419, 0.186, 0.06, 0.0]


def test_jobs_follow_the_input_size(tmp_path: Path) -> None:
    small = str(SAMPLES / "udp_call.pcap")
    assert (jobs_for([small], 8), jobs_for(["-"], 8), jobs_for([small], 1)) == (1, 1, 1)


def test_several_processes_give_the_same_analysis(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(analysis, "MIN_BYTES_PER_JOB", 1)
    captures = [SAMPLES / "rule_forking.pcap", SAMPLES / "rule_auth_loop.pcap", SAMPLES / "rule_proxy_remap.pcap"]
    captures += [SAMPLES / "tcp_large_invite.pcap", SAMPLES / "udp_fragmented.pcap"]
    captures += [PUBLIC / "goffinet-sip_captures" / "Forensic_challenge_4.pcap"]
    for capture in captures:
        one = analyze(capture, keep_messages=False)
        three = analyze(capture, keep_messages=False, jobs=3)
        assert [call_dict(r) for r in three.calls] == [call_dict(r) for r in one.calls]
        assert (three.stats, three.security, three.warning) == (one.stats, one.security, one.warning)
