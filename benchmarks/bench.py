"""Time sipflow and peer SIP tools on the benchmark captures: wall clock, throughput, peak RSS.

Each command runs in its own child process, fork()ed by a small launcher and reaped with
``os.wait4``, so the wall-clock time covers the whole run (interpreter start-up included) and
the peak RSS is that child's own ``ru_maxrss``. The tools are taken in turn, ``--repeat`` rounds;
the time shown is each tool's best run (and the median), the peak RSS the largest. Nothing
here asserts anything: it prints figures.

    .venv/bin/python benchmarks/bench.py [--captures FILE ...] [--repeat N] [--tools NAME ...]

Make the captures first with ``sudo benchmarks/make_captures.sh``; see benchmarks/README.md.
Stdlib only, so it also runs with a bare python3.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import functools
import io
import json
import os
import platform
import re
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import IO

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
PEERS_VENV = HERE / ".venv-peers"
SIP_DOCTOR_PIN = "sip-doctor==0.8.0"
DEFAULT_CAPTURES = ("all_sip.pcap", "rtp_heavy.pcap", "rtp_heavy_x4.pcap")
REFERENCE = "sipflow messages"
MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Counts:
    """What a capture holds, as capinfos and tshark count it; cached beside the captures."""

    path: str
    size: int
    mtime_ns: int
    packets: int
    sip_messages: int


@dataclass(frozen=True, slots=True)
class Tool:
    """One command line to time, and optionally an untimed run that says what it found."""

    name: str
    command: Callable[[Path], list[str]]
    check: Callable[[Path], list[str]] | None = None
    """Command whose stdout ``found`` reads; None when the timed run's stdout is read."""
    found: Callable[[str], str] | None = None
    keep_stdout: bool = False
    """Keep the timed run's stdout (tshark's few lines of statistics) instead of /dev/null."""


@dataclass(frozen=True, slots=True)
class Run:
    """One finished child process."""

    seconds: float
    cpu_seconds: float
    maxrss_kib: int
    exit_code: int
    stdout: str
    stderr_tail: str


@dataclass(frozen=True, slots=True)
class Result:
    """The figures of one tool on one capture (``error`` set when it could not be timed)."""

    tool: str
    command: str
    runs: int = 0
    seconds: float = 0.0
    """The best run's."""
    median_seconds: float = 0.0
    cpu_seconds: float = 0.0
    maxrss_mib: float = 0.0
    found: str = ""
    error: str = ""


# --- running a child ------------------------------------------------------------------------


# Why a launcher: a child's ru_maxrss also counts the memory of the process it was exec'ed from
# (Linux keeps the old address space's high-water mark across execve). posix_spawn and
# subprocess share this script's address space until exec (vfork), so every tool would show
# at least this script's own peak, which grows with the outputs it reads. The tool is
# therefore fork()ed from a small, fresh interpreter that does nothing else: its floor is that
# interpreter's current RSS, a few MiB, printed at the top as "RSS floor". The launcher times
# the tool from fork to wait4, enforces the timeout and writes its figures on fd 3.
_LAUNCHER = """
import os, select, sys, time
timeout = float(sys.argv[1])
argv = sys.argv[2:]
os.set_inheritable(3, False)
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(argv[0], argv)
    finally:
        os._exit(127)
pidfd = os.pidfd_open(pid)
timed_out = not select.select([pidfd], [], [], timeout)[0]
if timed_out:
    os.kill(pid, 9)
_, status, ru = os.wait4(pid, 0)
seconds = time.perf_counter() - start
code = os.waitstatus_to_exitcode(status)
os.write(3, f"{seconds} {ru.ru_utime + ru.ru_stime} {ru.ru_maxrss} {code} {int(timed_out)}".encode())
"""


