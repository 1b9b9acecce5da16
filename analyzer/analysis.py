"""The whole offline analysis: capture → messages → conversations → call reports."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from analyzer.correlate.store import CallStore
from analyzer.decode.pipeline import Decoder, DecodeStats
from analyzer.diagnose.verdict import CallReport, diagnose
from analyzer.errors import CaptureOpenError
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


CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap", ".pcap.gz", ".pcapng.gz", ".libpcap", ".dmp")


def capture_paths(inputs: Sequence[str | Path]) -> list[str]:
    """Inputs as capture files: a directory stands for its capture files, by name."""
    out: list[str] = []
    for item in inputs:
        p = Path(item)
        if str(item) != "-" and p.is_dir():
            found = sorted(str(f) for f in p.iterdir() if f.is_file() and f.name.lower().endswith(CAPTURE_SUFFIXES))
            if not found:
                raise CaptureOpenError(f"{p}: no capture files (.pcap, .pcapng, .cap, .gz) in this directory")
            out += found
        else:
            out.append(str(item))
    return out


def analyze(
    path: str | Path | Sequence[str | Path],
    progress: Callable[[int], None] | None = None,
    *,
    keep_messages: bool = True,
) -> Analysis:
    """Analyse one capture, or several as one (rotated files: frame numbers count on, calls that
    span files are joined). Raises :class:`analyzer.errors.CaptureError` for a file that is
    not a capture, before reading anything.

    With ``keep_messages=False`` the analysis streams: conversations are diagnosed and their
    messages dropped as soon as they are over (the call store's expiry), so memory follows
    the number of open calls, not the size of the capture; ``messages`` and ``messages_of``
    are then empty.
    """
    paths = capture_paths([path] if isinstance(path, str | Path) else path)
    decoder = Decoder()
    readers = [MessageReader(p, decoder=decoder, finish=False) for p in paths]
    for reader in readers:
        reader.open()
    run = _Run(decoder, keep_messages)
    first = 1
    warnings: list[str] = []
    for reader in readers:
        reader.first_frame = first
        reader.progress = progress
        for msg in reader:
            run.feed(msg)
        first += reader.frames_read
        if reader.capture.warning:
            warnings.append(f"{reader.path}: {reader.capture.warning}" if len(readers) > 1 else reader.capture.warning)
    for msg in decoder.finish():
        run.feed(msg)
    reports = run.finish()
    name = paths[0] if len(paths) == 1 else f"{len(paths)} captures ({paths[0]} …)"
    return Analysis(name, decoder.stats, "; ".join(warnings), reports, run.messages, run.by_call)


EXPIRE_EVERY = 4096  # messages between two expiry sweeps when streaming


class _Run:
    """Messages into the call store; reports out, early when streaming."""

    def __init__(self, decoder: Decoder, keep: bool) -> None:
        self.decoder = decoder
        self.keep = keep
        self.store = CallStore()
        self.messages: list[SipMessage] = []
        self.by_call: dict[tuple[str, str], list[SipMessage]] = {}
        self.reports: list[CallReport] = []
        self.last_ns = 0
        self.count = 0

    def feed(self, msg: SipMessage) -> None:
        self.store.feed(msg)
        self.last_ns = max(self.last_ns, msg.origin.ts_ns)
        if self.keep:
            self.messages.append(msg)
            return
        self.count += 1
        if not self.count % EXPIRE_EVERY:
            icmp = tuple(self.decoder.stats.unreachable)
            self.reports += (diagnose(c, self.last_ns, icmp) for c in self.store.expire(self.last_ns))

    def finish(self) -> list[CallReport]:
        st = self.decoder.stats
        end = max(st.last_ts_ns or 0, self.last_ns)
        icmp = tuple(st.unreachable)
        conversations = self.store.finish()
        if self.keep:
            self.by_call = {(c.call_id, str(c.kind)): c.messages for c in conversations}
        self.reports += (diagnose(c, end, icmp) for c in conversations)
        return sorted(self.reports, key=lambda r: (r.start_ns, r.call_id))
