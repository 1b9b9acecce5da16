"""Call reports as the JSON contract, JSON lines, CSV rows and a DataFrame."""

from __future__ import annotations

import csv
import dataclasses
import json
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import IO, TYPE_CHECKING, Any

from analyzer.diagnose.security import SecurityFinding
from analyzer.diagnose.verdict import Breaking, CallReport
from analyzer.report.columns import iso_time
from analyzer.report.render import TEXT_COLUMNS, Appender, defuse
from analyzer.sip.message import SipMessage
from analyzer.sip.redact import REDACTED, Redaction, scrub

if TYPE_CHECKING:  # pandas only where a DataFrame is asked for: live mode stays small
    import pandas as pd

    from analyzer.analysis import Analysis


def _breaking(b: Breaking | None) -> dict[str, Any] | None:
    if b is None:
        return None
    return {
        "frame": b.frame,
        "time": iso_time(b.time_ns),
        "code": b.code,
        "reason": b.reason,
        "method": b.method,
        "cseq": b.cseq,
        "src": b.src,
        "dst": b.dst,
        "hop": b.hop,
        "rule": b.rule,
        "explanation": b.explanation,
        "hint": b.hint,
    }


def redact_report(r: CallReport, redaction: Redaction, secrets: Iterable[str] = ()) -> CallReport:
    """``r`` as an output may show it under ``--redact``: a field read from a masked header is
    masked (Call-ID → ``call_id``, From → ``caller``, To → ``callee``) and the masked values
    (``secrets``, from :meth:`Redaction.secrets`) are scrubbed from its free text: an
    explanation quotes a Contact, a Reason, a To tag …"""
    found = frozenset(secrets)

    def text(value: str) -> str:
        return scrub(value, found) if found and value else value

    def masked(header: str, value: str) -> str:
        return REDACTED if value and redaction.masks(header) else text(value)

    b = r.breaking
    return dataclasses.replace(
        r,
        call_id=masked("call-id", r.call_id),
        caller=masked("from", r.caller),
        callee=masked("to", r.callee),
        request_user=text(r.request_user),
        breaking=None if b is None else dataclasses.replace(b, explanation=text(b.explanation), hint=text(b.hint)),
        findings=tuple(dataclasses.replace(f, explanation=text(f.explanation), hint=text(f.hint)) for f in r.findings),
    )


def redact_reports(
    reports: Iterable[CallReport],
    redaction: Redaction,
    messages_of: Callable[[CallReport], Sequence[SipMessage]],
) -> list[CallReport]:
    """Every report through :func:`redact_report`, its secrets taken from its messages.

    Credentials alone never reach a report (the digest response is not kept, see
    ``analyzer.sip.fields.AuthInfo``), so without named headers the reports are returned as
    they are."""
    if not redaction.headers:
        return list(reports)
    out = []
    for r in reports:
        found: set[str] = set()
        for msg in messages_of(r):
            found |= redaction.secrets(msg)
        out.append(redact_report(r, redaction, found))
    return out


def call_dict(r: CallReport) -> dict[str, Any]:
    t = r.timings
    return {
        "call_id": r.call_id,
        "kind": str(r.kind),
        "outcome": str(r.outcome),
        "state": r.state,
        "start": iso_time(r.start_ns),
        "end": iso_time(r.end_ns),
        "caller": r.caller,
        "callee": r.callee,
        "caller_addr": r.caller_addr,
        "callee_addr": r.callee_addr,
        "final": {"code": r.final_code, "reason": r.final_reason} if r.final_code is not None else None,
        "breaking": _breaking(r.breaking),
        "findings": [
            {
                "rule": f.rule,
                "severity": f.severity,
                "frame": f.frame,
                "code": f.code,
                "explanation": f.explanation,
                "hint": f.hint,
            }
            for f in r.findings
        ],
        "pdd_ms": t.pdd_ms,
        "setup_ms": t.setup_ms,
        "answer_ms": t.answer_ms,
        "duration_s": t.duration_s,
        "disconnect_ms": t.disconnect_ms,
        "hung_up_by": t.hung_up_by,
        "rrd_ms": t.rrd_ms,
        "messages": r.messages,
        "retransmissions": r.retransmissions,
    }


def capture_dict(a: Analysis) -> dict[str, Any]:
    st = a.stats
    return {
        "path": a.path,
        "packets": st.frames,
        "sip_messages": st.sip_messages,
        "skipped": dict(sorted((k, v) for k, v in st.frames_by_reason.items() if k != "sip")),
        "malformed": len(st.malformed),
        "limits_reached": dict(sorted(st.limits.items())),
        "copies": a.copies,
        "left_out": list(a.skipped),
        "warning": a.warning or None,
    }


class SummaryCounts:
    """The ``summary`` of the analyze contract, counted one report at a time (so a streamed
    analysis needs no list of its reports)."""

    def __init__(self) -> None:
        self.conversations = 0
        self.failed = 0
        self.kinds: Counter[str] = Counter()
        self.outcomes: Counter[str] = Counter()
        self.rules: Counter[str] = Counter()

    def add(self, r: CallReport) -> None:
        self.count(*counted(r))

    def count(self, kind: str, outcome: str, rule: str | None) -> None:
        """A report as :func:`counted` gives it."""
        self.conversations += 1
        self.kinds[kind] += 1
        self.outcomes[outcome] += 1
        if rule is not None:
            self.failed += 1
            self.rules[rule] += 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "conversations": self.conversations,
            "by_kind": dict(sorted(self.kinds.items())),
            "outcomes": dict(sorted(self.outcomes.items())),
            "failed": self.failed,
            "breaking_rules": dict(self.rules.most_common()),
        }


