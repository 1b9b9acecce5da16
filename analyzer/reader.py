"""Read the SIP messages of a capture file: the capture source wired to the decoder."""

from __future__ import annotations

import contextlib
import heapq
from collections.abc import Callable, Iterator
from pathlib import Path

from analyzer.capture.pcap import PcapRecords
from analyzer.capture.pcapng import PcapngBlocks
from analyzer.capture.source import GZIP_ERRORS, Guarded, open_stream, read_frames
from analyzer.capture.stats import CaptureStats, RawFrame
from analyzer.correlate.dedup import Dedup
from analyzer.decode.fastpcap import ETHERNET, FastPcapngRun, FastRun, fast_run
from analyzer.decode.pipeline import Decoder
from analyzer.sip.message import SipMessage


class MessageReader:
    """Iterate over the SIP messages of one capture, in the order they were completed.

    ``capture`` (file facts, truncation warning) and ``decoder.stats`` (frames by
    reason, malformed messages) fill in while iterating and are final afterwards.
    :meth:`open` (called by iteration if not before) raises
    :class:`analyzer.errors.CaptureError` when the file cannot be read as a capture,
    before any message is produced.
    """

    def __init__(
        self, path: str | Path, *, decoder: Decoder | None = None, first_frame: int = 1, finish: bool = True
    ) -> None:
        """``decoder``, ``first_frame`` and ``finish=False`` chain several files into one
        analysis (rotated captures): frame numbers count on, streams stay open."""
        self.path = str(path)
        self.capture = CaptureStats(self.path)
        self.decoder = decoder if decoder is not None else Decoder()
        self.first_frame = first_frame
        self.finish = finish
        self.frames_read = 0
        self.progress: Callable[[int], None] | None = None
        """Called every 8192 frames with the captured bytes read so far (for a progress bar)."""
        self._stack = contextlib.ExitStack()
        self._frames: Iterator[RawFrame] | None = None

    def open(self) -> MessageReader:
        if self._frames is None:
            stream = self._stack.enter_context(open_stream(self.path))
            try:
                self._frames = read_frames(stream, self.capture)
            except BaseException:
                self._stack.close()
                raise
        return self

    def fast_source(self) -> PcapRecords | PcapngBlocks | None:
        """What a fused loop reads (:mod:`analyzer.decode.fastpcap`): a classic pcap of
        Ethernet frames, or pcapng; None for any other capture."""
        frames = self.open()._frames
        assert frames is not None
        return _fast_source(frames)

    def close(self) -> None:
        """Close the file now (iterating to the end does it too)."""
        self._stack.close()

    def __iter__(self) -> Iterator[SipMessage]:
        frames = self.open()._frames
        assert frames is not None
        source = _fast_source(frames)
        if source is not None:
            yield from self._fast(fast_run(source, self.decoder, self.first_frame))
            return
        feed = self.decoder.feed
        number = self.first_frame - 1
        try:
            progress = self.progress
            for number, (ts_ns, linktype, data, _orig) in enumerate(frames, self.first_frame):
                out = feed(number, ts_ns, linktype, data)
                if out:
                    yield from out
                if progress is not None and not number & 0x1FFF:
                    progress(self.decoder.stats.bytes)
            self.frames_read = number - self.first_frame + 1
            if self.finish:
                yield from self.decoder.finish()
        finally:
            self._stack.close()

    def _fast(self, run: FastRun | FastPcapngRun) -> Iterator[SipMessage]:
        """The fused loop of a classic pcap of Ethernet or of a pcapng (same messages, same
        counts, faster)."""
        run.progress = self.progress
        try:
            yield from run
            self.frames_read = run.frames
            if self.finish:
                yield from self.decoder.finish()
        finally:
            self._stack.close()


def read_messages(path: str | Path) -> Iterator[SipMessage]:
    """Every SIP message in the capture at ``path`` (``-`` for standard input)."""
    return iter(MessageReader(path))


