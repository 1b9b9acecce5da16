"""Call KPIs per RFC 6076 and ITU-T E.411, overall and per peer.

Every ratio is a percentage over *session attempts*: one per call (a Call-ID's INVITE
dialog, auth retries included), as RFC 6076 §4 counts "INVITE requests" per session.

| KPI  | formula (over the calls in scope) |
|------|-----------------------------------|
| ASR  | answered / attempts × 100 (ITU-T E.411 answer-seizure ratio) |
| NER  | (answered + busy + no_answer + callee rejections 480/486/600/603) / attempts × 100 (E.411) |
| SER  | answered / (attempts − redirected) × 100 (RFC 6076 §4.6) |
| SEER | (answered + final 480/486/600/603) / (attempts − redirected) × 100 (RFC 6076 §4.7) |
| ISA  | final 408/500/503/504 or no final response / attempts × 100 (RFC 6076 §4.8) |
| SCR  | answered and ended by a normal BYE / attempts × 100 (RFC 6076 §4.9) |
| ACD  | mean duration_s of answered calls with a BYE |
| SRD/PDD | median and 95th percentile of pdd_ms (RFC 6076 §4.2) |
| SDD  | median disconnect_ms (RFC 6076 §4.5) |
| RRD  | median rrd_ms of registrations (RFC 6076 §4.1) |
| IRA  | registrations with 408/500/503/504 or no final / registrations × 100 (RFC 6076 §4.4) |

Calls still in progress at the end of the capture are left out of every ratio.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from analyzer.correlate.model import Kind, Outcome
from analyzer.diagnose.verdict import CallReport

_CALLEE_FINALS = frozenset({480, 486, 600, 603})
_INEFFECTIVE = frozenset({408, 500, 503, 504})


@dataclass(frozen=True, slots=True)
class Kpis:
    attempts: int
    answered: int
    failed: int
    asr: float | None
    ner: float | None
    ser: float | None
    seer: float | None
    isa: float | None
    scr: float | None
    acd_s: float | None
    pdd_median_ms: float | None
    pdd_p95_ms: float | None
    sdd_median_ms: float | None
    registrations: int
    rrd_median_ms: float | None
    ira: float | None


def _pct(num: int, den: int) -> float | None:
    return round(100.0 * num / den, 2) if den else None


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def _p95(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered) + 0.5) - 1)], 3)


def _ineffective(r: CallReport) -> bool:
    return r.final_code in _INEFFECTIVE or r.outcome is Outcome.TIMEOUT


def kpis(reports: Iterable[CallReport]) -> Kpis:
    rs = list(reports)
    calls = [r for r in rs if r.kind is Kind.CALL and r.outcome is not Outcome.IN_PROGRESS]
    regs = [r for r in rs if r.kind is Kind.REGISTRATION and r.outcome is not Outcome.IN_PROGRESS]
    n = len(calls)
    answered = [r for r in calls if r.outcome in (Outcome.ANSWERED, Outcome.DROPPED)]
    redirected = sum(1 for r in calls if r.outcome is Outcome.REDIRECTED)
    callee = sum(1 for r in calls if r.final_code in _CALLEE_FINALS)
    ner_ok = sum(1 for r in calls if r.outcome in (Outcome.BUSY, Outcome.NO_ANSWER) or r.final_code in _CALLEE_FINALS)
    completed = sum(1 for r in calls if r.outcome is Outcome.ANSWERED and r.timings.duration_s is not None)
    durations = [r.timings.duration_s for r in calls if r.timings.duration_s is not None]
    pdd = [r.timings.pdd_ms for r in calls if r.timings.pdd_ms is not None]
    sdd = [r.timings.disconnect_ms for r in calls if r.timings.disconnect_ms is not None]
    rrd = [r.timings.rrd_ms for r in regs if r.timings.rrd_ms is not None]
    return Kpis(
        attempts=n,
        answered=len(answered),
        failed=sum(1 for r in calls if r.breaking is not None),
        asr=_pct(len(answered), n),
        ner=_pct(len(answered) + ner_ok, n),
        ser=_pct(len(answered), n - redirected),
        seer=_pct(len(answered) + callee, n - redirected),
        isa=_pct(sum(1 for r in calls if _ineffective(r)), n),
        scr=_pct(completed, n),
        acd_s=round(statistics.mean(durations), 3) if durations else None,
        pdd_median_ms=_median(pdd),
        pdd_p95_ms=_p95(pdd),
        sdd_median_ms=_median(sdd),
        registrations=len(regs),
        rrd_median_ms=_median(rrd),
        ira=_pct(sum(1 for r in regs if _ineffective(r)), len(regs)),
    )


def by_peer(reports: Iterable[CallReport], peer: Callable[[CallReport], str]) -> dict[str, Kpis]:
    """KPIs per peer; ``peer`` names the peer of a report (an address or a trunk name)."""
    groups: dict[str, list[CallReport]] = {}
    for r in reports:
        groups.setdefault(peer(r), []).append(r)
    return {name: kpis(rs) for name, rs in sorted(groups.items())}
