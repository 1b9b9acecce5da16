"""``-o``/``--output`` (:class:`analyzer.cli.OutputFile`): standard output by the block."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from analyzer.cli import OutputFile


class _Pipe(io.TextIOWrapper):
    """A stand-in for standard output that is not a terminal."""

    def isatty(self) -> bool:
        return False


class _Terminal(_Pipe):
    def isatty(self) -> bool:
        return True


def test_stdout_is_flushed_by_the_block_not_by_the_line(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", _Pipe(raw, encoding="utf-8"))
    out = OutputFile().convert("-", None, None)
    out.write("1,INVITE\n2,100\n")
    assert raw.getvalue() == b""
    out.write("é\n")
    out.close()  # flushes, and leaves standard output open
    assert raw.getvalue() == "1,INVITE\n2,100\né\n".encode()
    assert not raw.closed


def test_stdout_on_a_terminal_is_flushed_by_the_line(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", _Terminal(raw, encoding="utf-8"))
    out = OutputFile().convert("-", None, None)
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
