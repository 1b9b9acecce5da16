"""``--report DIR --every 5m``: report.html, calls.csv and calls.json of the rolling window,
rewritten periodically, each whole or not at all (temporary file, then rename: a dashboard
reading a file never sees half of it).

report.html is the page ``sipflow analyze --report`` writes, built from an
:class:`~analyzer.analysis.Analysis` of the window: its calls are the window's reports, its
messages none (live mode keeps no messages of finished calls, so memory stays bounded; the
page says so where a ladder would be), its security findings none (live alerts are another
thing, in the alert lines and ``--jsonl``). The packet and SIP message counts are the
decoder's since the run started; the span is the window's.

The reports come in as every other output shows them: with ``--redact``, masked by the run
before they reach the window, so the files carry only masked values."""

from __future__ import annotations

import dataclasses
import json
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from analyzer.analysis import Analysis
from analyzer.decode.pipeline import DecodeStats
from analyzer.diagnose.verdict import CallReport
from analyzer.errors import UsageError
from analyzer.report.atomic import atomic_write
from analyzer.report.calls import call_dict, write_calls_csv
from analyzer.report.columns import iso_time
from analyzer.report.html import render_html
from analyzer.report.kpi import Kpis


def window_name(window_s: float) -> str:
    """``900`` → ``15 min``, ``7200`` → ``2 h``, ``90`` → ``90 s``."""
    if window_s >= 3600 and window_s % 3600 == 0:
        return f"{window_s / 3600:g} h"
    if window_s >= 60 and window_s % 60 == 0:
        return f"{window_s / 60:g} min"
    return f"{window_s:g} s"


def window_analysis(
    reports: Sequence[CallReport],
    source: str,
    window_s: float,
    decoded: DecodeStats | None = None,
    malformed: int = 0,
) -> Analysis:
    """An Analysis of the window for the HTML page: ``reports`` in start order, no messages.

    ``decoded``: the live decoder's counts since the start (copied, never changed);
    ``malformed``: SIP-looking payloads that were not SIP, since the start (the live engine
    counts them and empties the decoder's list)."""
    calls = sorted(reports, key=lambda r: r.start_ns)
    d = decoded if decoded is not None else DecodeStats()
    ends = [r.end_ns for r in calls] + ([d.last_ts_ns] if d.last_ts_ns is not None else [])
    last = max(ends, default=None)
    stats = DecodeStats(
        frames=d.frames,
        bytes=d.bytes,
        sip_messages=d.sip_messages,
        frames_by_reason=Counter(d.frames_by_reason),
        # The page's span and time axis are the window's: from its first call to the newest packet.
        first_ts_ns=calls[0].start_ns if calls else last,
        last_ts_ns=last,
    )
    notes = []
    if d.first_ts_ns is not None:
        notes.append(f"packets and SIP messages since {iso_time(d.first_ts_ns)[:19].replace('T', ' ')} UTC")
    if malformed + len(d.malformed):
        notes.append(f"{malformed + len(d.malformed)} malformed SIP")
    return Analysis(
        path=f"live: {source or 'no input'}, last {window_name(window_s)}",
        stats=stats,
        warning="; ".join(notes),
        calls=calls,
        messages=[],
    )


class ReportDir:
    def __init__(self, directory: Path) -> None:
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"{directory}: cannot create: {exc.strerror or exc}") from None
        self.directory = directory
        self.writes = 0

    def write(
        self,
        reports: list[CallReport],
        kpis: Kpis,
        window_s: float,
        *,
        source: str = "",
        decoded: DecodeStats | None = None,
        malformed: int = 0,
    ) -> list[Path]:
        """Write the three files; ``source`` names the inputs (``-i eth0 + HEP …``) in the page,
        ``decoded`` and ``malformed`` are the run's counts (see :func:`window_analysis`)."""
        doc = {
            "live": {
                "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "window_s": window_s,
            },
            "calls": [call_dict(r) for r in reports],
            "summary": {"kpis": dataclasses.asdict(kpis)},
        }
        a = window_analysis(reports, source, window_s, decoded, malformed)
        html = render_html(a, title=f"sipflow {a.path}", messages_kept=False)
        html_path = self.directory / "report.html"
        csv_path, json_path = self.directory / "calls.csv", self.directory / "calls.json"
        atomic_write(csv_path, lambda f: write_calls_csv(f, reports))
        atomic_write(json_path, lambda f: f.write(json.dumps(doc, indent=1, ensure_ascii=False)))
        atomic_write(html_path, lambda f: f.write(html))
        self.writes += 1
        return [html_path, csv_path, json_path]