def run_once(argv: Sequence[str], timeout: float, keep_stdout: bool = False) -> Run:
    """Run ``argv`` with stdin and (unless kept) stdout on /dev/null; time it; reap it."""
    if shutil.which(argv[0]) is None:
        raise FileNotFoundError(argv[0])
    launcher = [sys.executable, "-I", "-S", "-c", _LAUNCHER, str(timeout), *argv]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as rep:
        # Targets in increasing order: a temp file's own fd may be 3, so fd 3 is set last.
        actions: list[tuple[int, int, str, int, int] | tuple[int, int, int]] = [
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_DUP2, out.fileno(), 1)
            if keep_stdout
            else (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
            (os.POSIX_SPAWN_DUP2, err.fileno(), 2),
            (os.POSIX_SPAWN_DUP2, rep.fileno(), 3),
        ]
        env = dict(os.environ, NO_COLOR="1")
        pid = os.posix_spawn(sys.executable, launcher, env, file_actions=actions)
        _reap(pid, timeout + 60)
        fields = _read_all(rep).split()
        if len(fields) != 5:
            raise OSError(f"launcher failed: {_tail(_read_all(err))}")
        if fields[4] == "1":
            raise TimeoutError(f"killed after {timeout:g} s")
        return Run(
            seconds=float(fields[0]),
            cpu_seconds=float(fields[1]),
            # Linux gives ru_maxrss in KiB (getrusage(2)).
            maxrss_kib=int(fields[2]),
            exit_code=int(fields[3]),
            stdout=_read_all(out),
            stderr_tail=_tail(_read_all(err)),
        )


def _reap(pid: int, timeout: float) -> None:
    """Wait for the launcher at most ``timeout`` s (then SIGKILL it), and reap it."""
    # A pidfd turns "exited" into a readable fd, so the wait has a deadline without polling;
    # the pid cannot be reused before it is reaped, so the kill cannot hit another process.
    pidfd = os.pidfd_open(pid)
    try:
        ready, _, _ = select.select([pidfd], [], [], timeout)
        if not ready:
            os.kill(pid, signal.SIGKILL)
    finally:
        os.close(pidfd)
    os.waitpid(pid, 0)


def rss_floor_mib() -> float:
    """Peak RSS that a tool using almost nothing (``true``) shows when run as the tools are."""
    return run_once(["true"], 30).maxrss_kib / 1024


def _read_all(f: IO[bytes]) -> str:
    f.seek(0)
    return f.read().decode("utf-8", "replace")


def _tail(text: str, lines: int = 3) -> str:
    kept = [line for line in text.splitlines() if line.strip() and "Running as user" not in line]
    return " | ".join(kept[-lines:])


