"""The terminal summary of an analysis: what fails, how often, from where, and why."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Mapping
from typing import TextIO

from rich.console import Console, RenderableType
from rich.style import StyleType
from rich.table import Table
from rich.text import Text

from analyzer.analysis import Analysis
from analyzer.correlate.model import Kind
from analyzer.diagnose.security import SecurityFinding
from analyzer.diagnose.verdict import CallReport
from analyzer.report.columns import iso_time
from analyzer.report.kpi import Kpis, by_peer, kpis

MAX_FAILED_ROWS = 50


class PlainTable(Table):
    """A rich table whose text cells are shown as they are, never read as rich's markup: they
    come from the wire, and a Call-ID or a reason phrase holding ``[/x]`` made rich raise."""

    def add_row(
        self, *renderables: RenderableType | None, style: StyleType | None = None, end_section: bool = False
    ) -> None:
        cells = [Text(r) if isinstance(r, str) else r for r in renderables]
        super().add_row(*cells, style=style, end_section=end_section)


def peer_namer(names: Mapping[str, str]) -> Callable[[CallReport], str]:
    """A report's peer: the next hop of its first request, named by ``names`` (ip:port or ip)."""

    def peer(r: CallReport) -> str:
        addr = r.callee_addr
        host = addr.rsplit(":", 1)[0].strip("[]") if addr else ""
        return names.get(addr) or names.get(host) or addr or "?"

    return peer


def _fmt(v: float | None, unit: str = "") -> str:
    return "-" if v is None else f"{v:g}{unit}"


def _ms(v: float | None) -> str:
    """A delay: in ms below 10 s (4.426 ms, 3553.3 ms), in seconds from there (35.6 s)."""
    return _fmt(v, " ms") if v is None or v < 10_000 else f"{v / 1000:.1f} s"


def _count(n: int, what: str) -> str:
    """``1,234 packets``, ``1 packet``."""
    return f"{n:,} {what}{'' if n == 1 else 's'}"


def _kpi_table(k: Kpis) -> Table:
    t = PlainTable(title="KPIs (RFC 6076, ITU-T E.411)", show_edge=False, title_justify="left")
    for col in (
        "attempts",
        "ASR",
        "NER",
        "SER",
        "SEER",
        "ISA",
        "SCR",
        "ACD",
        "PDD med",
        "PDD p95",
        "SDD med",
        "regs",
        "RRD med",
        "IRA",
    ):
        t.add_column(col, justify="right")
    t.add_row(
        f"{k.attempts:,}", _fmt(k.asr, "%"), _fmt(k.ner, "%"), _fmt(k.ser, "%"), _fmt(k.seer, "%"), _fmt(k.isa, "%"),
        _fmt(k.scr, "%"), _fmt(k.acd_s, " s"), _ms(k.pdd_median_ms), _ms(k.pdd_p95_ms),
        _ms(k.sdd_median_ms), f"{k.registrations:,}", _ms(k.rrd_median_ms), _fmt(k.ira, "%"),
    )  # fmt: skip
    return t


def _outcomes(reports: list[CallReport]) -> Table:
    t = PlainTable(title="Outcomes", show_edge=False, title_justify="left")
    for col in ("kind", "outcome", "count", "share"):
        t.add_column(col, justify="right" if col in ("count", "share") else "left")
    counts = Counter((str(r.kind), str(r.outcome)) for r in reports)
    per_kind = Counter(str(r.kind) for r in reports)
    for (kind, outcome), n in sorted(counts.items()):
        t.add_row(kind, outcome, f"{n:,}", f"{100 * n / per_kind[kind]:.1f}%")
    return t


def _causes(reports: list[CallReport]) -> Table | None:
    failed = [r for r in reports if r.breaking is not None]
    if not failed:
        return None
    t = PlainTable(title="Top failure causes", show_edge=False, title_justify="left")
    for col in ("rule", "code", "count", "share", "example Call-ID"):
        t.add_column(col, justify="right" if col in ("count", "share", "code") else "left", overflow="fold")
    groups: dict[tuple[str, str], list[CallReport]] = {}
    for r in failed:
        assert r.breaking is not None
        code = str(r.breaking.code) if r.breaking.code else r.breaking.method
        groups.setdefault((r.breaking.rule, code), []).append(r)
    for (rule, code), rs in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        t.add_row(rule, code, str(len(rs)), f"{100 * len(rs) / len(failed):.1f}%", rs[0].call_id)
    return t


def _peers(reports: list[CallReport], namer: Callable[[CallReport], str]) -> Table | None:
    calls = [r for r in reports if r.kind is Kind.CALL]
    if not calls:
        return None
    t = PlainTable(title="Per peer (next hop of the caller)", show_edge=False, title_justify="left")
    for col in ("peer", "attempts", "answered", "ASR", "failed", "PDD med", "PDD p95"):
        t.add_column(col, justify="left" if col == "peer" else "right")
    for name, k in by_peer(calls, namer).items():
        t.add_row(name, f"{k.attempts:,}", f"{k.answered:,}", _fmt(k.asr, "%"), f"{k.failed:,}",
                  _ms(k.pdd_median_ms), _ms(k.pdd_p95_ms))  # fmt: skip
    return t


