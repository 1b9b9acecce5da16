"""Capture from an interface through a tcpdump child: its pcap stream on a pipe, read by the
same stream reader as files (:func:`analyzer.capture.source.read_frames`).

tcpdump is the only part that needs privileges (CAP_NET_RAW to open the interface);
sipflow itself never does. The child runs in its own session, so a Ctrl-C at the
terminal reaches sipflow only, and sipflow stops it in order: SIGTERM, read what it
still wrote, reap it. It is also told to die with its parent (PR_SET_PDEATHSIG), for the
one exit path no ``finally`` runs on: sipflow being killed outright.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import queue
import re
import shlex
import signal
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, cast

from analyzer.capture.source import read_frames
from analyzer.capture.stats import CaptureStats
from analyzer.errors import CaptureError, CaptureOpenError
from analyzer.live.events import Done, Event, Frame, put_blocking

# SIP on the usual ports: 5060 (RFC 3261 §19.1.2), 5061 (TLS; kept so the flows show up,
# though encrypted), 5062-5090 (second profiles and trunks: FreeSWITCH 5080, Asterisk
# and SBC side listeners). `portrange` matches UDP, TCP and SCTP.
SIP_PORTS = "portrange 5060-5090"
# Every IPv4 fragment (MF set or an offset): only the first carries the UDP ports, and a
# large INVITE over UDP is fragmented (RFC 3261 §18.1.1). Every IPv6 packet whose first
# extension header is a Fragment header (next header 44, RFC 8200 §4.5).
FRAGMENTS = "(ip[6:2] & 0x3fff != 0) or (ip6[6] == 44)"
# ICMP destination unreachable (RFC 792; ICMPv6 type 1, RFC 4443 §3.1): the decoder keeps
# them as evidence for requests that got no answer.
UNREACHABLE = "(icmp and icmp[0] == 3) or (icmp6 and ip6[40] == 1)"
BASE_FILTER = f"{SIP_PORTS} or {FRAGMENTS} or {UNREACHABLE}"

# ARPHRD_ETHER (linux/if_arp.h): the link type on which 802.1Q tags can be in the frame.
_ARPHRD_ETHER = "1"
_PR_SET_PDEATHSIG = 1
_STOP_WAIT_S = 5.0
_STAT_LINE = re.compile(r"^(\d+) packets? (captured|received by filter|dropped by kernel)")


def default_filter(iface: str, sysfs: Path = Path("/sys/class/net")) -> str:
    """The default capture filter for ``iface``.

    On Ethernet the expression is repeated behind one and two VLAN tags: libpcap's
    ``vlan`` keyword moves every later offset by 4 bytes (pcap-filter(7)), so
    ``F or (vlan and (F)) or (vlan and (F))`` matches untagged, 802.1Q and QinQ frames.
    ``any`` (Linux cooked capture) and non-Ethernet links carry no tags in the frame and
    refuse the keyword.
    """
    try:
        arphrd = (sysfs / iface / "type").read_text().strip()
    except OSError:
        arphrd = ""
    if iface == "any" or arphrd != _ARPHRD_ETHER:
        return BASE_FILTER
    return f"{BASE_FILTER} or (vlan and ({BASE_FILTER})) or (vlan and ({BASE_FILTER}))"


def tcpdump_argv(command: str, iface: str, bpf: str) -> list[str]:
    """``tcpdump -i IFACE -n -U -w - -s 0 --immediate-mode -B 4096 FILTER``.

    ``command`` may be ``sudo -n tcpdump``. -U and --immediate-mode: each frame reaches the
    pipe when it is captured, not when a buffer fills, so calls are reported on time and
    nothing is left in libpcap's ring at SIGTERM. -B: 4 MiB of kernel buffer for bursts.
    """
    return [*shlex.split(command), "-i", iface, "-n", "-U", "-w", "-", "-s", "0", "--immediate-mode", "-B", "4096", bpf]


@dataclass(slots=True)
class TcpdumpStats:
    """What tcpdump said on stderr."""

    captured: int | None = None
    received: int | None = None
    dropped_by_kernel: int | None = None
    listening: str = ""
    errors: list[str] = field(default_factory=list)

    def note(self, line: str) -> None:
        m = _STAT_LINE.match(line)
        if m:
            n, what = int(m[1]), m[2]
            if what == "captured":
                self.captured = n
            elif what == "received by filter":
                self.received = n
            else:
                self.dropped_by_kernel = n
        elif line.startswith("listening on"):
            self.listening = line
        else:
            self.errors.append(line)
            del self.errors[:-20]


def _parent_death_signal() -> Callable[[], None] | None:
    """A ``preexec_fn`` asking the kernel to SIGTERM the child when sipflow dies (Linux
    prctl(2) PR_SET_PDEATHSIG). Looked up here, in the parent: the child, between fork
    and exec, only makes the one call."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def preexec() -> None:  # pragma: no cover - runs in the child
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)

    return preexec


