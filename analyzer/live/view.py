"""The live terminal view (rich, on stderr, only when stderr is a terminal; off with --quiet).

:func:`render` is pure: a :class:`ViewState` in, a renderable out (tests print it on a
fixed-width console). :class:`LiveView` redraws it once a second; one-line call
summaries and alerts scroll above it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.text import Text

from analyzer.diagnose.verdict import CallReport
from analyzer.live.metrics import PeerRow
from analyzer.live.stats import OTHER
from analyzer.report.columns import iso_time
from analyzer.report.kpi import Kpis
from analyzer.report.terminal import PlainTable

MAX_PEER_ROWS = 8
"""Peers shown (busiest first, ``other`` last); the metrics name up to 20."""


@dataclass(frozen=True, slots=True)
class ViewState:
    sources: str
    uptime_s: float
    frames: int
    sip_messages: int
    open_conversations: int
    reported: int
    evicted: int
    alerts: int
    dropped: Mapping[str, int]
    window_s: float
    kpis: Kpis
    recent_failed: tuple[CallReport, ...]
    peers: tuple[PeerRow, ...] = ()
    """Per-peer KPIs of the window (analyzer.live.stats.peer_rows)."""


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}%"


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f} ms"


def _clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def render(st: ViewState) -> RenderableType:
    head = Text.assemble(
        ("sipflow live ", "bold"),
        f"{st.sources}  up {_clock(st.uptime_s)}  {st.frames} frames  {st.sip_messages} SIP  ",
        (f"{st.open_conversations} in progress", "bold cyan"),
        f"  {st.reported} reported  {st.evicted} evicted  {st.alerts} alerts",
    )
    if st.dropped:
        head.append("  dropped " + ", ".join(f"{k} {v}" for k, v in sorted(st.dropped.items())), style="yellow")
    k = st.kpis
    kpi = PlainTable(title=f"last {st.window_s / 60:g} min", title_justify="left", box=None, pad_edge=False)
    for name in ("calls", "answered", "failed", "ASR", "NER", "SEER", "ISA", "PDD p50", "PDD p95", "ACD", "regs"):
        kpi.add_column(name, justify="right")
    kpi.add_row(
        str(k.attempts),
        str(k.answered),
        str(k.failed),
        _pct(k.asr),
        _pct(k.ner),
        _pct(k.seer),
        _pct(k.isa),
        _ms(k.pdd_median_ms),
        _ms(k.pdd_p95_ms),
        "-" if k.acd_s is None else f"{k.acd_s:.1f} s",
        str(k.registrations),
    )
    failed = PlainTable(title="recent failed calls", title_justify="left", box=None, pad_edge=False)
    for name in ("end", "caller", "callee", "outcome", "breaking response", "rule", "hop"):
        failed.add_column(name, overflow="ellipsis", no_wrap=True)
    for r in reversed(st.recent_failed):
        b = r.breaking
        what = "" if b is None else (f"{b.code} {b.reason}".strip() if b.code else f"{b.method} unanswered")
        failed.add_row(
            iso_time(r.end_ns)[11:19],
            r.caller or r.caller_addr,
            r.callee or r.callee_addr,
            str(r.outcome),
            what,
            b.rule if b else "",
            b.hop if b else "",
        )
    return Group(head, kpi, failed, _peers(st.peers))


def _peers(rows: tuple[PeerRow, ...]) -> PlainTable:
    """The window's calls per peer (the next hop of the caller, as in `analyze`'s summary)."""
    t = PlainTable(title="per peer (next hop of the caller)", title_justify="left", box=None, pad_edge=False)
    for name in ("peer", "calls", "ASR", "NER", "top failure"):
        t.add_column(name, justify="left" if name in ("peer", "top failure") else "right", no_wrap=True)
    shown = list(rows[:MAX_PEER_ROWS])
    if len(rows) > MAX_PEER_ROWS and rows[-1].peer == OTHER:
        shown[-1] = rows[-1]  # keep ``other`` in sight: busy peers past the first few are in it too
    for row in shown:
        k = row.kpis
        t.add_row(row.peer, str(k.attempts), _pct(k.asr), _pct(k.ner), row.top_failure or "-")
    return t


class LiveView:
    """rich.Live on a stderr console, redrawn by the caller (no refresh thread)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._live = Live(console=console, auto_refresh=False, transient=True, redirect_stdout=False)

    def start(self) -> None:
        self._live.start()

    def update(self, state: ViewState) -> None:
        self._live.update(render(state), refresh=True)

    def print(self, line: str) -> None:
        self.console.print(line, markup=False, highlight=False, soft_wrap=True)

    def stop(self) -> None:
        self._live.stop()
