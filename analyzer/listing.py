"""The rows of ``sipflow messages``: each SIP message's column values, in capture order.

With ``jobs`` > 1, a classic pcap of Ethernet frames or a pcapng file is listed by several
processes (:class:`analyzer.parallel.Sharded`): each walks the whole file and decodes its
share of the plain SIP datagrams (:class:`analyzer.decode.fastpcap.FastRun`,
:class:`~analyzer.decode.fastpcap.FastPcapngRun`); the first also decodes
everything else (TCP, fragments, tunnels, HEP …). Rows come back keyed by frame and merged,
and the decode stats are the first process's plus what the others counted by reason: the
same rows and the same stats as with one process. Other inputs are read by one process.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from analyzer.capture.stats import CaptureStats
from analyzer.decode.fastpcap import fast_run
from analyzer.decode.pipeline import Decoder, DecodeStats, Malformed
from analyzer.limits import DEFAULT_LIMITS, Limits
from analyzer.reader import MessageReader
from analyzer.report.columns import Column, cells_of
from analyzer.report.render import Row
from analyzer.shards import jobs_for
from analyzer.sip.message import SipMessage

T = TypeVar("T")
"""A row, or what it is made into: its key is (frame that completed the message, index among that frame's)."""

_AT_END = 1 << 62
"""The frame key of what the decoder hands out at the end of the capture (TCP leftovers)."""


class MessageRows:
    """Iterate for the rows; then :attr:`stats` and :attr:`capture` are the capture's.

    :meth:`open` (called by iteration if not before) raises
    :class:`analyzer.errors.CaptureError` when the file cannot be read as a capture,
    before any process starts.
    """

    def __init__(
        self, path: str | Path, columns: tuple[Column, ...], *, jobs: int = 1, limits: Limits | None = None
    ) -> None:
        self.path = str(path)
        self.columns = columns
        self.limits = limits if limits is not None else DEFAULT_LIMITS
        self.jobs = jobs
        self.stats = DecodeStats()
        self.capture = CaptureStats(self.path)
        self._reader: MessageReader | None = None

    def open(self) -> MessageRows:
        if self._reader is None:
            self._reader = MessageReader(self.path, decoder=Decoder(self.limits)).open()
            self.stats, self.capture = self._reader.decoder.stats, self._reader.capture
        return self

    def processes(self) -> int:
        """How many processes list this capture: several only for a large pcapng or classic
        pcap of Ethernet."""
        reader = self.open()._reader
        assert reader is not None
        return 1 if reader.fast_source() is None else jobs_for([self.path], self.jobs)

    def __iter__(self) -> Iterator[Row]:
        return self._made(_itself)

    def lines(self, text: Callable[[Row], str]) -> Iterator[str]:
        """Each row made into text by ``text`` (:meth:`analyzer.report.render.RowText.line`),
        in the process that lists it."""
        return self._made(text)

    def _made(self, make: Callable[[Row], T]) -> Iterator[T]:
        shards = self.processes()
        reader = self._reader
        assert reader is not None
        if shards == 1:
            cells = cells_of(self.columns)
            for msg in reader:
                yield make(cells(msg))
            return
        reader.close()  # each process opens the file for itself
        from analyzer.parallel import Sharded  # multiprocessing: only for several processes

        def work(k: int, put: Callable[[tuple[tuple[int, int], T]], None], _tick: Callable[[int], None]) -> _Share:
            return self._share(k, shards, make, put)

        run: Sharded[tuple[tuple[int, int], T], _Share] = Sharded(shards, work, _key)
        for _, made in run:
            yield made
        first = run.ends[0]
        self.capture = first.capture
        self.stats = _merged(first, [e.stats for e in run.ends[1:]])

    def _share(
        self, shard: int, shards: int, make: Callable[[Row], T], put: Callable[[tuple[tuple[int, int], T]], None]
    ) -> _Share:
        """Process ``shard``'s rows, made by ``make`` and keyed; its stats and the capture's facts."""
        reader = MessageReader(self.path, decoder=Decoder(self.limits))
        source = reader.fast_source()
        assert source is not None
        decoder = reader.decoder
        cells = cells_of(self.columns)

        def rows(frame: int, out: list[SipMessage]) -> None:
            for i, msg in enumerate(out):
                put(((frame, i), make(cells(msg))))

        try:
            for frame, out in fast_run(source, decoder, 1, share=(shard, shards)).by_frame():
                rows(frame, out)
            before_end = len(decoder.stats.malformed)
            if shard == 0:
                rows(_AT_END, decoder.finish())
        finally:
            reader.close()
        return _Share(decoder.stats, reader.capture, before_end)


def _itself(row: Row) -> Row:
    return row


class _Share:
    """What a process found besides its rows."""

    __slots__ = ("before_end", "capture", "stats")

    def __init__(self, stats: DecodeStats, capture: CaptureStats, before_end: int) -> None:
        self.stats = stats
        self.capture = capture
        self.before_end = before_end
        """Malformed messages found before the end of the capture (the rest: TCP leftovers …)."""


def _key(item: tuple[tuple[int, int], object]) -> tuple[int, int]:
    return item[0]


def _merged(first: _Share, others: list[DecodeStats]) -> DecodeStats:
    """The first process's stats with what the others counted by reason added: their
    malformed messages merged in frame order before the ones found at the end."""
    st = first.stats
    for other in others:
        st.sip_messages += other.sip_messages
        st.frames_by_reason.update(other.frames_by_reason)
    during = heapq.merge(st.malformed[: first.before_end], *(o.malformed for o in others), key=_frame)
    st.malformed = [*during, *st.malformed[first.before_end :]]
    return st


def _frame(m: Malformed) -> int:
    return m.frame
