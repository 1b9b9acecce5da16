"""``-o``/``--output`` (:class:`analyzer.cli.OutputFile`): standard output by the block."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path
from typing import TextIO

import pytest
from click.testing import CliRunner

from analyzer.cli import OutputFile, main


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


def test_the_console_script_ends_with_everything_written(shared_pcaps: Path, tmp_path: Path) -> None:
    """After messages and analyze the process ends without tearing the interpreter down
    (``cli.run``): what was buffered for standard output and for -o files is all there."""
    capture = shared_pcaps / "goffinet-sip_captures/uac-uas-scenario-sipp.pcapng"
    for command in ("messages --format csv", "messages", "analyze --format json", "analyze --format csv", "analyze"):
        inprocess = CliRunner().invoke(main, [*command.split(), str(capture)])
        piped = _sipflow(f"{command} {capture} | cat", buffered=True)
        assert (piped.returncode, piped.stdout) == (0, inprocess.output)
        to_file = _sipflow(f"{command} {capture} -o {tmp_path}/out", buffered=True)
        assert (to_file.returncode, (tmp_path / "out").read_text()) == (0, inprocess.output)
    held = _sipflow(f"analyze {capture} --format jsonl --fail-on outcome=answered > /dev/null", buffered=True)
    assert (held.returncode, held.stderr) == (1, "sipflow: --fail-on holds: outcome=answered\n")


def _sipflow(args: str, buffered: bool = False) -> subprocess.CompletedProcess[str]:
    """``sipflow ARGS`` run by bash (redirections and process substitution as a user types them);
    ``buffered``: without PYTHONUNBUFFERED, should the tests run with it."""
    command = f"{Path(sys.executable).parent / 'sipflow'} {args}"
    env = {k: v for k, v in os.environ.items() if not (buffered and k == "PYTHONUNBUFFERED")}
    return subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=60, check=False, env=env)


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


# -- found by fuzzing the command line ------------------------------------------------------------

UDP_CALL = Path(__file__).parents[2] / "sample_pcaps" / "udp_call.pcap"


def test_an_output_naming_an_input_capture_is_refused(tmp_path: Path) -> None:
    # it was emptied while being read: `messages c.pcap -o c.pcap` listed 10 of 21 messages
    capture = tmp_path / "c.pcap"
    capture.write_bytes(UDP_CALL.read_bytes())
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "c.pcap").symlink_to(capture)
    for args in (f"messages {capture} -o {capture}", f"analyze {capture} -o {tmp_path}/./c.pcap",
                 f"analyze {tmp_path}/dir -o {capture}", f"flow {capture} 1-udp_call@198.18.0.1 --svg {capture}"):  # fmt: skip
        run = _sipflow(args)
        assert run.returncode == 2, args
        assert run.stderr.endswith(": refusing to overwrite an input capture; choose another output file\n"), args
    assert capture.read_bytes() == UDP_CALL.read_bytes()


def test_closed_standard_input_and_error_are_handled() -> None:
    for command in ("messages", "analyze"):
        run = _sipflow(f"{command} - <&-")
        assert (run.returncode, run.stderr) == (2, "sipflow: error: -: standard input is closed: give a capture file\n")
    run = _sipflow(f"analyze {UDP_CALL} --format jsonl 2>&-")  # it exited 1 with nothing written
    assert (run.returncode, len(run.stdout.splitlines())) == (0, 3)


def test_a_pipe_named_as_the_capture_is_read_once() -> None:
    # `<(zcat x.gz)` is /dev/fd/63: opened once to check its header, it had nothing left after
    run = _sipflow(f"analyze --format jsonl <(cat {UDP_CALL})")
    assert (run.returncode, len(run.stdout.splitlines()), run.stderr) == (0, 3, "")
    run = _sipflow(f"export <(cat {UDP_CALL}) -o /dev/null")
    assert run.returncode == 2 and "is a pipe or standard input, read only once" in run.stderr


def test_unwritable_svg_and_peers_that_are_not_text_are_one_line_errors(tmp_path: Path) -> None:
    run = _sipflow(f"flow {UDP_CALL} 1-udp_call@198.18.0.1 --svg {tmp_path}/missing/x.svg")
    assert (run.returncode, run.stderr) == (2, f"sipflow: error: {tmp_path}/missing/x.svg: cannot write (No such file or directory)\n")  # fmt: skip
    peers = tmp_path / "peers.toml"
    peers.write_bytes(b"\xff\n")
    run = _sipflow(f"analyze --peers {peers} {UDP_CALL}")
    assert (run.returncode, run.stderr) == (2, f"sipflow: error: {peers}: cannot read peer names: not UTF-8 text (byte 0)\n")  # fmt: skip


def test_an_empty_file_among_rotated_captures_is_left_out(tmp_path: Path) -> None:
    # the newest file of a `tcpdump -G` rotation is empty: it made the whole directory an error
    rotated = tmp_path / "rotated"
    rotated.mkdir()
    subprocess.run(["editcap", "-c", "8", str(UDP_CALL), str(rotated / "p.pcap")], check=True, timeout=60)
    (rotated / "z_newest.pcap").write_bytes(b"")
    (rotated / "z_cut.pcap").write_bytes(UDP_CALL.read_bytes()[:10])
    run = _sipflow(f"analyze --format jsonl {rotated}")
    assert (run.returncode, len(run.stdout.splitlines())) == (0, 3)
    assert run.stderr == (
        f"sipflow: warning: {rotated}/z_cut.pcap: pcap file header is cut short: left out, it holds no frame\n"
        f"sipflow: warning: {rotated}/z_newest.pcap: not a pcap or pcapng capture (an empty file): left out, it "
        "holds no frame\n"
    )
    run = _sipflow(f"analyze {rotated}/z_newest.pcap")  # alone, it is an error as before
    assert (run.returncode, run.stdout) == (2, "")


def test_standard_input_is_given_once_and_reported_as_stdin(tmp_path: Path) -> None:
    run = _sipflow(f"analyze - - < {UDP_CALL}")
    assert (run.returncode, run.stderr) == (2, "sipflow: error: standard input (-) can be read only once: give it once\n")  # fmt: skip
    sipflow = Path(sys.executable).parent / "sipflow"
    with UDP_CALL.open("rb") as stdin:
        subprocess.run(
            [sipflow, "analyze", "-", "--report"], stdin=stdin, cwd=tmp_path, capture_output=True, check=True
        )
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == ["stdin"]


def test_standard_input_is_read_by_the_reading_process_of_several() -> None:
    """analyze - with --jobs: one process reads for all, so a pipe is no reason for one process;
    a forked process's standard input is /dev/null, so the reader is handed a copy of it."""
    sipflow = Path(sys.executable).parent / "sipflow"
    capture = (UDP_CALL.parent / "rule_timeout.pcap").read_bytes()
    outs = [
        subprocess.run([sipflow, "analyze", "-", "--format", "json", "-j", jobs], input=capture, capture_output=True)
        for jobs in ("1", "2")
    ]
    assert [(o.returncode, o.stderr) for o in outs] == [(0, b"")] * 2
    assert outs[1].stdout == outs[0].stdout and outs[0].stdout.count(b'"call_id"') == 3


