"""Verdicts on sipflow's own rule captures: ``sample_pcaps/verdicts.json``, exact values.

Each ``sample_pcaps/rule_<name>.pcap`` was made by SIPp (and, where a proxy or registrar
belongs in the story, Kamailio) with ``sample_pcaps/generate.sh``, to show the failure one
diagnosis rule names. ``verdicts.json`` says, per Call-ID, what the analysis must find:
kind, outcome, final code, the breaking response's code and rule, and where given the
finding rules (as a multiset) and a substring of the breaking hop. Those values come from
what each scenario did, not from sipflow's output. A capture listed there but missing on
disk is a failure: regenerate it with ``sudo bash sample_pcaps/generate.sh rule_<name>``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from analyzer.analysis import analyze
from analyzer.diagnose.verdict import CallReport
from tests.oracle import SAMPLE_PCAPS

VERDICTS_FILE = SAMPLE_PCAPS / "verdicts.json"
REQUIRED_KEYS = frozenset({"call_id", "kind", "outcome", "final_code", "breaking_code", "breaking_rule"})
OPTIONAL_KEYS = frozenset({"finding_rules", "hop", "note"})
"""``note`` says in words what the scenario did; the test does not read it."""


@dataclass(frozen=True, slots=True)
class Expected:
    """What one conversation of one capture must get."""

    capture: str
    call_id: str
    kind: str
    outcome: str
    final_code: int | None
    breaking_code: int | None
    breaking_rule: str | None
    finding_rules: tuple[str, ...] | None
    """Sorted; ``None`` when the file does not say."""
    hop: str | None
    """A substring of ``breaking.hop``; ``None`` when the file does not say."""


def _optional_int(value: Any) -> int | None:
    if value is not None and not isinstance(value, int):
        raise TypeError(f"expected an int or null, got {value!r}")
    return value


def _optional_str(value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"expected a string or null, got {value!r}")
    return value


def _expected(capture: str, entry: dict[str, Any]) -> Expected:
    keys = set(entry)
    if not keys >= REQUIRED_KEYS or not keys <= REQUIRED_KEYS | OPTIONAL_KEYS:
        raise ValueError(f"{capture}: bad keys {sorted(keys)} in {VERDICTS_FILE.name}")
    findings = entry.get("finding_rules")
    return Expected(
        capture=capture,
        call_id=str(entry["call_id"]),
        kind=str(entry["kind"]),
        outcome=str(entry["outcome"]),
        final_code=_optional_int(entry["final_code"]),
        breaking_code=_optional_int(entry["breaking_code"]),
        breaking_rule=_optional_str(entry["breaking_rule"]),
        finding_rules=None if findings is None else tuple(sorted(str(f) for f in findings)),
        hop=_optional_str(entry.get("hop")),
    )


def load_verdicts(path: Path) -> Mapping[str, tuple[Expected, ...]]:
    """Capture file name → its conversations, in the file's order (read-only)."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    return MappingProxyType(
        {capture: tuple(_expected(capture, e) for e in entries) for capture, entries in raw.items()}
    )


VERDICTS = load_verdicts(VERDICTS_FILE)
ALL_EXPECTED = tuple(e for entries in VERDICTS.values() for e in entries)


class Reports:
    """The analysis of each capture, computed once per test session."""

    def __init__(self) -> None:
        self._by_capture: dict[str, dict[str, list[CallReport]]] = {}

    def of(self, capture: str) -> dict[str, list[CallReport]]:
        """Call-ID → reports; fails the test (never skips) when the capture is missing."""
        if capture not in self._by_capture:
            path = SAMPLE_PCAPS / capture
            if not path.is_file():
                stem = capture.removesuffix(".pcap")
                pytest.fail(f"{path} is missing: run sudo bash sample_pcaps/generate.sh {stem}")
            by_id: dict[str, list[CallReport]] = {}
            for report in analyze(path).calls:
                by_id.setdefault(report.call_id, []).append(report)
            self._by_capture[capture] = by_id
        return self._by_capture[capture]


@pytest.fixture(scope="session")
def reports() -> Reports:
    return Reports()


def _actual(report: CallReport, want: Expected) -> dict[str, Any]:
    """The report in the shape of ``want``, so a failure shows a field-by-field diff."""
    breaking = report.breaking
    got: dict[str, Any] = {
        "kind": str(report.kind),
        "outcome": str(report.outcome),
        "final_code": report.final_code,
        "breaking_code": breaking.code if breaking is not None else None,
        "breaking_rule": breaking.rule if breaking is not None else None,
    }
    if want.finding_rules is not None:
        got["finding_rules"] = tuple(sorted(f.rule for f in report.findings))
    if want.hop is not None:
        hop = breaking.hop if breaking is not None else None
        # Shown as the expected substring when it is contained, as the whole hop otherwise.
        got["hop"] = want.hop if hop is not None and want.hop in hop else hop
    return got


def _wanted(want: Expected) -> dict[str, Any]:
    out: dict[str, Any] = {
        "kind": want.kind,
        "outcome": want.outcome,
        "final_code": want.final_code,
        "breaking_code": want.breaking_code,
        "breaking_rule": want.breaking_rule,
    }
    if want.finding_rules is not None:
        out["finding_rules"] = want.finding_rules
    if want.hop is not None:
        out["hop"] = want.hop
    return out


def _rule_captures_on_disk() -> Iterator[str]:
    return (p.name for p in sorted(SAMPLE_PCAPS.glob("rule_*.pcap")))


def test_every_rule_capture_has_verdicts() -> None:
    assert sorted(_rule_captures_on_disk()) == sorted(c for c in VERDICTS if c.startswith("rule_"))


@pytest.mark.parametrize("capture", sorted(VERDICTS))
def test_capture_holds_exactly_the_listed_conversations(reports: Reports, capture: str) -> None:
    got = {call_id: len(found) for call_id, found in reports.of(capture).items()}
    assert got == dict.fromkeys((e.call_id for e in VERDICTS[capture]), 1)


@pytest.mark.parametrize("want", ALL_EXPECTED, ids=[f"{e.capture}:{e.call_id}" for e in ALL_EXPECTED])
def test_verdict(reports: Reports, want: Expected) -> None:
    found = reports.of(want.capture).get(want.call_id, [])
    assert len(found) == 1, f"{want.call_id}: {len(found)} conversations in {want.capture}, expected 1"
    assert _actual(found[0], want) == _wanted(want)