def simple_output(argv: Sequence[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """A short untimed helper command (versions, counts): output captured, never raises."""
    try:
        return subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return subprocess.CompletedProcess(list(argv), 127, "", str(exc))


# --- counts (cached) ------------------------------------------------------------------------


def counts_for(capture: Path) -> Counts:
    """Packets (capinfos) and SIP messages (tshark's sip,stat tap), cached by path, size, mtime.

    The sip,stat tap counts SIP messages, not frames: one TCP segment can carry several.
    """
    st = capture.stat()
    cache = capture.with_suffix(".counts.json")  # beside it: benchmarks/data/NAME.counts.json
    with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
        cached = Counts(**json.loads(cache.read_text()))
        if (cached.path, cached.size, cached.mtime_ns) == (str(capture), st.st_size, st.st_mtime_ns):
            return cached
    capinfos = simple_output(["capinfos", "-c", "-M", str(capture)])
    match = re.search(r"Number of packets:\s*(\d+)", capinfos.stdout)
    if not match:
        raise RuntimeError(f"capinfos could not count {capture}: {capinfos.stderr.strip()}")
    sip = sip_messages_in_stat(simple_output(["tshark", "-q", "-z", "sip,stat", "-r", str(capture)], 900).stdout)
    if sip is None:
        raise RuntimeError(f"tshark could not count SIP messages in {capture}")
    counts = Counts(str(capture), st.st_size, st.st_mtime_ns, int(match.group(1)), sip)
    with contextlib.suppress(OSError):
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(asdict(counts), indent=2) + "\n")
    return counts


def sip_messages_in_stat(text: str) -> int | None:
    match = re.search(r"Number of SIP messages:\s*(\d+)", text)
    return int(match.group(1)) if match else None


# --- what each tool found (untimed check runs) ----------------------------------------------


def found_tshark(text: str) -> str:
    n = sip_messages_in_stat(text)
    return f"{n} SIP msgs" if n is not None else "no sip,stat output"


def found_csv_rows(text: str) -> str:
    rows = sum(1 for _ in csv.reader(io.StringIO(text)))
    return f"{max(rows - 1, 0)} CSV rows"


def found_json(text: str) -> str:
    try:
        doc = json.loads(text)
    except ValueError:
        return "no JSON"
    if isinstance(doc, list):
        return f"{len(doc)} JSON items"
    if isinstance(doc, dict):
        parts = [f"{len(v)} {k}" for k, v in doc.items() if isinstance(v, list) and k in ("calls", "dialogs")]
        return ", ".join(parts) or "JSON object"
    return "JSON scalar"


def found_sngrep(text: str) -> str:
    counts = re.findall(r"Dialog count:\s*(\d+)", text)
    return f"{counts[-1]} dialogs" if counts else "no dialog count"


def found_sip_doctor(text: str) -> str:
    try:
        doc = json.loads(text)
        return f"{doc['stats']['sip_messages']} SIP msgs, {len(doc['dialogs'])} dialogs"
    except (ValueError, KeyError, TypeError):
        return "no JSON"


# --- the tools ------------------------------------------------------------------------------


def sipflow_console() -> Path:
    """sipflow's console script, beside the interpreter that runs the bench."""
    return Path(sys.executable).parent / "sipflow"


@functools.cache
def sipflow_version() -> subprocess.CompletedProcess[str]:
    """``sipflow --version``: it names the build (compiled or from source); asked once."""
    return simple_output([str(sipflow_console()), "--version"], 60)


def sipflow_tools(notes: list[str]) -> list[Tool]:
    """sipflow's commands, from the console script beside this interpreter, if they run yet."""
    exe = sipflow_console()
    if not exe.exists():
        notes.append(f"sipflow: no console script at {exe} (pip install -e . in the venv)")
        return []
    tools: list[Tool] = []
    specs = (
        ("messages", " -j1", ["--format", "csv", "-j", "1"], found_csv_rows),
        ("messages", "", ["--format", "csv"], found_csv_rows),  # --jobs default: every core
        ("analyze", " -j1", ["--format", "json", "-j", "1"], found_json),
        ("analyze", "", ["--format", "json"], found_json),  # --jobs default: every core
    )
    for sub, label, opts, found in specs:
        probe = simple_output([str(exe), sub, "--help"], 60)
        if probe.returncode != 0:
            why = _tail(probe.stderr or probe.stdout, 1) or f"exit {probe.returncode}"
            notes.append(f"sipflow {sub}: not available yet, skipped ({why})")
            continue
        command = _command_line([str(exe), sub], opts)
        tools.append(Tool(name=f"sipflow {sub}{label}", command=command, check=command, found=found))
    if tools and "compiled" in sipflow_version().stdout:
        # The same analysis with the hot modules run from source, as without a C compiler
        # (analyzer/native.py): what a machine that could not compile them gets.
        source = _command_line(["env", "SIPFLOW_PURE=1", str(exe), "analyze"], ["--format", "json"])
        tools.append(Tool(name="sipflow analyze (source)", command=source, check=source, found=found_json))
    return tools


def compile_sipflow() -> str:
    """Byte-compile sipflow first, as pip does for an installed package and did for the peers:
    with PYTHONDONTWRITEBYTECODE set, an editable install would compile every module again on
    every run (about 70 ms a start on this machine)."""
    package = Path(__file__).resolve().parents[1] / "analyzer"
    done = subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(package)], capture_output=True, text=True, check=False
    )
    return "sipflow byte-compiled (compileall)" if done.returncode == 0 else f"compileall failed: {done.stderr.strip()}"


def _command_line(before: list[str], after: list[str]) -> Callable[[Path], list[str]]:
    """The command for one capture: ``before FILE after``."""

    def command(capture: Path) -> list[str]:
        return [*before, str(capture), *after]

    return command


