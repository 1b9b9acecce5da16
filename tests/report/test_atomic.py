"""Output files (:mod:`analyzer.report.atomic`): whole or not at all, never over an input."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import IO, Any

import pytest

from analyzer.errors import UsageError
from analyzer.report.atomic import atomic_write, refuse_inputs


def _text(text: str) -> Any:
    def write(f: IO[str]) -> None:
        f.write(text)

    return write


def test_a_file_is_replaced_whole_and_keeps_its_mode(tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    out.write_text("old")
    out.chmod(0o600)
    atomic_write(out, _text("new"))
    assert (out.read_text(), out.stat().st_mode & 0o777, sorted(tmp_path.iterdir())) == ("new", 0o600, [out])

    def fail(f: IO[str]) -> None:
        f.write("half")
        raise RuntimeError("disk gone")

    with pytest.raises(RuntimeError):
        atomic_write(out, fail)
    assert (out.read_text(), sorted(tmp_path.iterdir())) == ("new", [out])


def test_a_link_is_followed_and_kept(tmp_path: Path) -> None:
    # found by fuzzing: the rename replaced the link itself with a file
    target, link = tmp_path / "target.svg", tmp_path / "link.svg"
    target.write_text("old")
    link.symlink_to(target)
    atomic_write(link, _text("new"))
    assert (link.is_symlink(), target.read_text()) == (True, "new")


def test_a_fifo_is_written_into_not_replaced(tmp_path: Path) -> None:
    # found by fuzzing: `export -o /dev/full` as root replaced the device with a pcap
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    atomic_write(fifo, lambda f: f.write(b"\xd4\xc3\xb2\xa1"), binary=True)
    reader.join(10)
    assert (got, fifo.is_fifo(), sorted(tmp_path.iterdir())) == ([b"\xd4\xc3\xb2\xa1"], True, [fifo])


def test_a_missing_directory_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        atomic_write(tmp_path / "missing" / "x.svg", _text("x"))


def test_an_input_is_never_an_output(tmp_path: Path) -> None:
    capture = tmp_path / "c.pcap"
    capture.write_bytes(b"pcap")
    (tmp_path / "hard.pcap").hardlink_to(capture)
    (tmp_path / "soft.pcap").symlink_to(capture)
    for out in (capture, tmp_path / "hard.pcap", tmp_path / "soft.pcap", tmp_path / "." / "c.pcap"):
        with pytest.raises(UsageError, match="refusing to overwrite an input capture"):
            refuse_inputs(out, ["-", capture])
    refuse_inputs(tmp_path / "other.pcap", ["-", capture])
