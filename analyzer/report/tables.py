"""pandas is the table boundary: messages (and later calls) become DataFrames here."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from analyzer.report.columns import MESSAGE_COLUMNS, Column
from analyzer.report.render import redact_columns
from analyzer.sip.message import SipMessage
from analyzer.sip.redact import DEFAULT, Redaction


def frame_of(columns: tuple[Column, ...], rows: Iterable[SipMessage]) -> pd.DataFrame:
    data: dict[str, list[object]] = {c.name: [] for c in columns}
    for msg in rows:
        for c in columns:
            data[c.name].append(c.get(msg))
    return pd.DataFrame({c.name: pd.Series(data[c.name], dtype=c.dtype) for c in columns})


def messages_dataframe(source: str | Path | Iterable[SipMessage], redaction: Redaction = DEFAULT) -> pd.DataFrame:
    """One row per SIP message, columns as in :data:`MESSAGE_COLUMNS`.

    ``source`` is a capture path or an iterable of messages; columns read from a header
    ``redaction`` masks show ``…redacted…``.
    """
    from analyzer.reader import read_messages

    messages = read_messages(source) if isinstance(source, str | Path) else source
    return frame_of(redact_columns(MESSAGE_COLUMNS, redaction), messages)
