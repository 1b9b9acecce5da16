"""analyze writes json/jsonl/csv call by call: the same text as from a whole analysis."""

from __future__ import annotations

import gc
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import analyzer.analysis as analysis
import analyzer.shards as shards
from analyzer.cli import main
from analyzer.report import terminal

ROOT = Path(__file__).resolve().parents[2]
CAPTURES = [
    ROOT / "sample_pcaps" / "rule_forking.pcap",
    ROOT / "sample_pcaps" / "rule_timeout.pcap",
    ROOT.parent / "shared" / "pcaps" / "goffinet-sip_captures",
]


def run(*args: str) -> str:
    result = CliRunner().invoke(main, ["analyze", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv", "table"])
@pytest.mark.parametrize("capture", CAPTURES, ids=lambda p: p.name)
def test_streamed_output_is_the_whole_analysis_output(fmt: str, capture: Path, tmp_path: Path) -> None:
    streamed = run(str(capture), "--format", fmt)
    whole = run(str(capture), "--format", fmt, "--report", str(tmp_path / "r"))  # keeps every message
    assert streamed == whole
    if fmt == "json":
        doc = json.loads(streamed)
        assert sorted(doc) == ["calls", "capture", "security", "summary"]
        assert doc["summary"]["conversations"] == len(doc["calls"])


def test_csv_numbers_stay_integers() -> None:
    lines = run(str(ROOT / "sample_pcaps" / "rule_no_answer.pcap"), "--format", "csv").splitlines()
    first = lines[1].split(",")
    header = lines[0].split(",")
    cell = dict(zip(header, first, strict=False))
    assert (cell["final_code"], cell["breaking_frame"], cell["breaking_code"]) == ("480", "6", "480")


def test_filters_apply_to_the_stream_and_the_summary_counts_all() -> None:
    capture = str(ROOT / "sample_pcaps" / "rule_forking.pcap")
    doc = json.loads(run(capture, "--format", "json", "--outcome", "rejected"))
    assert [c["outcome"] for c in doc["calls"]] == ["rejected"]
    assert doc["summary"]["conversations"] == 2


def test_writing_the_calls_makes_no_reference_cycle() -> None:
    """Reports are written while the collector is off (analysis.no_gc_pauses): a writer that
    made cycles would keep every call's garbage to the end (json.dumps with indent did)."""
    from analyzer.analysis import analyze
    from analyzer.report.calls import CsvCallsWriter, JsonCallsWriter, SummaryCounts, call_dict

    reports = analyze(CAPTURES[0]).calls
    out = io.StringIO()
    gc.collect()
    gc.disable()
    try:
        json_writer, csv_writer, counts = JsonCallsWriter(out), CsvCallsWriter(out), SummaryCounts()
        for r in reports:
            json_writer.add(r)
            csv_writer.add(r)
            counts.add(r)
            out.write(json.dumps(call_dict(r), ensure_ascii=False))
        assert gc.collect() == 0
    finally:
        gc.enable()


def test_the_summary_table_of_a_selection_is_the_same_streamed(tmp_path: Path) -> None:
    capture = str(CAPTURES[2])
    streamed = run(capture, "--outcome", "rejected", "--outcome", "timeout")
    whole = run(capture, "--outcome", "rejected", "--outcome", "timeout", "--report", str(tmp_path / "r"))
    assert streamed == whole
    assert " selected)" in streamed.splitlines()[2]


@pytest.mark.parametrize(
    "command",
    [["messages"], ["messages", "--format", "csv"], ["analyze"], ["analyze", "--format", "jsonl"]],
    ids=" ".join,
)
def test_a_reader_that_goes_away_ends_it_quietly(command: list[str]) -> None:
    """``sipflow … | head``: standard output is a pipe nobody reads any more."""
    read, write = os.pipe()
    os.close(read)
    sipflow = Path(sys.executable).parent / "sipflow"
    capture = ROOT / "sample_pcaps" / "rule_forking.pcap"
    with subprocess.Popen([str(sipflow), *command, str(capture)], stdout=write, stderr=subprocess.PIPE) as proc:
        os.close(write)
        _, err = proc.communicate(timeout=60)
    assert (proc.returncode, err) == (0, b"")


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv", "table"])
def test_the_calls_processes_write_what_one_process_writes(monkeypatch: pytest.MonkeyPatch, fmt: str) -> None:
    """With --jobs the calls processes make each call's text and summary view; the table
    still shows the first failed calls in start order in full, and only those."""
    monkeypatch.setattr(shards, "MIN_BYTES_PER_JOB", 1)
    monkeypatch.setattr(shards, "MIN_SIP_PER_CALLS_JOB", 0)
    monkeypatch.setattr(terminal, "MAX_FAILED_ROWS", 2)
    runs: list[int] = []
    parallel = analysis._analyze_parallel
    monkeypatch.setattr(analysis, "_analyze_parallel", lambda *a: runs.append(a[2]) or parallel(*a))
    capture = str(CAPTURES[2])
    one = run(capture, "--format", fmt, "-j", "1")
    assert run(capture, "--format", fmt, "-j", "3") == one
    assert run(capture, "--format", fmt, "-j", "2", "--kind", "call", "--fail-on", "failed>99") == run(
        capture, "--format", fmt, "-j", "1", "--kind", "call", "--fail-on", "failed>99"
    )
    assert runs == [3, 2]
    if fmt == "table":
        assert "Failed (95) (first 2 of 95;" in one
