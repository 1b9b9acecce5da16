"""The terminal summary of an analysis (people read this first)."""

from __future__ import annotations

from collections import Counter
from typing import TextIO

from rich.console import Console
from rich.table import Table

from analyzer.analysis import Analysis
from analyzer.report.columns import iso_time


def write_summary(out: TextIO, a: Analysis, width: int | None = None) -> None:
    console = Console(file=out, width=width or 140, highlight=False, soft_wrap=False)
    st = a.stats
    span = ""
    if st.first_ts_ns is not None and st.last_ts_ns is not None:
        span = f"{iso_time(st.first_ts_ns)} .. {iso_time(st.last_ts_ns)}"
    console.print(
        f"[bold]{a.path}[/bold]: {st.frames} packets, {st.sip_messages} SIP messages, "
        f"{len(a.calls)} conversations  {span}"
    )
    outcomes = Counter((str(r.kind), str(r.outcome)) for r in a.calls)
    table = Table(title="Outcomes", show_edge=False)
    for col in ("kind", "outcome", "count"):
        table.add_column(col, justify="right" if col == "count" else "left")
    for (kind, outcome), n in sorted(outcomes.items()):
        table.add_row(kind, outcome, str(n))
    console.print(table)
    failed = [r for r in a.calls if r.breaking is not None]
    if not failed:
        console.print("No failed conversations.")
        return
    ft = Table(title=f"Failed ({len(failed)})", show_edge=False)
    for col in ("kind", "outcome", "call_id", "frame", "response", "rule", "why"):
        ft.add_column(col, overflow="fold")
    for r in failed:
        b = r.breaking
        assert b is not None
        resp = f"{b.code} {b.reason}" if b.code else f"{b.method} (no answer)"
        ft.add_row(str(r.kind), str(r.outcome), r.call_id, str(b.frame), resp, b.rule, b.explanation)
    console.print(ft)