class MergedReader:
    """Several captures read as one, their frames merged in time order as ``mergecap`` merges
    them (a tie goes to the earlier file): frame numbers are those of the merged capture.

    Rotated files of one capture point follow each other; captures of several capture
    points interleave, and a message that two of them hold (same bytes, same addresses,
    within :data:`analyzer.correlate.dedup.WINDOW_NS`) is produced once; ``dedup.copies``
    counts the copies left out. Each file's facts are in ``captures``.
    """

    def __init__(self, paths: list[str], *, decoder: Decoder | None = None) -> None:
        self.paths = paths
        self.captures = [CaptureStats(p) for p in paths]
        self.decoder = decoder if decoder is not None else Decoder()
        self.dedup = Dedup()
        self.frames_read = 0
        self.progress: Callable[[int], None] | None = None
        self._stack = contextlib.ExitStack()
        self._frames: list[Iterator[RawFrame]] | None = None

    def open(self) -> MergedReader:
        if self._frames is None:
            try:
                self._frames = [
                    read_frames(self._stack.enter_context(open_stream(p)), stats)
                    for p, stats in zip(self.paths, self.captures, strict=True)
                ]
            except BaseException:
                self._stack.close()
                raise
        return self

    def __iter__(self) -> Iterator[SipMessage]:
        frames = self.open()._frames
        assert frames is not None
        sources = [_fast_source(f) for f in frames]
        try:
            firsts = [_first_time(s) for s in sources]
            if all(t is not None for t in firsts):
                yield from self._in_turn(sources, firsts)  # type: ignore[arg-type]  # none is None
            else:
                yield from self._merged(list(enumerate(frames)), 0)
        finally:
            self._stack.close()

    def _in_turn(self, sources: list[PcapRecords | PcapngBlocks], firsts: list[int]) -> Iterator[SipMessage]:
        """The files one after another in the order of their first frames, each through its
        fused loop (:class:`FastRun`, :class:`FastPcapngRun`), as long as that is the merged
        order: a file is read until a frame later than the next file's first. If one comes,
        the files are merged from there on (captures of several points, a clock that went back)."""
        assert self._frames is not None
        order = sorted(range(len(sources)), key=lambda k: (firsts[k], k))
        number = 0
        copy = self.dedup.copy
        for i, k in enumerate(order):
            until = None
            if i + 1 < len(order):
                j = order[i + 1]
                until = firsts[j] if k < j else firsts[j] - 1  # a tie goes to the earlier file
            run = fast_run(sources[k], self.decoder, number + 1, until_ns=until)
            run.progress = self.progress
            for msg in run:
                if not copy(msg, k):
                    yield msg
            number += run.frames
            rest = run.rest_frames()
            if rest is not None:
                later = [(k, Guarded(rest, self.captures[k])), *((m, self._frames[m]) for m in order[i + 1 :])]
                yield from self._merged(later, number)
                return
        self.frames_read = number

    def _merged(self, frames: list[tuple[int, Iterator[RawFrame]]], before: int) -> Iterator[SipMessage]:
        """The frames of these (point, frames) merged by time, numbered on after ``before``."""
        feed, copy = self.decoder.feed, self.dedup.copy
        progress = self.progress
        tagged = [_tag(point, it) for point, it in frames]
        number = before
        for number, (ts_ns, point, (_, linktype, data, _orig)) in enumerate(
            heapq.merge(*tagged, key=_time_then_file), before + 1
        ):
            for msg in feed(number, ts_ns, linktype, data):
                if not copy(msg, point):
                    yield msg
            if progress is not None and not number & 0x1FFF:
                progress(self.decoder.stats.bytes)
        self.frames_read = number


def _first_time(source: PcapRecords | PcapngBlocks | None) -> int | None:
    """The time of a file's first frame, read ahead; None when it cannot be told (then every
    file is merged frame by frame, and a damaged stream is a warning there)."""
    if source is None:
        return None
    try:
        return source.first_time()
    except GZIP_ERRORS:
        return None


def _fast_source(frames: Iterator[RawFrame]) -> PcapRecords | PcapngBlocks | None:
    """What a fused loop reads under ``frames``: a classic pcap of Ethernet frames, or pcapng."""
    source = frames.source if isinstance(frames, Guarded) else None
    if isinstance(source, PcapRecords):
        return source if source.linktype == ETHERNET else None
    return source if isinstance(source, PcapngBlocks) else None


def _tag(point: int, frames: Iterator[RawFrame]) -> Iterator[tuple[int, int, RawFrame]]:
    for f in frames:
        yield f[0], point, f


def _time_then_file(item: tuple[int, int, RawFrame]) -> tuple[int, int]:
    return item[0], item[1]
