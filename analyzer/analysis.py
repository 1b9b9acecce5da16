"""The whole offline analysis: capture → messages → conversations → call reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from analyzer.correlate.store import CallStore
from analyzer.decode.pipeline import DecodeStats
from analyzer.diagnose.verdict import CallReport, diagnose
from analyzer.reader import MessageReader
from analyzer.sip.message import SipMessage


@dataclass(slots=True)
class Analysis:
    path: str
    stats: DecodeStats
    warning: str
    calls: list[CallReport]
    """One report per conversation (call, registration …), in start order."""
    messages: list[SipMessage] = field(repr=False)
    by_call: dict[tuple[str, str], list[SipMessage]] = field(default_factory=dict, repr=False)
    """Messages of each conversation, keyed by (call_id, kind)."""

    def messages_of(self, report: CallReport) -> list[SipMessage]:
        """The messages of one conversation, in capture order (for ladders and exports)."""
        return self.by_call.get((report.call_id, str(report.kind)), [])

    @property
    def calls_frame(self) -> pd.DataFrame:
        """One row per conversation (the columns of ``sipflow analyze --format csv``)."""
        from analyzer.report.calls import calls_dataframe

        return calls_dataframe(self.calls)

    @property
    def messages_frame(self) -> pd.DataFrame:
        """One row per SIP message (the columns of ``sipflow messages``)."""
        from analyzer.report.tables import messages_dataframe

        return messages_dataframe(self.messages)


def analyze(path: str | Path) -> Analysis:
    """Analyse one capture; raises :class:`analyzer.errors.CaptureError` if it is not one."""
    reader = MessageReader(path).open()
    store = CallStore()
    messages: list[SipMessage] = []
    for msg in reader:
        messages.append(msg)
        store.feed(msg)
    st = reader.decoder.stats
    end = st.last_ts_ns or 0
    if messages:
        end = max(end, max(m.origin.ts_ns for m in messages))
    icmp = tuple(st.unreachable)
    conversations = store.finish()
    by_call = {(c.call_id, str(c.kind)): c.messages for c in conversations}
    reports = sorted((diagnose(c, end, icmp) for c in conversations), key=lambda r: (r.start_ns, r.call_id))
    return Analysis(str(path), st, reader.capture.warning, reports, messages, by_call)
