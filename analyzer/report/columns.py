"""One catalogue of columns drives the DataFrame, the CSV header, JSON keys and the terminal table."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from operator import attrgetter

from analyzer.decode.ip import hostport
from analyzer.sip.message import SipMessage

Value = str | int | float | None


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    """Key in CSV/JSON and DataFrame column name."""
    title: str
    """Header in the terminal table."""
    description: str
    dtype: str
    """pandas dtype of the DataFrame column."""
    width: int
    """Width in the terminal table (longer values are cut with an ellipsis)."""
    get: Callable[[SipMessage], Value]


@lru_cache(maxsize=4096)
def _utc_second(sec: int) -> str:
    try:
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
    except (OverflowError, OSError, ValueError):  # past year 2^31 (a damaged pcapng time offset or unit)
        return ""


def iso_time(ts_ns: int) -> str:
    """ISO 8601 UTC with microseconds, e.g. ``2024-05-01T10:00:00.123456Z``."""
    sec, ns = divmod(ts_ns, 1_000_000_000)
    second = _utc_second(sec)
    return f"{second}.{ns // 1000:06d}Z" if second else f"(out of range: {ts_ns} ns from 1970)"


MESSAGE_COLUMNS: tuple[Column, ...] = (
    Column(
        "frame",
        "Frame",
        "Number of the frame that completed the message (as Wireshark counts)",
        "int64",
        7,
        attrgetter("origin.frame"),
    ),
    Column(
        "time",
        "Time (UTC)",
        "Capture time of that frame, ISO 8601 UTC",
        "string",
        27,
        lambda m: iso_time(m.origin.ts_ns),
    ),
    Column(
        "src",
        "Source",
        "Sender ip:port",
        "string",
        21,
        lambda m: hostport(m.origin.src_ip, m.origin.src_port),
    ),
    Column(
        "dst",
        "Destination",
        "Receiver ip:port",
        "string",
        21,
        lambda m: hostport(m.origin.dst_ip, m.origin.dst_port),
    ),
    Column(
        "transport",
        "Proto",
        "udp, tcp, sctp or ws; encapsulation after a +",
        "string",
        9,
        lambda m: f"{m.origin.transport}+{m.origin.encap}" if m.origin.encap else m.origin.transport,
    ),
    Column("method", "Method", "Request method; empty for a response", "string", 9, attrgetter("method")),
    Column(
        "status",
        "Code",
        "Status code of a response; empty for a request",
        "Int64",
        4,
        lambda m: m.status or None,
    ),
    Column("reason", "Reason", "Reason phrase of a response", "string", 22, attrgetter("reason")),
    Column("call_id", "Call-ID", "Call-ID header", "string", 36, attrgetter("call_id")),
    Column(
        "cseq",
        "CSeq",
        "CSeq number and method",
        "string",
        16,
        lambda m: f"{m.cseq} {m.cseq_method}" if m.cseq >= 0 else m.cseq_method,
    ),
)