def _failed(reports: list[CallReport]) -> Table | None:
    failed = [r for r in reports if r.breaking is not None]
    if not failed:
        return None
    shown = failed[:MAX_FAILED_ROWS]
    more = (
        f" (first {len(shown)} of {len(failed)}; --format csv or --report for all)" if len(failed) > len(shown) else ""
    )
    t = PlainTable(title=f"Failed ({len(failed)}){more}", show_edge=False, title_justify="left", show_lines=True)
    for col in ("outcome", "call", "breaking response", "why"):
        t.add_column(col, overflow="fold", ratio=3 if col == "why" else 1)
    for r in shown:
        b = r.breaking
        assert b is not None
        resp = f"{b.code} {b.reason}" if b.code else f"{b.method} (no answer)"
        where = f"frame {b.frame}  {b.src} → {b.dst}" + (f"\nhop {b.hop}" if b.hop != "caller leg" else "")
        t.add_row(
            f"{r.kind}\n{r.outcome}",
            f"{r.call_id}\n{r.caller} → {r.callee}",
            f"{resp}\n{where}",
            f"[{b.rule}] {b.explanation}\nhint: {b.hint}",
        )
    return t


def _security(findings: list[SecurityFinding]) -> Table | None:
    if not findings:
        return None
    t = PlainTable(title=f"Security ({len(findings)})", show_edge=False, title_justify="left", show_lines=True)
    for col in ("severity", "rule", "source", "count", "what", "frames"):
        t.add_column(
            col, overflow="fold", justify="right" if col == "count" else "left", ratio=4 if col == "what" else None
        )
    for f in findings:
        span = iso_time(f.first_ns) if f.first_ns == f.last_ns else f"{iso_time(f.first_ns)} .. {iso_time(f.last_ns)}"
        t.add_row(
            f.severity,
            f.rule,
            f.src,
            str(f.count),
            f"{f.summary}\n{span}\nhint: {f.hint}",
            " ".join(str(n) for n in f.frames),
        )
    return t


def summary_view(r: CallReport, shown: bool) -> CallReport:
    """What the summary, the KPIs, the filters' results and ``--fail-on`` read of a report,
    for a streamed analysis that cannot keep every report whole: the frame list, findings
    and address sets go, and the breaking response's texts unless the call is ``shown``
    among the first :data:`MAX_FAILED_ROWS` failed ones."""
    slim = dataclasses.replace(r, frames=r.frames[:1], findings=(), addresses=frozenset())
    if shown:
        return slim
    b = r.breaking
    b = dataclasses.replace(b, explanation="", hint="") if b is not None else None
    return dataclasses.replace(slim, breaking=b, caller="", callee="")


class _Console(Console):
    """rich's Console, leaving a closed pipe to the command, as every other output does
    (:func:`analyzer.cli.quiet_on_closed_pipe`): rich's own handling exits 1."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError


def write_summary(
    out: TextIO,
    a: Analysis,
    reports: list[CallReport] | None = None,
    *,
    width: int | None = None,
    peer_names: Mapping[str, str] | None = None,
    total: int | None = None,
) -> None:
    """Everything an engineer reads first; ``reports`` is the filtered selection (default: all);
    ``total``: how many conversations there were, when ``a.calls`` does not hold them all."""
    rs = a.calls if reports is None else reports
    conversations = len(a.calls) if total is None else total
    console = _Console(file=out, width=width or 140, highlight=False, soft_wrap=False, emoji=False)
    st = a.stats
    span = ""
    if st.first_ts_ns is not None and st.last_ts_ns is not None:
        span = f"{iso_time(st.first_ts_ns)} .. {iso_time(st.last_ts_ns)}"
    selected = f" ({len(rs)} selected)" if reports is not None and len(rs) != conversations else ""
    console.print(Text(a.path, style="bold"))
    console.print(f"  {span}")
    console.print(
        f"  {_count(st.frames, 'packet')}, {_count(st.sip_messages, 'SIP message')}, "
        f"{_count(conversations, 'conversation')}{selected}, {len(st.malformed):,} malformed"
    )
    if a.copies:
        console.print(f"  {_count(a.copies, 'message')} seen at two capture points, counted once")
    if st.limits:
        hit = ", ".join(f"{name} {n}" for name, n in sorted(st.limits.items()))
        console.print(Text.assemble("  ", ("limits reached", "bold"), f" (--limit): {hit}"))
    security = _security(a.security)  # about the whole capture: filters do not apply
    if not rs:
        console.print("No conversations.")
        if security is not None:
            console.print()
            console.print(security)
        return
    console.print(_kpi_table(kpis(rs)))
    for table in (_outcomes(rs), _causes(rs), _peers(rs, peer_namer(peer_names or {})), _failed(rs)):
        if table is not None:
            console.print()
            console.print(table)
    if not any(r.breaking for r in rs):
        console.print("\nNo failed conversations.")
    if security is not None:
        console.print()
        console.print(security)
