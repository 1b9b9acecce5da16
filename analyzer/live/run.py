"""The live run: inputs started, the main loop, and an orderly end on every path.

Threads: tcpdump's pipe reader and the HEP listener only read and queue
(:mod:`analyzer.live.events`); everything else (decoding, the call store, diagnosis,
every output) runs here, on the main thread, so the sans-I/O core needs no locks.

The end (a signal, ``--duration``, ``--count``, or an input failing): the HEP listener
closes, tcpdump gets SIGTERM and its pipe is read to the end, what was queued is
decoded, the calls that are due are reported, then every call still open (judged at
the current capture time: ``in_progress`` while its timers run), then files close.
tcpdump is reaped in a ``finally`` whatever happened.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from analyzer.capture.tshark import TsharkCapture, TsharkMessages, TsharkPacket, tshark_argv, tshark_listening
from analyzer.diagnose.verdict import CallReport
from analyzer.errors import CaptureOpenError, SipflowError
from analyzer.limits import DEFAULT_LIMITS, Limits
from analyzer.live.alerts import Alert, Alerts
from analyzer.live.engine import LiveEngine
from analyzer.live.events import QUEUE_SIZE, Done, Event, Frame
from analyzer.live.hep import DEFAULT_MAX_SIZE, DEFAULT_RATE, HepListener
from analyzer.live.metrics import MetricsPage, MetricsServer
from analyzer.live.output import AlertCommand, JsonlWriter, alert_line, call_line, redact_alert
from analyzer.live.pcapwriter import RedactingPcap, RotatingPcap
from analyzer.live.stats import PeerWindow, metrics_text, summary_line
from analyzer.live.tcpdump import TcpdumpCapture, default_filter, tcpdump_argv
from analyzer.live.view import LiveView, ViewState
from analyzer.live.window import Rolling
from analyzer.report.calls import redact_report
from analyzer.report.kpi import Kpis
from analyzer.sip.message import SipMessage
from analyzer.sip.redact import Redaction

if TYPE_CHECKING:
    from analyzer.live.reportdir import ReportDir

_NS = 1_000_000_000
TICK_NS = _NS
KPI_REFRESH_NS = 10 * _NS
DRAIN_S = 5.0


@dataclass(frozen=True, slots=True)
class LiveConfig:
    iface: str | None = None
    bpf: str | None = None
    tcpdump: str = "tcpdump"
    engine: str = "native"
    """``tshark``: -i is read by tshark (:mod:`analyzer.capture.tshark`), not tcpdump + our decoder."""
    tshark: str = "tshark"
    tls_keylog: Path | None = None
    hep: tuple[str, int] | None = None
    hep_key: str | None = None
    hep_max_size: int = DEFAULT_MAX_SIZE
    hep_rate: float = DEFAULT_RATE
    jsonl: Path | None = None
    kinds: frozenset[str] = frozenset()
    """Kinds written to --jsonl and summarised (empty: all); KPIs always see every report."""
    duration_s: float | None = None
    count: int | None = None
    window_s: float = 900.0
    max_open: int = 200_000
    alerts: bool = True
    alert_cmd: str | None = None
    prometheus: tuple[str, int] | None = None
    report_dir: Path | None = None
    report_every_s: float = 300.0
    pcap_dir: Path | None = None
    pcap_size: int = 100 * 1024 * 1024
    pcap_files: int = 10
    redaction: Redaction | None = None
    """``--redact``: headers masked in every output; with it, --write-pcap frames are masked
    too (without it they are kept as captured)."""
    limits: Limits = DEFAULT_LIMITS
    """``--limit``: what the decoder may hold (:class:`analyzer.limits.Limits`)."""


@dataclass(slots=True)
class Outputs:
    """Where the run speaks: ``say`` gets status lines (always), ``call_lines`` whether
    one line per call goes there too, ``view`` the terminal view when there is one."""

    say: Callable[[str], None]
    call_lines: bool = True
    view: LiveView | None = None


@dataclass(slots=True)
class LiveSummary:
    frames: int = 0
    sip_messages: int = 0
    reported: Counter[str] = field(default_factory=Counter)
    written: int = 0
    alerts: int = 0
    evicted: int = 0
    error: str = ""


class LiveRun:
    def __init__(self, cfg: LiveConfig, out: Outputs, stop: threading.Event) -> None:
        self.cfg = cfg
        self.out = out
        self.stop = stop
        self.q: queue.Queue[Event] = queue.Queue(maxsize=QUEUE_SIZE)
        self.abandon = threading.Event()
        self.alerts = Alerts() if cfg.alerts else None
        watch = self.alerts is not None or cfg.redaction is not None
        self.engine = LiveEngine(max_open=cfg.max_open, on_message=self._message if watch else None, limits=cfg.limits)
        self.rolling = Rolling(window_s=cfg.window_s, full=cfg.report_dir is not None)
        self.peers = PeerWindow(window_s=cfg.window_s)
        self.summary = LiveSummary()
        self.tcpdump: TcpdumpCapture | None = None
        """tcpdump, or tshark with --engine tshark (a TsharkCapture)."""
        self.tshark_messages = TsharkMessages(self.engine.decoder.stats)
        self.hep: HepListener | None = None
        self.jsonl: JsonlWriter | None = None
        self.alert_cmd: AlertCommand | None = None
        self.page = MetricsPage()
        self.metrics: MetricsServer | None = None
        self.report_dir: ReportDir | None = None
        self.pcap: RotatingPcap | None = None
        self.held: RedactingPcap | None = None
        self._fresh: list[SipMessage] = []
        """Messages read from the current event (for ``held``)."""
        self._secrets: dict[str, set[str]] = {}
        """Masked values seen per Call-ID, until the call is reported (--redact HEADER)."""
        self.open_sources: set[str] = set()
        self.listening = False
        self.started_mono = time.monotonic_ns()
        self._next_report_ns = 0
        self._kpis: tuple[int, int, Kpis] | None = None
        self._hurry = threading.Event()

    def hurry(self) -> None:
        """A second Ctrl-C: stop reading what the inputs still hold (signal-handler safe)."""
        self._hurry.set()

    # -- the run ---------------------------------------------------------------------
    def run(self) -> LiveSummary:
        try:
            self._open()
            self._loop()
            self._drain()
            self._finish()
        finally:
            self._close()
        if self.summary.error:
            raise (CaptureOpenError if not self.listening else SipflowError)(self.summary.error)
        return self.summary

    def _open(self) -> None:
        cfg = self.cfg
        # Everything that can fail on a bad option first, tcpdump before any thread starts.
        if cfg.jsonl is not None:
            self.jsonl = JsonlWriter(cfg.jsonl)
        if cfg.prometheus is not None:
            self.metrics = MetricsServer(*cfg.prometheus, self.page)
        if cfg.report_dir is not None:
            from analyzer.live.reportdir import ReportDir  # pandas: imported only when asked for

            self.report_dir = ReportDir(cfg.report_dir)
            self._next_report_ns = self.started_mono + int(cfg.report_every_s * _NS)
        if cfg.pcap_dir is not None:
            self.pcap = RotatingPcap(cfg.pcap_dir, cfg.pcap_size, cfg.pcap_files)
            if cfg.redaction is not None:
                self.held = RedactingPcap(self.pcap, cfg.redaction)
        if cfg.hep is not None:
            self.hep = HepListener(*cfg.hep, self.q, key=cfg.hep_key, max_size=cfg.hep_max_size, rate=cfg.hep_rate)
            self.hep.bind()
        if cfg.iface is not None:
            bpf = cfg.bpf if cfg.bpf is not None else default_filter(cfg.iface)
            if cfg.engine == "tshark":
                argv = tshark_argv(cfg.tshark, iface=cfg.iface, bpf=bpf, keylog=cfg.tls_keylog)
                self.tcpdump = TsharkCapture(argv, self.q, self.abandon)
            else:
                self.tcpdump = TcpdumpCapture(tcpdump_argv(cfg.tcpdump, cfg.iface, bpf), self.q, self.abandon)
            self.tcpdump.start()
            self.open_sources.add(cfg.engine if cfg.engine == "tshark" else "tcpdump")
        if self.hep is not None:
            self.hep.start()
            self.open_sources.add("hep")
            self.out.say(f"sipflow: HEP on udp+tcp {self.hep.host}:{self.hep.port}")
        if self.metrics is not None:
            self.metrics.start()
            self.out.say(f"sipflow: metrics on http://{self.metrics.host}:{self.metrics.port}/metrics")
        if cfg.alert_cmd is not None:
            self.alert_cmd = AlertCommand(cfg.alert_cmd)
        if self.out.view is not None:
            self.out.view.start()
        if self.tcpdump is None:
            self.listening = True

    def _loop(self) -> None:
        cfg = self.cfg
        deadline = self.started_mono + int(cfg.duration_s * _NS) if cfg.duration_s is not None else None
        next_tick = time.monotonic_ns() + TICK_NS
        get = self.q.get
        while not self.stop.is_set() and self.open_sources and not self.summary.error:
            if cfg.count is not None and self.engine.counters.frames >= cfg.count:
                break
            now = time.monotonic_ns()
            if deadline is not None and now >= deadline:
                break
            if now >= next_tick:
                self._tick(now)
                next_tick = now + TICK_NS
            try:
                self._event(get(timeout=0.25))
            except queue.Empty:
                self._status()

    def _drain(self) -> None:
        """Stop the inputs, then decode what they had already taken in."""
        if self.hep is not None:
            self.hep.stop()
            self.open_sources.discard("hep")
        if self.tcpdump is not None:
            self.tcpdump.terminate()
        until = time.monotonic() + DRAIN_S
        while self.open_sources and time.monotonic() < until and not self._hurry.is_set():
            try:
                self._event(self.q.get(timeout=0.25))
            except queue.Empty:
                continue
        while not self._hurry.is_set():
            try:
                self._event(self.q.get_nowait())
            except queue.Empty:
                break
        self.abandon.set()

    def _finish(self) -> None:
        now = time.monotonic_ns()
        self._emit(self.engine.tick(now))
        self._emit(self.engine.finish(now))
        self._status()
        self._write_report(force=True)

    def _close(self) -> None:
        self.abandon.set()
        if self.tcpdump is not None:
            self.tcpdump.terminate()
            self.tcpdump.reap()
            self.tcpdump.join(timeout=2.0)
            self._status()
        if self.hep is not None:
            self.hep.stop()
        if self.out.view is not None:
            self.out.view.stop()
        if self.metrics is not None:
            self.metrics.stop()
        if self.alert_cmd is not None:
            self.alert_cmd.close()
            self._alert_errors()
        if self.held is not None:
            self.held.messages(self._fresh)
            self._fresh.clear()
            self.held.close()
            if self.held.dropped:
                self.out.say(
                    f"sipflow: --redact: {self.held.dropped} frame(s) not written to --write-pcap: "
                    "their SIP could not be masked in place"
                )
        if self.pcap is not None:
            self.pcap.close()
        if self.jsonl is not None:
            self.jsonl.close()
            self.summary.written = self.jsonl.lines
        st = self.engine.decoder.sync_stats()
        self.summary.frames = st.frames
        self.summary.sip_messages = st.sip_messages
        self.summary.evicted = self.engine.store.evicted
        self.out.say(summary_line(self))

    # -- events ----------------------------------------------------------------------
    def _event(self, ev: Event | TsharkPacket) -> None:
        mono = time.monotonic_ns()
        if isinstance(ev, Done):
            self._done(ev)
            return
        if self.cfg.count is not None and self.engine.counters.frames >= self.cfg.count:
            return  # --count: exactly that many, even of what was already queued
        if isinstance(ev, Frame):
            self.engine.frame(ev.ts_ns, ev.linktype, ev.data, mono)
            if self.held is not None:
                self.held.write(self.engine.counters.frames, ev.ts_ns, ev.linktype, ev.data)
                self.held.messages(self._fresh)
            elif self.pcap is not None:
                self.pcap.write(ev.ts_ns, ev.linktype, ev.data)
        elif isinstance(ev, TsharkPacket):
            # tshark decoded (and decrypted) it: its messages go where the decoder's would.
            self.engine.counters.frames += 1
            self.engine._messages(self.tshark_messages.feed(ev), ev.ts_ns, mono)
        else:
            self.engine.hep(ev.ts_ns, ev.data, mono)
        self._fresh.clear()

    def _done(self, ev: Done) -> None:
        self.open_sources.discard(ev.source)
        if ev.error and not self.summary.error:
            self._status()
            self.summary.error = ev.error

    def _message(self, msg: SipMessage) -> None:
        found: set[str] = set()
        red = self.cfg.redaction
        if red is not None:
            if self.held is not None:
                self._fresh.append(msg)
            if red.headers:
                found = red.secrets(msg)
                if found:
                    self._remember(msg.call_id, found)
        if self.alerts is not None:
            for a in self.alerts.message(msg):
                self._alert(a, found)

    def _remember(self, call_id: str, found: set[str]) -> None:
        """Keep a call's masked values until it is reported; bounded like the call store."""
        self._secrets.setdefault(call_id, set()).update(found)
        while len(self._secrets) > self.cfg.max_open:
            del self._secrets[next(iter(self._secrets))]

    def _tick(self, mono: int) -> None:
        self._emit(self.engine.tick(mono))
        self.rolling.trim(self.engine.clock.now(mono))
        self.peers.trim(self.engine.clock.now(mono))
        self._status()
        if self.metrics is not None:
            self.page.text = metrics_text(self)
        if self.out.view is not None:
            self.out.view.update(self.view_state(mono))
        self._write_report(force=False)

    def kpis(self, fresh: bool = False) -> Kpis:
        """The rolling KPIs. They cost a pass over every report in the window (0.2 s for a
        full 15-minute window at 50 calls/s), so they are worked out again only when the
        window changed, and at most every :data:`KPI_REFRESH_NS`."""
        now = time.monotonic_ns()
        cached = self._kpis
        stale = cached is not None and cached[0] != self.rolling.version
        if cached is None or (stale and (fresh or now - cached[1] >= KPI_REFRESH_NS)):
            cached = self._kpis = (self.rolling.version, now, self.rolling.kpis())
        return cached[2]

    def _status(self) -> None:
        if self.tcpdump is not None:
            name = "tshark" if isinstance(self.tcpdump, TsharkCapture) else "tcpdump"
            for line in self.tcpdump.lines():
                if line.startswith("listening on") or tshark_listening(line):
                    self.listening = True
                self.out.say(f"sipflow: {name}: {line}")
        self._alert_errors()

    def _alert_errors(self) -> None:
        if self.alert_cmd is not None:
            while not self.alert_cmd.errors.empty():
                self.out.say(f"sipflow: {self.alert_cmd.errors.get_nowait()}")

    # -- results ---------------------------------------------------------------------
    def _emit(self, reports: list[CallReport]) -> None:
        kinds = self.cfg.kinds
        red = self.cfg.redaction
        for r in reports:
            self.summary.reported[f"{r.kind}:{r.outcome}"] += 1
            found = self._secrets.pop(r.call_id, set())
            # Every output past this point (lines, JSON lines, the view, --report) shows ``shown``.
            shown = redact_report(r, red, found) if red is not None and red.headers else r
            self.rolling.add(shown)
            self.peers.add(shown)
            if not kinds or str(r.kind) in kinds:
                if self.jsonl is not None:
                    self.jsonl.call(shown)
                if self.out.call_lines:
                    self._line(call_line(shown))
            if self.alerts is not None:
                for a in self.alerts.report(r):
                    self._alert(a, found)

    def _alert(self, a: Alert, secrets: set[str] | None = None) -> None:
        if secrets:
            a = redact_alert(a, secrets)
        self.summary.alerts += 1
        if self.jsonl is not None:
            self.jsonl.alert(a)
        self._line(alert_line(a), always=True)
        if self.alert_cmd is not None:
            self.alert_cmd.submit(a)

    def _line(self, text: str, always: bool = False) -> None:
        if self.out.view is not None:
            self.out.view.print(text)
        elif self.out.call_lines or always:
            self.out.say(text)

    def _write_report(self, force: bool) -> None:
        if self.report_dir is None:
            return
        now = time.monotonic_ns()
        if not force and now < self._next_report_ns:
            return
        self._next_report_ns = now + int(self.cfg.report_every_s * _NS)
        # The window holds reports as every output shows them (masked under --redact, see _emit).
        self.report_dir.write(
            list(self.rolling.reports),
            self.kpis(fresh=force),
            self.cfg.window_s,
            source=self._sources(),
            decoded=self.engine.decoder.sync_stats(),
            malformed=self.engine.counters.malformed,
        )

    def _sources(self) -> str:
        """The inputs, as the page and the view name them."""
        hep = f"HEP {self.hep.host}:{self.hep.port}" if self.hep else ""
        return " + ".join(s for s in (f"-i {self.cfg.iface}" if self.cfg.iface else "", hep) if s)

    def view_state(self, mono: int) -> ViewState:
        st = self.engine.decoder.stats
        sources = " + ".join(
            s
            for s in (
                f"-i {self.cfg.iface}" if self.cfg.iface else "",
                f"HEP {self.hep.host}:{self.hep.port}" if self.hep else "",
            )
            if s
        )
        return ViewState(
            sources=sources,
            uptime_s=(mono - self.started_mono) / _NS,
            frames=st.frames,
            sip_messages=st.sip_messages,
            open_conversations=self.engine.open_conversations,
            reported=self.engine.counters.reported,
            evicted=self.engine.store.evicted,
            alerts=self.summary.alerts,
            dropped=dict(self.hep.dropped) if self.hep else {},
            window_s=self.cfg.window_s,
            kpis=self.kpis(),
            recent_failed=tuple(self.rolling.failed),
            peers=tuple(self.peers.rows(mono)),
        )
