"""The run's numbers, as Prometheus metrics and as the closing summary line; and the calls
of the rolling window per peer (the view's and the metrics' per-peer rows)."""

from __future__ import annotations

import dataclasses
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from analyzer.correlate.model import Kind, Outcome
from analyzer.diagnose.verdict import CallReport
from analyzer.live.metrics import Metric, PeerRow, counter, gauge, kpi_metrics, labelled, peer_metrics, render
from analyzer.live.window import slim
from analyzer.report.kpi import by_peer

if TYPE_CHECKING:
    from analyzer.live.run import LiveRun

_NS = 1_000_000_000
MAX_PEERS = 20
"""Peers named in the view and the metrics: the busiest by attempts; the rest are one row,
``other``, so a scan from thousands of addresses cannot grow the metrics without bound."""
OTHER = "other"
PEER_REFRESH_NS = 10 * _NS


def failure_label(r: CallReport) -> str:
    """What broke a failed call, for "top failure": its final code, else its outcome (timeout …)."""
    return str(r.final_code) if r.final_code else str(r.outcome)


def failure_class(r: CallReport) -> str:
    """``4xx``/``5xx``/``6xx`` by the final code; ``none`` for a failure without one (a timeout)."""
    return f"{r.final_code // 100}xx" if r.final_code else "none"


def peer_rows(calls: Iterable[CallReport], peer: Callable[[CallReport], str], limit: int = MAX_PEERS) -> list[PeerRow]:
    """Per-peer KPIs of finished calls, busiest first: the top ``limit`` peers, then ``other``."""
    done = [r for r in calls if r.kind is Kind.CALL and r.outcome is not Outcome.IN_PROGRESS]
    attempts = Counter(peer(r) for r in done)
    top = {name for name, _ in sorted(attempts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]}

    def bounded(r: CallReport) -> str:
        name = peer(r)
        return name if name in top else OTHER

    failures: dict[str, Counter[str]] = {}
    classes: dict[str, Counter[str]] = {}
    for r in done:
        if r.breaking is not None:
            name = bounded(r)
            failures.setdefault(name, Counter())[failure_label(r)] += 1
            classes.setdefault(name, Counter())[failure_class(r)] += 1
    rows = [
        PeerRow(
            name,
            k,
            _top(failures.get(name, Counter())),
            dict(sorted(classes.get(name, Counter()).items())),
        )
        for name, k in by_peer(done, bounded).items()
    ]
    # Busiest first, ``other`` last whatever its size.
    return sorted(rows, key=lambda row: (row.peer == OTHER, -row.kpis.attempts, row.peer))


def _top(counts: Counter[str]) -> str:
    if not counts:
        return ""
    label, n = min(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return f"{label} ({n})"


@dataclass(slots=True)
class PeerWindow:
    """The calls of the rolling window with their peer: :class:`~analyzer.live.window.Rolling`
    slims reports down to what the KPIs read, and the peer is not part of that."""

    window_s: float = 900.0
    max_reports: int = 100_000
    calls: deque[CallReport] = field(default_factory=deque)
    version: int = 0
    _cache: tuple[int, int, list[PeerRow]] | None = None

    def add(self, r: CallReport) -> None:
        if r.kind is not Kind.CALL:
            return
        self.calls.append(dataclasses.replace(slim(r), callee_addr=r.callee_addr))
        self.version += 1
        self.trim(r.end_ns)

    def trim(self, now_ns: int) -> None:
        oldest = now_ns - int(self.window_s * _NS)
        while self.calls and (self.calls[0].end_ns < oldest or len(self.calls) > self.max_reports):
            self.calls.popleft()
            self.version += 1

    def rows(self, mono_ns: int) -> list[PeerRow]:
        """The rows, worked out again only when the window changed, at most every 10 s."""
        cached = self._cache
        if cached is None or (cached[0] != self.version and mono_ns - cached[1] >= PEER_REFRESH_NS):
            # report.terminal names peers for `analyze` too; imported here, when first needed.
            from analyzer.report.terminal import peer_namer

            cached = self._cache = (self.version, mono_ns, peer_rows(self.calls, peer_namer({})))
        return cached[2]


def metrics(run: LiveRun) -> list[Metric]:
    eng = run.engine
    st = eng.decoder.stats
    skipped = {k: float(v) for k, v in st.frames_by_reason.items() if k != "sip"}
    outcomes = Counter({k: float(v) for k, v in run.summary.reported.items()})
    out = [
        counter("sipflow_frames_total", "Frames and HEP packets decoded.", st.frames),
        counter("sipflow_bytes_total", "Bytes of the frames and HEP packets decoded.", st.bytes),
        counter("sipflow_sip_messages_total", "SIP messages decoded.", st.sip_messages),
        counter(
            "sipflow_malformed_total", "Bytes that started like SIP but were not a SIP message.", eng.counters.malformed
        ),
        labelled("sipflow_frames_skipped_total", "counter", "Frames without SIP, by reason.", "reason", skipped),
        labelled(
            "sipflow_conversations_total", "counter", "Conversations reported, by kind:outcome.", "outcome", outcomes
        ),
        gauge("sipflow_conversations_open", "Conversations in progress (in the call store).", eng.open_conversations),
        counter(
            "sipflow_conversations_evicted_total",
            "Open conversations reported early because the store was full (--max-open).",
            eng.store.evicted,
        ),
        counter(
            "sipflow_conversations_split_total",
            "Conversations reported early because they never went quiet.",
            eng.counters.split,
        ),
        counter("sipflow_retransmissions_total", "SIP retransmissions seen.", eng.store.retransmissions),
        counter("sipflow_alerts_total", "Alerts raised.", run.summary.alerts),
    ]
    if run.hep is not None:
        out += [
            counter("sipflow_hep_received_total", "HEP packets received.", run.hep.received),
            labelled(
                "sipflow_hep_dropped_total",
                "counter",
                "HEP packets refused, by reason.",
                "reason",
                {k: float(v) for k, v in run.hep.dropped.items()},
            ),
        ]
    if run.alerts is not None:
        raised = {k: float(v) for k, v in run.alerts.raised.items()}
        out.append(labelled("sipflow_alerts_by_kind_total", "counter", "Alerts raised, by kind.", "kind", raised))
    return out + kpi_metrics(run.kpis(), run.cfg.window_s) + peer_metrics(run.peers.rows(time.monotonic_ns()))


def metrics_text(run: LiveRun) -> str:
    return render(metrics(run))


def summary_line(run: LiveRun) -> str:
    s = run.summary
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(s.reported.items())) or "none"
    parts = [
        f"sipflow: live: {s.frames} frames, {s.sip_messages} SIP messages, "
        f"{sum(s.reported.values())} conversations reported ({outcomes})",
        f"{s.evicted} evicted",
        f"{s.alerts} alerts",
    ]
    if run.jsonl is not None:
        parts.append(f"{s.written} lines written to {run.jsonl.path}")
    tcpdump = run.tcpdump
    if tcpdump is not None and tcpdump.stats.captured is not None:
        parts.append(
            f"tcpdump: {tcpdump.stats.captured} captured, {tcpdump.stats.dropped_by_kernel or 0} dropped by kernel"
        )
    if run.hep is not None:
        dropped = ", ".join(f"{k} {v}" for k, v in sorted(run.hep.dropped.items())) or "none dropped"
        parts.append(f"HEP: {run.hep.received} received, {dropped}")
    if run.alert_cmd is not None and run.alert_cmd.dropped:
        parts.append(f"--alert-cmd: {run.alert_cmd.dropped} not run")
    return "; ".join(parts)