def counted(r: CallReport) -> tuple[str, str, str | None]:
    """What the summary counts of a report: its kind, kind and outcome, and breaking rule."""
    return str(r.kind), f"{r.kind}:{r.outcome}", r.breaking.rule if r.breaking is not None else None


def summary_dict(a: Analysis) -> dict[str, Any]:
    counts = SummaryCounts()
    for r in a.calls:
        counts.add(r)
    return counts.as_dict()


def security_dict(f: SecurityFinding) -> dict[str, Any]:
    """One security finding (analyzer.diagnose.security) as JSON values."""
    return {
        "rule": f.rule,
        "severity": f.severity,
        "src": f.src,
        "first": iso_time(f.first_ns),
        "last": iso_time(f.last_ns),
        "count": f.count,
        "frames": list(f.frames),
        "summary": f.summary,
        "hint": f.hint,
        "details": f.details_dict,
    }


def analysis_dict(a: Analysis) -> dict[str, Any]:
    return {
        "capture": capture_dict(a),
        "calls": [call_dict(r) for r in a.calls],
        "summary": summary_dict(a),
        "security": [security_dict(f) for f in a.security],
    }


_ENCODE = json.JSONEncoder(ensure_ascii=False).encode


def call_json(r: CallReport) -> str:
    """A call as one line of JSON (``--format jsonl``, and each call of ``--format json``), by
    the C encoder: json.dumps with indent runs a pure-Python encoder whose closures form
    reference cycles, garbage the analysis (collector off) would keep."""
    return _ENCODE(call_dict(r))


class JsonCallsWriter:
    """``sipflow analyze --format json`` written as the calls come: ``calls`` first, then
    ``capture``, ``summary`` and ``security``, known only at the end (the same object as
    :func:`analysis_dict`; key order does not matter in JSON)."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self.first = True
        out.write('{\n "calls": [')

    def add(self, r: CallReport) -> None:
        self.add_text(call_json(r))

    def add_text(self, text: str) -> None:
        """A call as :func:`call_json` wrote it."""
        self.out.write(("\n  " if self.first else ",\n  ") + text)
        self.first = False

    def close(self, a: Analysis, summary: dict[str, Any]) -> None:
        rest = {"capture": capture_dict(a), "summary": summary, "security": [security_dict(f) for f in a.security]}
        self.out.write("]" if self.first else "\n ]")
        for key, value in rest.items():
            self.out.write(f',\n "{key}": ' + json.dumps(value, indent=1, ensure_ascii=False).replace("\n", "\n "))
        self.out.write("\n}\n")


class CsvCallsWriter:
    """``--format csv``: one row per call as it comes (numbers as written: 480, not 480.0;
    text from the wire defused for spreadsheets)."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out
        csv.writer(out, lineterminator="\n").writerow(CALL_COLUMNS)

    def add(self, r: CallReport) -> None:
        self.add_text(call_csv_line(r))

    def add_text(self, line: str) -> None:
        """A call as :func:`call_csv_line` wrote it."""
        self.out.write(line)


_CSV_LINES: list[str] = []
_CSV_WRITER = csv.writer(Appender(_CSV_LINES), lineterminator="\n")


def call_csv_line(r: CallReport) -> str:
    """A call's row of ``--format csv`` and calls.csv, with its line end."""
    row = call_row(r)
    _CSV_WRITER.writerow([_csv_cell(col, row[col]) for col in CALL_COLUMNS])
    return _CSV_LINES.pop()


def write_calls_csv(out: IO[str], reports: Iterable[CallReport]) -> None:
    """calls.csv, whoever writes it (``analyze --format csv``, ``--report``, ``live --report``)."""
    writer = CsvCallsWriter(out)
    for r in reports:
        writer.add(r)


def _csv_cell(col: str, value: Any) -> Any:
    if value is None:
        return ""
    return defuse(value) if col in TEXT_COLUMNS and isinstance(value, str) else value


CALL_COLUMNS = (
    "call_id",
    "kind",
    "outcome",
    "start",
    "end",
    "caller",
    "callee",
    "final_code",
    "final_reason",
    "breaking_frame",
    "breaking_code",
    "breaking_rule",
    "breaking_hop",
    "explanation",
    "hint",
    "pdd_ms",
    "setup_ms",
    "duration_s",
    "hung_up_by",
    "rrd_ms",
    "messages",
    "retransmissions",
)


def call_row(r: CallReport) -> dict[str, Any]:
    """The flat CSV/DataFrame row: :func:`call_dict` with ``final`` and ``breaking`` spread out."""
    d = call_dict(r)
    final = d["final"] or {}
    b = d["breaking"] or {}
    flat = {
        **d,
        "final_code": final.get("code"),
        "final_reason": final.get("reason", ""),
        "breaking_frame": b.get("frame"),
        "breaking_code": b.get("code"),
        "breaking_rule": b.get("rule"),
        "breaking_hop": b.get("hop"),
        "explanation": b.get("explanation"),
        "hint": b.get("hint"),
    }
    return {name: flat[name] for name in CALL_COLUMNS}


def calls_dataframe(reports: list[CallReport]) -> pd.DataFrame:
    import pandas as pd

    frame = pd.DataFrame([call_row(r) for r in reports], columns=list(CALL_COLUMNS))
    for col in INT_COLUMNS:  # a missing value must not turn 480 into 480.0
        frame[col] = frame[col].astype("Int64")
    return frame


INT_COLUMNS = ("final_code", "breaking_frame", "breaking_code", "messages", "retransmissions")
