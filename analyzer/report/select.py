"""Choosing calls: the filters of ``sipflow analyze`` and ``--fail-on`` conditions."""

from __future__ import annotations

import ipaddress
import operator
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from analyzer.analysis import Analysis
from analyzer.correlate.model import Kind, Outcome
from analyzer.diagnose.security import RULES, SEVERITIES, SecurityFinding
from analyzer.diagnose.verdict import CallReport
from analyzer.errors import UsageError
from analyzer.report.kpi import Kpis, kpis


@dataclass(frozen=True, slots=True)
class Filters:
    call_ids: tuple[str, ...] = ()
    numbers: tuple[str, ...] = ()
    ips: tuple[str, ...] = ()
    outcomes: tuple[str, ...] = ()
    codes: tuple[int, ...] = ()
    kinds: tuple[str, ...] = ()
    since_ns: int | None = None
    until_ns: int | None = None

    @property
    def empty(self) -> bool:
        return self == Filters()


def build_filters(
    *,
    call_id: tuple[str, ...] = (),
    number: tuple[str, ...] = (),
    ip: tuple[str, ...] = (),
    outcome: tuple[str, ...] = (),
    code: tuple[int, ...] = (),
    kind: tuple[str, ...] = (),
    since: str | None = None,
    until: str | None = None,
) -> Filters:
    """Filters from the CLI's option values (times as ISO 8601 text)."""
    return Filters(
        call_ids=call_id,
        numbers=number,
        ips=tuple(_address(a) for a in ip),
        outcomes=outcome,
        codes=code,
        kinds=kind,
        since_ns=parse_time(since) if since else None,
        until_ns=parse_time(until) if until else None,
    )


