"""The recent past: finished reports of the last few minutes, for rolling KPIs and the view.

A 15-minute window at 50 calls/s holds 45,000 reports, so it keeps them slim: only the
fields :func:`analyzer.report.kpi.kpis` reads (kind, outcome, final code, whether
something broke, timings, times); every other field is emptied. The last few failed
calls, shown in full by the view, are kept as they are; so is everything when the
window is also written out (``--report``: ``full=True``).
"""

from __future__ import annotations

import dataclasses
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from analyzer.correlate.model import Kind
from analyzer.diagnose.verdict import Breaking, CallReport
from analyzer.report.kpi import Kpis, kpis

_NS = 1_000_000_000
_KPI_FIELDS = frozenset({"kind", "outcome", "final_code", "breaking", "timings", "start_ns", "end_ns"})
# kpis() only asks whether a report has a breaking response: one shared stand-in will do.
_BROKE = Breaking(0, 0, None, "", "", 0, "", "", "", "", "", "")


def slim(r: CallReport) -> CallReport:
    """``r`` with what the KPIs do not read emptied (strings, tuples, sets, counts)."""
    empty: dict[str, Any] = {
        f.name: type(getattr(r, f.name))()
        for f in dataclasses.fields(r)
        if f.name not in _KPI_FIELDS and isinstance(getattr(r, f.name), str | tuple | frozenset | int)
    }
    return dataclasses.replace(r, breaking=_BROKE if r.breaking is not None else None, **empty)


@dataclass(slots=True)
class Rolling:
    """Reports that ended within ``window_s`` of the newest one (at most ``max_reports``),
    the last ``keep_failed`` failed calls, and counts since the start."""

    window_s: float = 900.0
    max_reports: int = 100_000
    keep_failed: int = 10
    full: bool = False
    """Keep whole reports (for --report), not just what the KPIs read."""
    reports: deque[CallReport] = field(default_factory=deque)
    failed: deque[CallReport] = field(init=False)
    totals: Counter[str] = field(default_factory=Counter)
    """``kind:outcome`` → conversations reported since the start."""
    version: int = 0
    """Changes whenever ``reports`` does."""

    def __post_init__(self) -> None:
        self.failed = deque(maxlen=self.keep_failed)

    def add(self, r: CallReport) -> None:
        self.totals[f"{r.kind}:{r.outcome}"] += 1
        self.version += 1
        self.reports.append(r if self.full else slim(r))
        if r.kind is Kind.CALL and r.breaking is not None:
            self.failed.append(r)
        self.trim(r.end_ns)

    def trim(self, now_ns: int) -> None:
        reports = self.reports
        oldest = now_ns - int(self.window_s * _NS)
        while reports and (reports[0].end_ns < oldest or len(reports) > self.max_reports):
            reports.popleft()
            self.version += 1

    def kpis(self) -> Kpis:
        return kpis(self.reports)