def peer_tools(notes: list[str]) -> list[Tool]:
    tools: list[Tool] = []
    if shutil.which("tshark"):
        tools.append(
            Tool(
                "tshark sip,stat",
                lambda f: ["tshark", "-q", "-z", "sip,stat", "-r", str(f)],
                found=found_tshark,
                keep_stdout=True,
            )
        )
    else:
        notes.append("tshark: not installed, skipped (apt-get install tshark)")
    if shutil.which("sngrep"):
        # -N: no ncurses interface; -q: do not print the running dialog count; -I: read a
        # pcap file, and exit at its end. -F: ignore any ~/.sngreprc. -l: the default limit of
        # 20,000 dialogs would silently cap larger captures.
        tools.append(
            Tool(
                "sngrep -N",
                lambda f: ["sngrep", "-F", "-N", "-q", "-l", "10000000", "-I", str(f)],
                check=lambda f: ["sngrep", "-F", "-N", "-l", "10000000", "-I", str(f)],
                found=found_sngrep,
            )
        )
    else:
        notes.append("sngrep: not installed, skipped (apt-get install sngrep)")
    doctor = PEERS_VENV / "bin" / "sip-doctor"
    if doctor.exists():
        tools.append(
            Tool(
                "sip-doctor read",
                lambda f: [str(doctor), "read", "--json", str(f)],
                check=lambda f: [str(doctor), "read", "--json", str(f)],
                found=found_sip_doctor,
            )
        )
    else:
        notes.append(f"sip-doctor: not installed at {doctor}, skipped (run bench.py --install-peers)")
    return tools


def base_python() -> str:
    """The interpreter this venv was made from: the peers' venv is made from it too, so that
    sip-doctor runs on the same build of Python as sipflow (a pyenv build with a shared
    libpython ran both about 10 % slower than Debian's)."""
    return str(getattr(sys, "_base_executable", "") or shutil.which("python3") or "python3")


def venv_home(venv: Path) -> str | None:
    """The ``home`` (the base interpreter's directory) a venv's pyvenv.cfg names."""
    with contextlib.suppress(OSError):
        for line in (venv / "pyvenv.cfg").read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "home":
                return value.strip()
    return None


def install_peers() -> None:
    """Put the sip-doctor package into its own venv, away from the project's, made from the
    same base interpreter (made again when it was made from another)."""
    base = base_python()
    home = str(Path(base).parent)
    if (PEERS_VENV / "bin" / "python").exists() and venv_home(PEERS_VENV) != home:
        shutil.rmtree(PEERS_VENV)
    if not (PEERS_VENV / "bin" / "python").exists():
        # The base interpreter, not this venv's: the project's packages must not leak into the peer's.
        subprocess.run([base, "-m", "venv", str(PEERS_VENV)], check=True)
    pip = PEERS_VENV / "bin" / "pip"
    done = subprocess.run([str(pip), "install", "--quiet", SIP_DOCTOR_PIN], check=False)
    if done.returncode != 0:
        print(f"note: pip could not install {SIP_DOCTOR_PIN}; sip-doctor will be skipped", file=sys.stderr)


def tool_versions() -> list[str]:
    lines = [f"python {platform.python_version()} ({sys.executable}, made from {base_python()})"]
    peers = venv_home(PEERS_VENV)
    if peers is not None:
        lines.append(f"sip-doctor's venv made from the python in {peers}")
    probes = (
        ("sipflow", sipflow_version),  # compiled or from source
        ("tshark", lambda: simple_output(["tshark", "--version"], 30)),
        ("sngrep", lambda: simple_output(["sngrep", "-V"], 30)),
        ("sip-doctor", lambda: simple_output([str(PEERS_VENV / "bin" / "sip-doctor"), "--version"], 30)),
    )
    for name, probe in probes:
        out = probe()
        first = (out.stdout or out.stderr).strip().splitlines()
        lines.append(f"{name}: {first[0].strip() if out.returncode == 0 and first else 'not available'}")
    return lines


# --- machine --------------------------------------------------------------------------------


def machine() -> list[str]:
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        kib = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0])
        mem = f", {kib / MIB:.1f} GiB RAM"
    usable = len(os.sched_getaffinity(0))
    return [
        f"machine: {model}, {os.cpu_count()} cores ({usable} usable){mem}",
        f"os: {platform.system()} {platform.release()}",
        # Other work on the machine slows every tool: the load says whether it was quiet.
        "load average (1, 5, 15 min): {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()),
    ]


# --- measuring and printing -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Plan:
    """How to run every tool: repeats, when one run is enough, the kill timeout, the check."""

    repeat: int
    long_s: float
    timeout: float
    check: bool


