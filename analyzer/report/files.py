"""``--report DIR``: the report files, each written whole or not at all (temp file, then rename)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

from analyzer.analysis import Analysis, no_gc_pauses
from analyzer.diagnose.verdict import CallReport
from analyzer.errors import SipflowError
from analyzer.report.atomic import atomic_write, refuse_inputs
from analyzer.report.calls import (
    call_dict,
    calls_dataframe,
    capture_dict,
    redact_reports,
    summary_dict,
    write_calls_csv,
)
from analyzer.report.columns import MESSAGE_COLUMNS, cells_of
from analyzer.report.html import render_html
from analyzer.report.render import CsvText, redact_columns, write_lines
from analyzer.sip.message import SipMessage
from analyzer.sip.redact import DEFAULT, Redaction


def default_dir(captures: list[str]) -> Path:
    """``reports/<capture name without extensions>/`` (``reports/stdin/`` for ``-``); for
    several, the first one's name and how many more (``reports/day1+3/``): not the report
    of the first alone."""
    capture = captures[0]
    name = Path(capture).name if capture != "-" else ""
    for suffix in (".gz", ".pcapng", ".pcap", ".cap", ".libpcap"):
        name = name.removesuffix(suffix)
    more = f"+{len(captures) - 1}" if len(captures) > 1 else ""
    return Path("reports") / f"{name or 'stdin'}{more}"


def write_messages_csv(out: TextIO, messages: Iterable[SipMessage], redaction: Redaction = DEFAULT) -> None:
    """messages.csv: the rows ``sipflow messages --format csv`` writes for these messages (the
    same columns and text; columns read from a header ``redaction`` masks show ``…redacted…``)."""
    text = CsvText(redact_columns(MESSAGE_COLUMNS, redaction))
    cells = cells_of(text.columns)
    write_lines(out, text, (text.line(cells(m)) for m in messages))


def write_report_dir(
    a: Analysis, reports: list[CallReport], outdir: Path, inputs: list[str], redaction: Redaction = DEFAULT
) -> list[Path]:
    """report.html, calls.csv, messages.csv, calls.json and calls.parquet for ``reports``
    (as analysed: ``redaction`` is applied here, on the way out).

    Written with the cyclic collector off, as the analysis runs (:func:`no_gc_pauses`): it
    would rescan every kept message again and again while the files are made (all-SIP: 8.5 s
    with it, 7.1 s without). What little garbage the writers leave in cycles (json's encoder)
    is collected once it is back on."""
    outdir.mkdir(parents=True, exist_ok=True)
    with no_gc_pauses():
        names = ("report.html", "calls.csv", "messages.csv", "calls.json", "calls.parquet")
        for name in names:
            refuse_inputs(outdir / name, inputs)
        shown = redact_reports(reports, redaction, a.messages_of)
        calls = calls_dataframe(shown)
        keep = {r.key for r in reports}
        msgs = [m for key, ms in a.by_call.items() if key in keep for m in ms]
        doc = {"capture": capture_dict(a), "calls": [call_dict(r) for r in shown], "summary": summary_dict(a)}
        html = render_html(a, redaction=redaction)
        try:
            atomic_write(outdir / "calls.csv", lambda f: write_calls_csv(f, shown))
            atomic_write(outdir / "messages.csv", lambda f: write_messages_csv(f, msgs, redaction))
            atomic_write(outdir / "calls.json", lambda f: f.write(json.dumps(doc, indent=1, ensure_ascii=False)))
            atomic_write(outdir / "calls.parquet", lambda f: calls.to_parquet(f, index=False), binary=True)
            atomic_write(outdir / "report.html", lambda f: f.write(html))
        except OSError as exc:  # disk full, the directory gone …
            raise SipflowError(f"{outdir}: cannot write the report: {exc.strerror or exc}") from None
    return [outdir / "report.html", *(outdir / n for n in names[1:])]
