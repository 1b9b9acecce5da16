"""analyzer.analysis: the run as a whole (processes, garbage, bounds)."""

from __future__ import annotations

import dataclasses
import gc
import io
import multiprocessing.process
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import analyzer.analysis as analysis
import analyzer.shards as shards
from analyzer.analysis import analyze
from analyzer.correlate.model import Conversation, Outcome
from analyzer.correlate.store import CallStore
from analyzer.decode.pipeline import Decoder, Unreachable
from analyzer.diagnose.security import ReportNote, SecurityWatch
from analyzer.diagnose.verdict import CallReport, diagnose
from analyzer.errors import CaptureOpenError, SipflowError
from analyzer.reader import MessageReader
from analyzer.report.calls import call_dict
from analyzer.sip.message import SipMessage

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_pcaps"
PUBLIC = ROOT.parent / "shared" / "pcaps"


def several_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    """--jobs takes effect even on a small capture with few SIP messages."""
    monkeypatch.setattr(shards, "MIN_BYTES_PER_JOB", 1)
    monkeypatch.setattr(shards, "MIN_SIP_PER_CALLS_JOB", 0)


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


@pytest.mark.parametrize("jobs", [2, 3])
def test_several_processes_give_the_same_analysis(monkeypatch: pytest.MonkeyPatch, jobs: int) -> None:
    """Process 0 reads and hands the others their messages (and the ICMP errors: rule_timeout)."""
    several_processes(monkeypatch)
    captures = [SAMPLES / "rule_forking.pcap", SAMPLES / "rule_auth_loop.pcap", SAMPLES / "rule_proxy_remap.pcap"]
    captures += [SAMPLES / "tcp_large_invite.pcap", SAMPLES / "udp_fragmented.pcap", SAMPLES / "rule_timeout.pcap"]
    captures += [PUBLIC / "goffinet-sip_captures" / "Forensic_challenge_4.pcap"]
    runs: list[int] = []
    parallel = analysis._analyze_parallel
    monkeypatch.setattr(analysis, "_analyze_parallel", lambda *a: runs.append(a[2]) or parallel(*a))
    for capture in captures:
        one = analyze(capture, keep_messages=False)
        other = analyze(capture, keep_messages=False, jobs=jobs)
        assert [call_dict(r) for r in other.calls] == [call_dict(r) for r in one.calls]
        assert (other.stats, other.security, other.warning) == (one.stats, one.security, one.warning)
    assert runs == [jobs] * len(captures)


def _made_where(r: CallReport) -> tuple[int, str, str]:
    return os.getpid(), r.call_id, str(r.outcome)


@pytest.mark.parametrize("jobs", [1, 3])
def test_streaming_prepares_each_report_where_it_is_made(monkeypatch: pytest.MonkeyPatch, jobs: int) -> None:
    """A Streaming on_report: ``prepare`` runs in the calls processes, ``take`` here, in start
    order, with what prepare made of every report; the watch still reads them all."""
    several_processes(monkeypatch)
    capture = SAMPLES / "rule_timeout.pcap"
    notes: list[ReportNote] = []
    monkeypatch.setattr(SecurityWatch, "replay", lambda _, note: notes.append(note))
    taken: list[tuple[int, str, str]] = []
    one = analyze(capture, keep_messages=False)
    noted, notes[:] = list(notes), []
    other = analyze(capture, keep_messages=False, jobs=jobs, on_report=analysis.Streaming(_made_where, taken.append))
    assert other.calls == []
    assert [(call_id, outcome) for _, call_id, outcome in taken] == [(r.call_id, str(r.outcome)) for r in one.calls]
    here = {pid for pid, _, _ in taken} == {os.getpid()}
    assert here is (jobs == 1)
    assert notes == noted
    assert [note.outcome for note in notes] == [Outcome.TIMEOUT] * 2  # the two calls to a dead address


