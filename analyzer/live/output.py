"""Where live results go: the JSON lines file, one-line summaries, and the alert command."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import queue
import shlex
import subprocess
import threading
from pathlib import Path
from typing import IO, Any

from analyzer.diagnose.verdict import CallReport
from analyzer.errors import SipflowError, UsageError
from analyzer.live.alerts import Alert
from analyzer.report.calls import call_dict
from analyzer.report.columns import iso_time
from analyzer.sip.redact import scrub

ALERT_CMD_TIMEOUT_S = 10.0
ALERT_CMD_QUEUE = 64


def alert_dict(a: Alert) -> dict[str, Any]:
    """An alert as a JSON line: ``alert`` (its kind) tells it apart from a call line."""
    return {"alert": a.kind, "time": iso_time(a.time_ns), "subject": a.subject, "message": a.message, **a.details}


def redact_alert(a: Alert, secrets: set[str]) -> Alert:
    """``a`` with the masked values it quotes scrubbed (a scanner's User-Agent under
    ``--redact User-Agent``), also where a message shows them as a Python literal."""
    found = secrets | {repr(s)[1:-1] for s in secrets}
    details = {k: scrub(v, found) if isinstance(v, str) else v for k, v in a.details.items()}
    return dataclasses.replace(a, subject=scrub(a.subject, found), message=scrub(a.message, found), details=details)


class JsonlWriter:
    """Appends one JSON object per line, flushed after each: a reader (``tail -f``) never
    sees half a line, and a crash loses nothing that was written."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._f: IO[str] | None = path.open("a", encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"{path}: cannot append: {exc.strerror or exc}") from None
        self.lines = 0

    def write(self, obj: dict[str, Any]) -> None:
        if self._f is None:
            return
        try:
            self._f.write(json.dumps(obj, ensure_ascii=False) + "\n")
            self._f.flush()
        except OSError as exc:  # disk full …: stop in order (open calls are flushed elsewhere)
            self._f = None
            raise SipflowError(f"{self.path}: cannot write: {exc.strerror or exc}") from None
        self.lines += 1

    def call(self, r: CallReport) -> None:
        self.write(call_dict(r))

    def alert(self, a: Alert) -> None:
        self.write(alert_dict(a))

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


def call_line(r: CallReport) -> str:
    """``14:02:11 call busy alice@a -> 1001@b 486 Busy Here (callee_rejected, caller leg)``."""
    when = iso_time(r.end_ns)[11:19]
    who = f"{r.caller or r.caller_addr or '?'} -> {r.callee or r.callee_addr or '?'}"
    head = f"{when} {r.kind} {r.outcome} {who}"
    b = r.breaking
    if b is not None:
        what = f"{b.code} {b.reason}".strip() if b.code else f"{b.method} unanswered"
        return f"{head}  {what} ({b.rule}, {b.hop})"
    t = r.timings
    if t.duration_s is not None:
        return f"{head}  {t.duration_s:.1f} s"
    if r.final_code is not None:
        return f"{head}  {r.final_code} {r.final_reason}".rstrip()
    return head


def alert_line(a: Alert) -> str:
    return f"{iso_time(a.time_ns)[11:19]} ALERT {a.kind}: {a.message}"


class AlertCommand:
    """Runs ``command`` once per alert with the alert's JSON on stdin: no shell (the words
    of ``command`` are split as a shell would, then run directly), at most
    :data:`ALERT_CMD_TIMEOUT_S` each, one at a time on a worker thread, at most
    :data:`ALERT_CMD_QUEUE` waiting (more are dropped and counted)."""

    def __init__(self, command: str, timeout_s: float = ALERT_CMD_TIMEOUT_S) -> None:
        try:
            self.argv = shlex.split(command)
        except ValueError as exc:
            raise UsageError(f"--alert-cmd {command!r}: {exc}") from None
        if not self.argv:
            raise UsageError("--alert-cmd is empty")
        self.timeout_s = timeout_s
        self.ran = 0
        self.failed = 0
        self.dropped = 0
        self.errors: queue.Queue[str] = queue.Queue()
        self._q: queue.Queue[bytes | None] = queue.Queue(maxsize=ALERT_CMD_QUEUE)
        self._thread = threading.Thread(target=self._run, name="alert-cmd", daemon=True)
        self._thread.start()

    def submit(self, a: Alert) -> None:
        try:
            self._q.put_nowait(json.dumps(alert_dict(a), ensure_ascii=False).encode() + b"\n")
        except queue.Full:
            self.dropped += 1

    def _run(self) -> None:
        while True:
            data = self._q.get()
            if data is None:
                return
            self._once(data)

    def _once(self, data: bytes) -> None:
        try:
            done = subprocess.run(
                self.argv,
                input=data,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                timeout=self.timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired:  # run() has killed and reaped it
            self.failed += 1
            self.errors.put(f"--alert-cmd: killed after {self.timeout_s:g} s")
            return
        except OSError as exc:
            self.failed += 1
            self.errors.put(f"--alert-cmd: cannot run {self.argv[0]}: {exc.strerror or exc}")
            return
        self.ran += 1
        if done.returncode:
            self.failed += 1
            last = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
            self.errors.put(f"--alert-cmd: exit code {done.returncode} {last[0]}".rstrip())

    def close(self) -> None:
        """Stop: alerts not started yet are dropped (they are in the JSON lines and on
        stderr already) and counted; the one running gets its time limit, no more."""
        with contextlib.suppress(queue.Empty):
            while True:
                if self._q.get_nowait() is not None:
                    self.dropped += 1
        self._q.put(None)
        self._thread.join(timeout=self.timeout_s + 1.0)
