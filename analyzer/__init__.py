"""sipflow: SIP call-flow analyzer.

>>> import analyzer
>>> for msg in analyzer.read_messages("sample_pcaps/udp_call.pcap"): ...
>>> df = analyzer.messages_dataframe("sample_pcaps/udp_call.pcap")
"""

from __future__ import annotations

from analyzer.analysis import Analysis, analyze
from analyzer.reader import MessageReader, read_messages
from analyzer.report.tables import messages_dataframe
from analyzer.sip.message import Origin, SipMessage

__version__ = "0.1.0"
__all__ = ["Analysis", "MessageReader", "Origin", "SipMessage", "analyze", "messages_dataframe", "read_messages"]
