"""``--report DIR --every 5m``: calls.csv and calls.json of the rolling window, rewritten
periodically, each whole or not at all (temporary file, then rename: a dashboard reading
the file never sees half of it)."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

from analyzer.diagnose.verdict import CallReport
from analyzer.errors import UsageError
from analyzer.report.calls import call_dict, calls_dataframe
from analyzer.report.files import TEXT_COLUMNS, atomic_write
from analyzer.report.kpi import Kpis
from analyzer.report.render import defuse


class ReportDir:
    def __init__(self, directory: Path) -> None:
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"{directory}: cannot create: {exc.strerror or exc}") from None
        self.directory = directory
        self.writes = 0

    def write(self, reports: list[CallReport], kpis: Kpis, window_s: float) -> list[Path]:
        frame = calls_dataframe(reports)
        for col in TEXT_COLUMNS:
            if col in frame.columns:
                frame[col] = frame[col].map(defuse)
        doc = {
            "live": {
                "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "window_s": window_s,
            },
            "calls": [call_dict(r) for r in reports],
            "summary": {"kpis": dataclasses.asdict(kpis)},
        }
        csv_path, json_path = self.directory / "calls.csv", self.directory / "calls.json"
        atomic_write(csv_path, lambda f: frame.to_csv(f, index=False))
        atomic_write(json_path, lambda f: f.write(json.dumps(doc, indent=1, ensure_ascii=False)))
        self.writes += 1
        return [csv_path, json_path]