@pytest.mark.parametrize(
    "name",
    ["wireshark-samplecaptures/aaa.pcap", "goffinet-sip_captures/sip-flow-private.pcapng", "zeek/wireshark.pcap"],
)
def test_sweeps_and_processes_change_no_conversation(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """A registration refreshed on its Call-ID minutes later, a call tried again after a
    challenge: which conversation a message joins does not depend on when the streaming run
    swept its store (every EXPIRE_EVERY messages a process handles, so on how many processes
    share the capture), nor on whether it keeps every message (--report). Found by fuzzing:
    a refresh past the linger was a conversation of its own with -j1, not with -j2."""
    capture = PUBLIC / name
    kept = [call_dict(r) for r in analyze(capture).calls]
    assert [call_dict(r) for r in analyze(capture, keep_messages=False).calls] == kept
    monkeypatch.setattr(analysis, "EXPIRE_EVERY", 1)
    assert [call_dict(r) for r in analyze(capture, keep_messages=False).calls] == kept
    several_processes(monkeypatch)
    assert [call_dict(r) for r in analyze(capture, keep_messages=False, jobs=2).calls] == kept


@pytest.mark.tools
@pytest.mark.parametrize("gap_s", [299, 14401])
def test_icmp_errors_cited_do_not_depend_on_sweeps(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, gap_s: int) -> None:
    """rule_timeout.pcap with its second half minutes or hours later: the INVITEs then go to the
    same dead address. A call judged when swept counted the ICMP errors read so far; judged at
    the end, those of the later calls too (found by comparing the ways of running it)."""
    first, second, late = tmp_path / "a.pcap", tmp_path / "b.pcap", tmp_path / "b_late.pcap"
    for part, frames in ((first, "1-20"), (second, "21-39")):
        subprocess.run(["editcap", "-r", str(SAMPLES / "rule_timeout.pcap"), str(part), frames], check=True, timeout=60)
    subprocess.run(["editcap", "-t", str(gap_s), str(second), str(late)], check=True, timeout=60)
    capture = tmp_path / "gap.pcap"
    subprocess.run(["mergecap", "-a", "-F", "pcap", "-w", str(capture), str(first), str(late)], check=True, timeout=60)
    kept = [call_dict(r) for r in analyze(capture).calls]
    monkeypatch.setattr(analysis, "EXPIRE_EVERY", 1)
    assert [call_dict(r) for r in analyze(capture, keep_messages=False).calls] == kept
    cited = [str(c["breaking"]["explanation"]).rsplit("(", 1)[-1] for c in kept if c["breaking"]]
    # each call's first 4 INVITEs and the ICMP error each got (those quote its Call-ID); its
    # later ones come past the 300 s a call in setup is held: another conversation, noted
    assert cited[:2] == ["4x, first in frame 4).", "4x, first in frame 6)."]


def test_an_error_in_the_reading_process_is_the_one_told(monkeypatch: pytest.MonkeyPatch) -> None:
    """The processes it feeds stop when it does, without a word of their own."""
    several_processes(monkeypatch)
    real = MessageReader.__iter__

    def broken(self: MessageReader) -> Iterator[SipMessage]:
        yield next(real(self))
        raise CaptureOpenError(f"{self.path}: broken here")

    monkeypatch.setattr(MessageReader, "__iter__", broken)
    with pytest.raises(CaptureOpenError, match=r"udp_call\.pcap: broken here"):
        analyze(SAMPLES / "udp_call.pcap", keep_messages=False, jobs=2)


def test_an_error_in_a_process_of_the_calls_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    several_processes(monkeypatch)

    def fails(*args: object) -> None:
        raise KeyError("boom")

    monkeypatch.setattr(analysis, "diagnose", fails)
    with pytest.raises(SipflowError, match=r"worker [12]: KeyError\('boom'\)"):
        analyze(SAMPLES / "rule_forking.pcap", keep_messages=False, jobs=2)


def test_a_process_that_cannot_start_leaves_no_descriptor_open(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forking fails (out of processes): a one-line error; the processes that did start are
    stopped, and the pipes to them and the copy of standard input closed."""
    several_processes(monkeypatch)
    started: list[int] = []
    real = multiprocessing.process.BaseProcess.start

    def start(self: multiprocessing.process.BaseProcess) -> None:
        if len(started) == 2:
            raise OSError(11, "Resource temporarily unavailable")
        started.append(1)
        real(self)

    analyze(SAMPLES / "rule_forking.pcap", keep_messages=False, jobs=2)  # multiprocessing's own shared memory, kept
    monkeypatch.setattr(multiprocessing.process.BaseProcess, "start", start)
    with (SAMPLES / "rule_forking.pcap").open("rb") as capture:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(capture))
        before = sorted(os.listdir("/proc/self/fd"))
        with pytest.raises(
            SipflowError, match=r"cannot start a process for --jobs \(Resource temporarily unavailable\)"
        ):
            analyze("-", keep_messages=False, jobs=2)
        assert sorted(os.listdir("/proc/self/fd")) == before
    assert started == [1, 1]


@pytest.mark.tools
def test_processes_sweep_where_one_process_would(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """aaa.pcap twice, end to end: the clock goes back at the join. The reader tells the
    processes of the calls where one process would sweep and by what time, so they hand out
    the same conversations; each sweeping after its own messages by its own newest time, they
    did not (25 conversations with one process, 23 with two: found by fuzzing)."""
    aaa = PUBLIC / "wireshark-samplecaptures" / "aaa.pcap"
    twice = tmp_path / "twice.pcap"
    subprocess.run(["mergecap", "-a", "-F", "pcap", "-w", str(twice), str(aaa), str(aaa)], check=True, timeout=60)
    monkeypatch.setattr(analysis, "EXPIRE_EVERY", 7)
    several_processes(monkeypatch)
    one = [call_dict(r) for r in analyze(twice, keep_messages=False).calls]
    assert len(one) == 25 and [call_dict(r) for r in analyze(twice, keep_messages=False, jobs=2).calls] == one


@pytest.mark.tools
@pytest.mark.parametrize("jobs", [2, 3])
def test_processes_hand_the_reports_over_in_the_order_of_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, jobs: int
) -> None:
    """Streamed, reports go when no conversation still open starts before them: where the
    clock goes back (aaa.pcap twice, end to end) that is not start order, and the calling
    process of several hands them over in the order one process would. Taking each
    process's reports in its own order gave another (found by fuzzing the command line)."""
    aaa = PUBLIC / "wireshark-samplecaptures" / "aaa.pcap"
    twice = tmp_path / "twice.pcap"
    subprocess.run(["mergecap", "-a", "-F", "pcap", "-w", str(twice), str(aaa), str(aaa)], check=True, timeout=60)
    monkeypatch.setattr(analysis, "EXPIRE_EVERY", 7)
    several_processes(monkeypatch)
    one: list[CallReport] = []
    other: list[CallReport] = []
    analyze(twice, keep_messages=False, on_report=one.append)
    analyze(twice, keep_messages=False, jobs=jobs, on_report=other.append)
    order = [analysis._report_order(r) for r in one]
    assert len(order) == 25 and order != sorted(order)  # the clock went back
    assert [call_dict(r) for r in other] == [call_dict(r) for r in one]


def test_two_reports_of_one_key_are_held_in_turn() -> None:
    """A capture whose clock goes back can make two conversations of one Call-ID, kind and
    start: their reports wait side by side without being compared (a TypeError before)."""
    store = CallStore()
    for msg in MessageReader(SAMPLES / "udp_call.pcap"):
        store.feed(msg)
    conv = store.finish()[0]
    out: list[CallReport] = []
    run = analysis._Run(Decoder(), False, out.append)
    first = diagnose(conv, conv.end_ns)
    second = dataclasses.replace(first, retransmissions=first.retransmissions + 1)  # the other copy
    run._hold(first)
    run._hold(second)
    run.pending.release(conv.start_ns + 1)
    assert out == [first, second]


def test_the_reports_of_the_end_go_on_as_they_come_in() -> None:
    """The calling process of several: every mark is in, and the processes hand out the reports
    of the end in start order, merged so; each goes on once one that starts later has come,
    with those an earlier sweep left waiting, not all when the last process is done."""
    taken: list[str] = []
    in_turn = analysis._InTurn(2, analysis._WatchNotes(), taken.append)
    in_turn.add(analysis._Handed(0, (150, "waits", "call"), None, "waits"))  # starts after the marks
    in_turn.add(analysis._Mark(0, 100))
    in_turn.add(analysis._Mark(0, 100))
    assert taken == []
    seen = []
    for start, name in [(120, "a"), (160, "b"), (160, "c"), (170, "d")]:
        in_turn.add(analysis._Handed(analysis.AT_END, (start, name, "call"), None, name))
        seen.append(list(taken))
    assert seen == [[], ["a", "waits"], ["a", "waits"], ["a", "waits", "b", "c"]]  # c starts with b: held too
    in_turn.pending.release()  # once every process is done
    assert taken == ["a", "waits", "b", "c", "d"]


def test_at_the_end_each_report_goes_once_none_can_come_before_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """The conversations open at the end are diagnosed in start order, and each report is
    handed over as soon as no later one can start before it (a process of the calls sends
    them while it still diagnoses), in the order of holding them all until the last."""
    diagnosed: list[str] = []

    def counted(c: Conversation, end: int, icmp: tuple[Unreachable, ...] = ()) -> CallReport:
        diagnosed.append(c.call_id)
        return diagnose(c, end, icmp)

    monkeypatch.setattr(analysis, "diagnose", counted)
    handed: list[tuple[str, int]] = []
    run = analysis._Run(Decoder(), False, lambda r: handed.append((r.call_id, len(diagnosed))))
    for msg in MessageReader(SAMPLES / "rule_loop.pcap"):
        run.correlate(msg)
    run.finish()
    kept = [r.call_id for r in analyze(SAMPLES / "rule_loop.pcap").calls]
    assert [call_id for call_id, _ in handed] == kept and len(kept) == 2
    assert [when for _, when in handed] == [1, 2]  # the first went before the second was diagnosed


def test_several_processes_on_several_files(monkeypatch: pytest.MonkeyPatch) -> None:
    several_processes(monkeypatch)
    captures = [SAMPLES / "rule_timeout.pcap", SAMPLES / "rule_forking.pcap", SAMPLES / "udp_call.pcap"]
    one = analyze(captures, keep_messages=False)
    two = analyze(captures, keep_messages=False, jobs=2)
    assert [call_dict(r) for r in two.calls] == [call_dict(r) for r in one.calls]
    assert (two.stats, two.security, two.copies) == (one.stats, one.security, one.copies)
    # --max-open is shared out too: each process judges early the calls it holds beyond its share
    few = analyze(captures, keep_messages=False, max_open=2, jobs=2)
    assert few.evicted > 0 and few.stats == one.stats