def _address(text: str) -> str:
    """An ``--ip`` value as the analysis writes addresses (2001:db8::1, not 2001:DB8:0::1)."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise UsageError(f"--ip {text!r}: not an IP address (give the address alone: no port, no network)") from None


def parse_time(text: str) -> int:
    """ISO 8601 date/time (UTC when no offset is given) to ns since the epoch."""
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"{text!r} is not an ISO 8601 time (e.g. 2024-05-01T10:00:00)") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1_000_000) * 1000


def _user(addr: str) -> str:
    return addr.split("@", 1)[0]


def matches(r: CallReport, f: Filters) -> bool:
    """True when the report passes every filter given (each filter: any of its values)."""
    if f.call_ids and r.call_id not in f.call_ids:
        return False
    if f.kinds and str(r.kind) not in f.kinds:
        return False
    if f.outcomes and str(r.outcome) not in f.outcomes:
        return False
    if f.since_ns is not None and r.start_ns < f.since_ns:
        return False
    if f.until_ns is not None and r.start_ns > f.until_ns:
        return False
    if f.numbers:
        users = (_user(r.caller), _user(r.callee), r.request_user)
        if not any(n in u for n in f.numbers for u in users if u):
            return False
    if f.ips and not r.addresses.intersection(f.ips):
        return False
    return not (f.codes and not r.codes.intersection(f.codes))


def select(a: Analysis, f: Filters) -> list[CallReport]:
    return a.calls if f.empty else [r for r in a.calls if matches(r, f)]


# -- --fail-on ------------------------------------------------------------------------------
_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "!=": operator.ne,
    "<": operator.lt,
    ">": operator.gt,
    "=": operator.eq,
}
_EXPR = re.compile(r"^\s*([a-z_0-9]+)\s*(<=|>=|!=|<|>|=)\s*(\S+)\s*$")
_RATIOS = ("asr", "ner", "ser", "seer", "isa", "scr", "ira")
OUTCOMES = tuple(o.value for o in Outcome)
KINDS = tuple(k.value for k in Kind)
_NUMBERS = ("attempts", "answered", "failed", "acd_s", "pdd_median_ms", "pdd_p95_ms", "sdd_median_ms", "rrd_median_ms")


def check_expression(expr: str) -> None:
    """Raise UsageError for an expression ``fail_on`` cannot evaluate."""
    if expr.strip() == "security":
        return
    m = _EXPR.match(expr)
    if m is None:
        raise UsageError(f"--fail-on {expr!r}: expected NAME OP VALUE, e.g. 'asr<0.8' or 'outcome=auth_failed'")
    name, op, value = m.groups()
    if name in ("outcome", "kind", "rule"):
        if op not in ("=", "!="):
            raise UsageError(f"--fail-on {expr!r}: {name} takes = or !=")
        words = {"outcome": OUTCOMES, "kind": KINDS}.get(name)
        if words is not None and value not in words:
            raise UsageError(f"--fail-on {expr!r}: no {name} {value!r} (one of: {', '.join(words)})")
        return
    if name == "security" and value in (*SEVERITIES, *RULES):
        if op != "=" and not (op == ">=" and value in SEVERITIES):
            raise UsageError(f"--fail-on {expr!r}: security takes =RULE, =SEVERITY, >=SEVERITY or a count")
        return
    if name not in (*_RATIOS, *_NUMBERS, "code", "security"):
        known = ", ".join((*_RATIOS, *_NUMBERS, "code", "outcome", "kind", "rule", "security"))
        raise UsageError(f"--fail-on {expr!r}: unknown name {name!r} (one of: {known})")
    try:
        number = float(value)
    except ValueError:
        raise UsageError(f"--fail-on {expr!r}: {value!r} is not a number") from None
    if name in _RATIOS and not 0 <= number <= 1:
        raise UsageError(f"--fail-on {expr!r}: {name} is a fraction from 0 to 1 here (0.8 for 80 %)")


def fail_on(
    expr: str, reports: Iterable[CallReport], security: Sequence[SecurityFinding] = (), k: Kpis | None = None
) -> bool:
    """Whether ``expr`` holds for these calls (and the capture's security findings).

    Ratios (asr, ner, ser, seer, isa, scr, ira) are fractions from 0 to 1 here
    (``asr<0.8``); a ratio with no calls to compute it never holds. ``outcome``,
    ``kind``, ``rule`` and ``code`` hold when any call has that value. ``security`` alone
    holds when there is any security finding; ``security=toll_fraud`` when one of that rule,
    ``security>=medium`` when one that severe; ``security>2`` compares their number.
    ``k``: the calls' KPIs, when the caller has them already.
    """
    check_expression(expr)
    if expr.strip() == "security":
        return bool(security)
    m = _EXPR.match(expr)
    assert m is not None
    name, op, value = m.groups()
    if name == "security":
        return _security_holds(op, value, security)
    rs = list(reports)
    if name in ("outcome", "kind", "rule"):
        present = {_field(r, name) for r in rs}
        return (value in present) if op == "=" else any(v != value for v in present)
    if name == "code":
        codes = {c for r in rs for c in (r.final_code, r.breaking.code if r.breaking else None) if c is not None}
        return any(_OPS[op](c, float(value)) for c in codes)
    actual = getattr(k if k is not None else kpis(rs), name)
    if actual is None:
        return False
    if name in _RATIOS:
        actual = actual / 100.0
    return _OPS[op](float(actual), float(value))


def undefined(expr: str, k: Kpis) -> bool:
    """Whether ``expr`` names a KPI the calls (their KPIs ``k``) give no value (``asr`` with no
    call attempt): it cannot hold, which a CI gate should hear about."""
    m = _EXPR.match(expr)
    return m is not None and m.group(1) in (*_RATIOS, *_NUMBERS) and getattr(k, m.group(1)) is None


def _security_holds(op: str, value: str, findings: Sequence[SecurityFinding]) -> bool:
    if value in SEVERITIES:
        want = SEVERITIES.index(value)
        return any(
            SEVERITIES.index(f.severity) == want or (op == ">=" and SEVERITIES.index(f.severity) > want)
            for f in findings
        )
    if value in RULES:
        return any(f.rule == value for f in findings)
    return _OPS[op](float(len(findings)), float(value))


def _field(r: CallReport, name: str) -> str:
    if name == "rule":
        return r.breaking.rule if r.breaking else ""
    return str(getattr(r, name))