def measure(tools: Sequence[Tool], capture: Path, plan: Plan) -> list[Result]:
    """Time every tool on ``capture``, taking the tools in turn each round: the machine's speed
    drifts over minutes, and a tool timed only in its own minutes would carry that drift into
    every ratio."""
    runs: dict[str, list[Run]] = {t.name: [] for t in tools}
    errors: dict[str, str] = {}
    for _ in range(plan.repeat):
        for tool in tools:
            done = runs[tool.name]
            # Best-of-N is against noise of a few tenths of a second; a run of minutes gains
            # nothing from being repeated.
            if tool.name in errors or (done and done[-1].seconds > plan.long_s):
                continue
            try:
                run = run_once(tool.command(capture), plan.timeout, tool.keep_stdout)
            except (OSError, TimeoutError) as exc:
                errors[tool.name] = str(exc)
                continue
            if run.exit_code != 0:
                errors[tool.name] = f"exit {run.exit_code}: {run.stderr_tail}"
                continue
            done.append(run)
    return [_result(t, capture, plan, runs[t.name], errors.get(t.name, "")) for t in tools]


def _result(tool: Tool, capture: Path, plan: Plan, runs: list[Run], error: str) -> Result:
    result = Result(tool=tool.name, command=" ".join(tool.command(capture)))
    if error or not runs:
        return replace(result, error=error or "not run")
    best = min(runs, key=lambda r: r.seconds)
    result = replace(
        result,
        runs=len(runs),
        seconds=best.seconds,
        median_seconds=statistics.median(r.seconds for r in runs),
        cpu_seconds=best.cpu_seconds,
        maxrss_mib=max(r.maxrss_kib for r in runs) / 1024,
    )
    if tool.found is None:
        return result
    if tool.check is None:
        return replace(result, found=tool.found(best.stdout))
    if not plan.check:
        return result
    try:
        probe = run_once(tool.check(capture), plan.timeout, keep_stdout=True)
    except (OSError, TimeoutError) as exc:
        return replace(result, found=f"check failed: {exc}")
    return replace(result, found=tool.found(probe.stdout))


def warm_page_cache(capture: Path) -> None:
    """Read the file once so the first timed tool does not pay for the disk and the others do not."""
    with capture.open("rb") as f:
        while f.read(MIB):
            pass


def print_table(capture: Path, counts: Counts, results: list[Result]) -> None:
    mb = counts.size / 1e6
    print(
        f"\n== {capture.name}: {counts.size:,} bytes ({mb:.1f} MB), {counts.packets:,} packets, "
        f"{counts.sip_messages:,} SIP messages"
    )
    ref = next((r for r in results if r.tool == REFERENCE and not r.error), None)
    header = (
        "tool",
        "runs",
        "seconds",
        "median",
        "packets/s",
        "SIP msg/s",
        "MB/s",
        "peak RSS MiB",
        "time x",
        "RSS x",
        "cpu s",
        "found",
    )
    rows: list[tuple[str, ...]] = []
    for r in results:
        if r.error:
            rows.append((r.tool, "", "failed", "", "", "", "", "", "", "", "", r.error[:60]))
            continue
        rows.append(
            (
                r.tool,
                str(r.runs),
                f"{r.seconds:.2f}",
                f"{r.median_seconds:.2f}",
                f"{counts.packets / r.seconds:,.0f}",
                f"{counts.sip_messages / r.seconds:,.0f}",
                f"{mb / r.seconds:.1f}",
                f"{r.maxrss_mib:.1f}",
                f"{r.seconds / ref.seconds:.2f}" if ref else "-",
                f"{r.maxrss_mib / ref.maxrss_mib:.2f}" if ref else "-",
                f"{r.cpu_seconds:.2f}",
                r.found,
            )
        )
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:-1], widths[1:-1], strict=True)]
        print("  " + "  ".join([*cells, row[-1]]).rstrip())
    if ref is None:
        print(f"  (no '{REFERENCE}' figures: ratios not shown)")


