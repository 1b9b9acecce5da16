"""``-o``/``--output`` (:class:`analyzer.cli.OutputFile`): standard output by the block."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path
from typing import TextIO

import pytest

from analyzer.cli import OutputFile


class _Pipe(io.TextIOWrapper):
    """A stand-in for standard output that is not a terminal."""

    def isatty(self) -> bool:
        return False


class _Terminal(_Pipe):
    def isatty(self) -> bool:
        return True


def _stdout(monkeypatch: pytest.MonkeyPatch, kind: type[_Pipe]) -> tuple[io.BytesIO, TextIO]:
    """Standard output replaced by ``kind`` over bytes; what ``-o -`` opens on it."""
    raw = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", kind(raw, encoding="utf-8"))
    out: TextIO = OutputFile().convert("-", None, None)
    return raw, out


def test_stdout_is_flushed_by_the_block_not_by_the_line(monkeypatch: pytest.MonkeyPatch) -> None:
    raw, out = _stdout(monkeypatch, _Pipe)
    out.write("1,INVITE\n2,100\n")
    assert raw.getvalue() == b""
    out.write("é\n")
    out.close()  # flushes, and leaves standard output open
    assert raw.getvalue() == "1,INVITE\n2,100\né\n".encode()
    assert not raw.closed


def test_stdout_on_a_terminal_is_flushed_by_the_line(monkeypatch: pytest.MonkeyPatch) -> None:
    raw, out = _stdout(monkeypatch, _Terminal)
    out.write("1,INVITE\n")
    assert raw.getvalue() == b"1,INVITE\n"


def test_a_file_is_created_on_first_write(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    out = OutputFile().convert(str(path), None, None)
    assert not path.exists()
    out.write("x\n")
    out.close()
    assert path.read_text() == "x\n"


def test_a_closed_pipe_ends_quietly(shared_pcaps: Path) -> None:
    capture = shared_pcaps / "goffinet-sip_captures/uac-uas-scenario-sipp.pcapng"  # 4,618 rows: more than a pipe holds
    run = subprocess.run(
        f"{Path(sys.executable).parent / 'sipflow'} messages --format csv {capture} | head -1",
        shell=True,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert run.stdout == "frame,time,src,dst,transport,method,status,reason,call_id,cseq\n"
    assert run.stderr == ""


def _sipflow(args: str) -> subprocess.CompletedProcess[str]:
    command = f"{Path(sys.executable).parent / 'sipflow'} {args}"
    return subprocess.run(command, shell=True, capture_output=True, text=True, timeout=60, check=False)


def test_an_output_file_that_cannot_be_written_is_a_one_line_error(tmp_path: Path) -> None:
    capture = Path(__file__).parents[2] / "sample_pcaps" / "udp_call.pcap"
    for command in ("messages", "analyze --format json"):
        run = _sipflow(f"{command} {capture} -o {tmp_path}/no/such/dir.csv")
        assert (run.returncode, run.stdout) == (2, "")
        assert run.stderr == f"sipflow: error: {tmp_path}/no/such/dir.csv: No such file or directory\n"


def test_a_bad_capture_leaves_no_output_file(tmp_path: Path) -> None:
    bad = tmp_path / "notes.txt"
    bad.write_text("not a capture\n")
    for command in ("messages", "analyze"):
        for fmt in ("table", "csv", "json", "jsonl"):
            out = tmp_path / f"{command}.{fmt}"
            run = _sipflow(f"{command} --format {fmt} {bad} -o {out}")
            assert run.returncode == 2 and run.stderr.startswith(f"sipflow: error: {bad}: not a pcap")
            assert not out.exists(), (command, fmt)


def test_closed_standard_output_is_a_one_line_error() -> None:
    capture = Path(__file__).parents[2] / "sample_pcaps" / "udp_call.pcap"
    run = _sipflow(f"messages {capture} >&-")
    assert (run.returncode, run.stderr) == (2, "sipflow: error: standard output is closed: give a file with -o\n")


def test_explain_and_flow_with_closed_standard_output_are_one_line_errors() -> None:
    capture = Path(__file__).parents[2] / "sample_pcaps" / "udp_call.pcap"
    run = _sipflow("explain 488 >&-")
    assert (run.returncode, run.stderr) == (2, "sipflow: error: standard output is closed\n")
    run = _sipflow(f"flow {capture} 1-udp_call@198.18.0.1 >&-")
    assert (run.returncode, run.stderr) == (
        2,
        "sipflow: error: standard output is closed: write the ladder to a file with --svg\n",
    )


def test_explain_and_flow_into_a_closed_pipe_end_quietly() -> None:
    capture = Path(__file__).parents[2] / "sample_pcaps" / "udp_call.pcap"
    sipflow = str(Path(sys.executable).parent / "sipflow")
    for args in (
        ["explain", "488"],
        ["flow", str(capture), "1-udp_call@198.18.0.1"],
        ["flow", str(capture), "1-udp_call@198.18.0.1", "--mermaid"],
    ):
        with subprocess.Popen([sipflow, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
            assert proc.stdout is not None and proc.stderr is not None
            proc.stdout.close()  # the reader is gone before anything is written
            assert (proc.wait(timeout=60), proc.stderr.read()) == (0, b""), args