def test_a_call_id_with_several_conversations_gets_a_picture_each(shared_pcaps: Path, tmp_path: Path) -> None:
    aaa = shared_pcaps / "wireshark-samplecaptures/aaa.pcap"  # a registration refreshed on one Call-ID
    run = _sipflow(f"flow {aaa} 578222729-4665d775@578222732-4665d772 --svg {tmp_path}/reg.svg")
    names = [f"reg-{n}.svg" for n in range(1, 5)]
    assert (run.returncode, run.stderr) == (0, "".join(f"sipflow: wrote {tmp_path}/{n}\n" for n in names))
    assert sorted(p.name for p in tmp_path.iterdir()) == names


def test_the_default_report_directory_names_what_was_read(tmp_path: Path) -> None:
    # several captures wrote into the first one's directory, over its own report
    sipflow = Path(sys.executable).parent / "sipflow"
    rotated = tmp_path / "day1"
    rotated.mkdir()
    subprocess.run(["editcap", "-c", "8", str(UDP_CALL), str(rotated / "p.pcap")], check=True, timeout=60)
    for args in ([UDP_CALL], [UDP_CALL, UDP_CALL.with_name("rule_timeout.pcap")], [rotated]):
        subprocess.run([sipflow, "analyze", *map(str, args), "--report"], cwd=tmp_path, capture_output=True, check=True)
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == ["day1", "udp_call", "udp_call+1"]