class TcpdumpCapture:
    """A tcpdump child whose frames go to ``out`` as :class:`Frame` events, then one :class:`Done`.

    ``abandon`` is set by the consumer when it stops reading the queue for good.
    """

    def __init__(self, argv: list[str], out: queue.Queue[Event], abandon: threading.Event) -> None:
        self.argv = argv
        self.out = out
        self.abandon = abandon
        self.stats = TcpdumpStats()
        self.capture = CaptureStats("tcpdump")
        self.proc: subprocess.Popen[bytes] | None = None
        self.stopping = False
        self._reader: threading.Thread | None = None
        self._stderr: threading.Thread | None = None
        self._lines: queue.Queue[str] = queue.Queue()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self) -> None:
        """Start tcpdump (before sipflow's other threads: fork with one thread is the safe kind)."""
        try:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                # One prctl() between fork and exec, nothing else (see _parent_death_signal).
                preexec_fn=_parent_death_signal(),
            )
        except OSError as exc:
            raise CaptureOpenError(f"cannot run {self.argv[0]}: {exc.strerror or exc}") from None
        self._stderr = threading.Thread(target=self._read_stderr, name="tcpdump-stderr", daemon=True)
        self._reader = threading.Thread(target=self._read_frames, name="tcpdump-frames", daemon=True)
        self._stderr.start()
        self._reader.start()

    def lines(self) -> list[str]:
        """tcpdump's stderr lines since the last call (printed by the main thread)."""
        out: list[str] = []
        with contextlib.suppress(queue.Empty):
            while True:
                out.append(self._lines.get_nowait())
        return out

    def _read_frames(self) -> None:
        proc = self.proc
        assert proc is not None and proc.stdout is not None
        error = ""
        try:
            for ts_ns, linktype, data, _orig in read_frames(cast(BinaryIO, proc.stdout), self.capture):
                put_blocking(self.out, Frame(ts_ns, linktype, data), self.abandon)
        except CaptureError as exc:
            error = str(exc)
        except OSError as exc:  # the pipe went away under us
            error = f"reading tcpdump's output: {exc}"
        finally:
            proc.stdout.close()  # a tcpdump still running gets SIGPIPE
            rc = proc.wait()
            if self._stderr is not None:
                self._stderr.join(timeout=_STOP_WAIT_S)
            if not self.stopping:
                if rc:
                    why = _last_error(self.stats.errors) or f"exit code {rc}"
                    error = f"tcpdump stopped: {why}"
                elif self.capture.warning:
                    error = f"tcpdump's stream ended badly: {self.capture.warning}"
                elif not error:
                    error = "tcpdump stopped"
            elif error and "not a pcap" in error:
                error = ""  # stopped before it wrote anything: nothing was lost
            put_blocking(self.out, Done("tcpdump", error), self.abandon)

    def _read_stderr(self) -> None:
        proc = self.proc
        assert proc is not None and proc.stderr is not None
        for raw in proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip().removeprefix("tcpdump: ")
            if line:
                self.stats.note(line)
                self._lines.put(line)

    def terminate(self) -> None:
        """SIGTERM to tcpdump's process group; the reader goes on to the end of its pipe."""
        self.stopping = True
        proc = self.proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)

    def reap(self, timeout: float = _STOP_WAIT_S) -> None:
        """Wait for tcpdump to exit, SIGKILL it if it lingers; it is reaped either way."""
        self.stopping = True
        proc = self.proc
        if proc is None:
            return
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def join(self, timeout: float) -> None:
        for t in (self._reader, self._stderr):
            if t is not None:
                t.join(timeout=timeout)


def _last_error(lines: list[str]) -> str:
    """tcpdump's last complaint; it follows some with a bare ``(reason)`` line that says less."""
    return next((e for e in reversed(lines) if not e.startswith("(")), lines[-1] if lines else "")
