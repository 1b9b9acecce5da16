"""Network namespaces and processes for the live tests and the soak benchmark.

Everything happens inside namespaces created here (names start with ``sfl-``), joined by
one veth pair created directly inside them: no interface or address of the host is ever
touched. Addresses come from 198.18.0.0/15 (RFC 2544, benchmarking). Every process is
started with a time limit and is ended by its own pid; the namespaces are deleted by
:meth:`NsPair.down` after whatever is left in them is killed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "sample_pcaps" / "scenarios"
TOOLS = ("ip", "sipp", "tcpdump")


def missing_tools(extra: tuple[str, ...] = ()) -> list[str]:
    return [t for t in (*TOOLS, *extra) if shutil.which(t) is None]


def can_run() -> str:
    """Why the namespace tests cannot run here ('' when they can)."""
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    missing = missing_tools()
    return f"missing tools: {', '.join(missing)}" if missing else ""


def run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=30)


def ns_cmd(ns: str, *argv: str) -> list[str]:
    return ["ip", "netns", "exec", ns, *argv]


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (Linux /proc)."""
    out: list[int] = []
    task = Path(f"/proc/{pid}/task")
    try:
        for t in task.iterdir():
            out += [int(c) for c in (t / "children").read_text().split()]
    except OSError:
        pass
    return out


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


@dataclass
class NsPair:
    """Two namespaces, ``uac`` and ``uas``, joined by a veth pair."""

    tag: str
    mtu: int = 1500
    uac_ip: str = "198.18.99.1"
    uas_ip: str = "198.18.99.2"
    uac_ns: str = field(init=False)
    uas_ns: str = field(init=False)
    uac_if: str = field(init=False)
    uas_if: str = field(init=False)

    def __post_init__(self) -> None:
        self.uac_ns, self.uas_ns = f"sfl-{self.tag}-c", f"sfl-{self.tag}-s"
        self.uac_if, self.uas_if = f"sfl{self.tag}c"[:15], f"sfl{self.tag}s"[:15]

    def up(self) -> NsPair:
        self.down()
        for ns in (self.uac_ns, self.uas_ns):
            run("ip", "netns", "add", ns)
            run("ip", "-n", ns, "link", "set", "lo", "up")
        # Created inside the namespaces: the pair never exists on the host.
        run(
            "ip", "link", "add", self.uac_if, "netns", self.uac_ns, "mtu", str(self.mtu), "type", "veth",
            "peer", "name", self.uas_if, "netns", self.uas_ns, "mtu", str(self.mtu),
        )  # fmt: skip
        run("ip", "-n", self.uac_ns, "addr", "add", f"{self.uac_ip}/24", "dev", self.uac_if)
        run("ip", "-n", self.uas_ns, "addr", "add", f"{self.uas_ip}/24", "dev", self.uas_if)
        run("ip", "-n", self.uac_ns, "link", "set", self.uac_if, "up")
        run("ip", "-n", self.uas_ns, "link", "set", self.uas_if, "up")
        return self

    def down(self) -> None:
        for ns in (self.uac_ns, self.uas_ns):
            kill_namespace(ns)


def kill_namespace(ns: str) -> None:
    """Kill what still runs in ``ns`` (all of it started by us), then delete it."""
    if not Path(f"/run/netns/{ns}").exists():
        return
    pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True, timeout=10).stdout.split()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)
    subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)


def sipp(
    ns: str,
    scenario: str,
    *args: str,
    cwd: Path,
    limit_s: int = 30,
) -> subprocess.Popen[bytes]:
    """SIPp in ``ns`` with ``scenario`` (a path under sample_pcaps/scenarios or absolute)."""
    path = scenario if scenario.startswith("/") else str(SCENARIOS / scenario)
    argv = ["timeout", str(limit_s), "sipp", "-sf", path, "-nostdin", "-timeout", f"{limit_s - 2}s", *args]
    log = (cwd / f"sipp-{Path(scenario).stem}-{time.monotonic_ns()}.log").open("wb")
    return subprocess.Popen(ns_cmd(ns, *argv), cwd=cwd, stdout=log, stderr=subprocess.STDOUT)


class Live:
    """``python -m analyzer.live ARGS`` inside a namespace; its stderr collected by a thread."""

    def __init__(self, ns: str, *args: str, cwd: Path, wrap: tuple[str, ...] = ()) -> None:
        """``wrap``: a command line the run goes through (``setpriv --reuid …``)."""
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            ns_cmd(ns, *wrap, sys.executable, "-m", "analyzer.live", *args),
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_for(self, text: str, limit_s: float) -> None:
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            if any(text in line for line in self.lines):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"no {text!r} on stderr within {limit_s} s: {self.lines}")

    def tcpdump_pid(self) -> int:
        """The tcpdump child (``ip netns exec`` execs python itself: the child is ours)."""
        kids = children(self.pid)
        assert len(kids) == 1, kids
        return kids[0]

    def stop(self, sig: int = signal.SIGTERM, limit_s: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        rc = self.proc.wait(timeout=limit_s)
        self._reader.join(timeout=5)
        return rc

    def wait(self, limit_s: float) -> int:
        rc = self.proc.wait(timeout=limit_s)
        self._reader.join(timeout=5)
        return rc

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