# The issues' measured targets: (sipflow tool, peer tool, wanted time ratio peer/sipflow,
# wanted RSS ratio peer/sipflow). "analyze" and "messages" use every core (--jobs default).
TARGETS = (
    ("sipflow analyze", "sip-doctor read", 10.0, 4.0),
    ("sipflow analyze", "tshark sip,stat", 4.0, None),
    ("sipflow analyze", "sngrep -N", 1.0, None),
    ("sipflow analyze -j1", "sip-doctor read", 10.0, 4.0),
)


def print_targets(counts: Counts, results: list[Result]) -> None:
    """Each ratio the issues set, measured in this run: met or not, in figures."""
    by = {r.tool: r for r in results if not r.error}
    lines: list[str] = []
    for ours, peer, want_time, want_rss in TARGETS:
        a, b = by.get(ours), by.get(peer)
        if a is None or b is None:
            continue
        speed = b.seconds / a.seconds
        text = f"  {ours} vs {peer}: {speed:.2f}x faster (target {want_time:g}x: {'met' if speed >= want_time else 'not met'})"
        if want_rss is not None:
            rss = b.maxrss_mib / a.maxrss_mib
            text += f"; peak RSS {rss:.2f}x smaller (target {want_rss:g}x: {'met' if rss >= want_rss else 'not met'})"
        lines.append(text)
    for name in ("sipflow messages", "sipflow analyze"):
        r = by.get(name)
        if r is not None:
            lines.append(
                f"  {name}: {counts.packets / r.seconds:,.0f} packets/s, {counts.sip_messages / r.seconds:,.0f} SIP msg/s "
                "(targets: messages 500,000 pkt/s RTP-heavy and 150,000 msg/s all-SIP; analyze 1,000,000 pkt/s RTP-heavy)"
            )
    if lines:
        print("  targets:")
        print("\n".join(lines))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--captures", nargs="+", type=Path, help="capture files (default: the ones in benchmarks/data/ that exist)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per tool; best time kept (3)")
    parser.add_argument(
        "--tools",
        nargs="+",
        metavar="NAME",
        help="only tools whose name starts with one of these (sipflow, tshark, ...)",
    )
    parser.add_argument(
        "--long", type=float, default=60, metavar="S", help="no further repeat after a run longer than S seconds (60)"
    )
    parser.add_argument("--timeout", type=float, default=1800, help="seconds before a run is killed (1800)")
    parser.add_argument(
        "--no-check", action="store_true", help="skip the untimed run per tool that reports what it found"
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write all figures here")
    parser.add_argument(
        "--install-peers", action="store_true", help=f"first pip-install {SIP_DOCTOR_PIN} into benchmarks/.venv-peers"
    )
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    captures: list[Path] = (
        [c.resolve() for c in args.captures]
        if args.captures
        else [DATA / n for n in DEFAULT_CAPTURES if (DATA / n).exists()]
    )
    missing = [c for c in captures if not c.is_file()]
    if not captures or missing:
        print(
            f"no capture {' '.join(map(str, missing))}: make them with sudo benchmarks/make_captures.sh",
            file=sys.stderr,
        )
        return 2
    if args.install_peers:
        install_peers()
    notes: list[str] = []
    notes.append(compile_sipflow())
    tools = sipflow_tools(notes) + peer_tools(notes)
    if args.tools:
        tools = [t for t in tools if t.name.startswith(tuple(args.tools))]
    for line in machine() + tool_versions():
        print(line)
    print(
        f"best (and median) of {args.repeat} runs for time, the tools taken in turn each round (1 run when it"
        f" takes over {args.long:.0f} s), largest peak RSS; MB = 10^6 bytes of capture file"
    )
    print(f"RSS floor: {rss_floor_mib():.1f} MiB (what /bin/true shows when launched as the tools are)")
    for note in notes:
        print(f"note: {note}")
    plan = Plan(repeat=args.repeat, long_s=args.long, timeout=args.timeout, check=not args.no_check)
    report: list[dict[str, object]] = []
    for capture in captures:
        counts = counts_for(capture)
        warm_page_cache(capture)
        results = measure(tools, capture, plan)
        print_table(capture, counts, results)
        print_targets(counts, results)
        for r in results:
            print(f"    {r.tool}: {r.command}")
        report.append({"capture": asdict(counts), "results": [asdict(r) for r in results]})
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "notes": notes, "runs": report}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
