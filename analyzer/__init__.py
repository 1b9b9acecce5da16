"""sipflow: SIP call-flow analyzer.

    >>> import analyzer
    >>> for msg in analyzer.read_messages("sample_pcaps/udp_call.pcap"): ...
    >>> df = analyzer.messages_dataframe("sample_pcaps/udp_call.pcap")
    >>> result = analyzer.analyze("sample_pcaps/udp_call.pcap")   # .calls, .calls_frame, .messages_frame

The names are loaded on first use (PEP 562), so that ``sipflow messages`` does not pay
for importing pandas.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from analyzer import native

native.guard()  # before any compiled module is imported: see analyzer.native

if TYPE_CHECKING:
    from analyzer.analysis import Analysis, analyze
    from analyzer.reader import MessageReader, read_messages
    from analyzer.report.tables import messages_dataframe
    from analyzer.sip.message import Origin, SipMessage

__version__ = "0.1.0"
__all__ = ["Analysis", "MessageReader", "Origin", "SipMessage", "analyze", "messages_dataframe", "read_messages"]

_WHERE = {
    "Analysis": "analyzer.analysis",
    "analyze": "analyzer.analysis",
    "MessageReader": "analyzer.reader",
    "read_messages": "analyzer.reader",
    "messages_dataframe": "analyzer.report.tables",
    "Origin": "analyzer.sip.message",
    "SipMessage": "analyzer.sip.message",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'analyzer' has no attribute {name!r}")
