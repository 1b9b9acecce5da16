"""The whole offline analysis: capture → messages → conversations → call reports."""

from __future__ import annotations

import contextlib
import gc
import heapq
import io
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, TypeVar

from analyzer import shards as sharing
from analyzer.capture.source import read_once
from analyzer.correlate.model import Conversation, ConversationKey
from analyzer.correlate.store import MAX_OPEN, CallStore
from analyzer.decode.pipeline import Decoder, DecodeStats, Unreachable
from analyzer.diagnose.security import ReportNote, SecurityConfig, SecurityFinding, SecurityWatch, report_note
from analyzer.diagnose.verdict import CallReport, diagnose
from analyzer.errors import CaptureCutError, CaptureOpenError, UsageError
from analyzer.limits import DEFAULT_LIMITS, Limits
from analyzer.reader import MergedReader, MessageReader
from analyzer.relay import Relay, follow, roomy
from analyzer.shards import jobs_for, owners
from analyzer.sip.message import SipMessage

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    import pandas as pd


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Streaming(Generic[T]):
    """How a streamed analysis hands its reports over (``analyze``'s ``on_report``): each
    report through ``prepare`` where it is made (with ``jobs``, in the process of its calls:
    the work is spread over them, and only what ``prepare`` made goes through a pipe), then to
    ``take`` in the calling process, in start order."""

    prepare: Callable[[CallReport], T]
    take: Callable[[T], None]


AT_END = 1 << 62
"""The sweep of the reports a process of the calls hands out at the end of the input."""


class _Handed(NamedTuple):
    """What reaches the calling process of each report from a process of the calls: the sweep
    it was handed out at (counted from 0; :data:`AT_END` for those of the end), where it goes
    in start order (see :func:`_report_order`), what the security watch reads of it, and what
    ``prepare`` made."""

    sweep: int
    order: tuple[int, str, str]
    note: ReportNote | None
    item: Any


class _Mark(NamedTuple):
    """A sweep of a process of the calls is over: no report it still holds or will make
    starts before ``watermark`` (:meth:`_Run._watermark`), in a capture whose clock only goes
    forward."""

    sweep: int
    watermark: int


def _merge_key(x: _Handed | _Mark) -> tuple[int, int, tuple[int, str, str] | int]:
    """Where the calling process takes ``x`` in (:class:`analyzer.parallel.Sharded`): sweep by
    sweep, the reports of every process first, in start order, then each process's mark."""
    return (x.sweep, 0, x.order) if isinstance(x, _Handed) else (x.sweep, 1, 0)


class _Pending(Generic[T]):
    """Reports (or what was made of them) waiting to be handed over in start order: a heap by
    start, then in the order held (two conversations of one Call-ID, kind and start, as a
    capture whose clock goes back can make, are never compared)."""

    def __init__(self, emit: Callable[[T], None]) -> None:
        self.emit = emit
        self.heap: list[tuple[tuple[int, str, str], int, T]] = []
        self.held = 0

    def hold(self, order: tuple[int, str, str], item: T) -> None:
        heapq.heappush(self.heap, (order, self.held, item))
        self.held += 1

    def release(self, before_ns: int | None = None) -> None:
        """Hand over those that start before ``before_ns`` (all when None), in order."""
        heap, emit = self.heap, self.emit
        while heap and (before_ns is None or heap[0][0][0] < before_ns):
            emit(heapq.heappop(heap)[2])


class _InTurn:
    """The calling process of several: takes the reports of the processes of the calls and
    hands them over where one process would have (:meth:`_Run.sweep`). At each sweep, each
    process sends every report it made since the last, then its mark; once every mark of
    the sweep is in, the reports that start before the lowest watermark go, in start order.
    Taking each process's reports in its own start order instead gave another order where
    the capture's clock goes back (found by fuzzing)."""

    def __init__(self, shards: int, seen: _WatchNotes, take: Callable[[Any], None]) -> None:
        self.shards = shards
        self.seen = seen
        self.take = take
        self.pending: _Pending[_Handed] = _Pending(self._hand)
        self.marks: list[int] = []

    def add(self, x: _Handed | _Mark) -> None:
        if isinstance(x, _Handed):
            self.pending.hold(x.order, x)
            if x.sweep == AT_END:
                # Every mark is in, and each process hands out those of the end in start order,
                # merged so (analyzer.parallel): none to come starts before this one. They go
                # as they come, not all once the last process is done (all-SIP: 16,000, 45 ms).
                self.pending.release(x.order[0])
            return
        self.marks.append(x.watermark)
        if len(self.marks) == self.shards:
            self.pending.release(min(self.marks))
            self.marks.clear()

    def _hand(self, h: _Handed) -> None:
        self.seen.keep(h.note)
        self.take(h.item)


def _itself(r: CallReport) -> CallReport:
    return r


@dataclass(slots=True)
class Analysis:
    path: str
    stats: DecodeStats
    warning: str
    calls: list[CallReport]
    """One report per conversation (call, registration …), in start order."""
    messages: list[SipMessage] = field(repr=False)
    by_call: dict[ConversationKey, list[SipMessage]] = field(default_factory=dict, repr=False)
    """Messages of each conversation, by its key (Call-ID, kind, start)."""
    security: list[SecurityFinding] = field(default_factory=list)
    """Scanning, password guessing, floods, toll fraud, spoofed responses (analyzer.diagnose.security)."""
    evicted: int = 0
    """Conversations judged early because more than ``max_open`` were open at once (a flood)."""
    copies: int = 0
    """Messages left out because another capture point's file held the same message."""
    skipped: list[str] = field(default_factory=list)
    """Captures left out among several, one line each: they end before their header does
    (an empty file, the newest of a rotation), so hold no frame (:func:`usable_captures`)."""

    def messages_of(self, report: CallReport) -> list[SipMessage]:
        """The messages of one conversation, in capture order (for ladders and exports)."""
        return self.by_call.get(report.key, [])

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
    jobs: int = 1,
    max_open: int = MAX_OPEN,
    on_report: Callable[[CallReport], None] | Streaming[Any] | None = None,
    limits: Limits | None = None,
) -> Analysis:
    """Analyse one capture, or several as one: their frames merged in time order (frame numbers
    as ``mergecap`` would give them), so calls that span rotated files are joined and the same
    message held by two capture points' files counts once (``copies``). Raises
    :class:`analyzer.errors.CaptureError` for a file that is not a capture, before reading anything.

    With ``keep_messages=False`` the analysis streams: conversations are diagnosed and their
    messages dropped as soon as they are over (the call store's expiry), so memory follows
    the number of open calls, not the size of the capture; ``messages`` and ``messages_of``
    are then empty. With ``on_report`` too, each report is handed over as soon as no
    conversation that started earlier can still come (start order, as ``calls`` is sorted)
    and is not kept: ``calls`` is then empty and memory stays flat however long the capture.
    A :class:`Streaming` ``on_report`` has each report made into what it takes first, in the
    process that made the report.

    ``jobs`` > 1 (streaming only) spreads the calls over that many processes, each
    correlating and diagnosing the Call-IDs of its share (:func:`analyzer.shards.shard_of`),
    beside one that reads and parses the captures and hands the messages on and one that keeps
    the capture-wide security watch (:mod:`analyzer.relay`). The result is the same as with
    one process.

    ``max_open`` bounds the conversations open at once when streaming (a flood of unique
    Call-IDs): beyond it the least recently active are judged early, as the capture stands,
    and counted in ``evicted``.

    ``limits`` bound what the decoder holds (:class:`analyzer.limits.Limits`; the defaults
    when None), in every process.
    """
    if on_report is not None and keep_messages:
        raise ValueError("on_report streams the reports: it goes with keep_messages=False")
    paths, skipped = usable_captures(capture_paths([path] if isinstance(path, str | Path) else path))
    limits = limits if limits is not None else DEFAULT_LIMITS
    shards = jobs_for(paths, jobs, sharing.MIN_SIP_PER_CALLS_JOB, read_alone=True) if not keep_messages else 1
    if "-" in paths and _stdin_fd() is None:
        shards = 1  # no descriptor to hand the reading process (a test's stand-in for standard input)
    kept: list[CallReport] = []
    if isinstance(on_report, Streaming):
        stream: Streaming[Any] = on_report
    else:
        stream = Streaming(_itself, on_report if on_report is not None else kept.append)
    seen = _WatchNotes()

    def deliver(r: CallReport) -> None:
        seen.add(r)
        stream.take(stream.prepare(r))

    with no_gc_pauses():
        if shards == 1:
            part = _analyze_part(paths, progress, keep_messages, max_open, deliver, limits)
        else:
            part = _analyze_parallel(paths, progress, shards, max_open, stream, seen, limits)
    kept.sort(key=_report_order)  # the order of delivery already, unless the capture's clock went back
    watch = part.watch
    for note in seen.notes:
        watch.replay(note)
    name = paths[0] if len(paths) == 1 else f"{len(paths)} captures ({paths[0]} …)"
    return Analysis(
        name,
        part.stats,
        part.warning,
        kept,
        part.messages,
        part.by_call,
        watch.findings(),
        part.evicted,
        part.copies,
        skipped,
    )


@contextlib.contextmanager
def no_gc_pauses() -> Iterator[None]:
    """Run without the cyclic garbage collector.

    An analysis allocates millions of small objects and keeps hundreds of thousands (the
    messages of open calls); the collector rescans those again and again: a quarter of the
    run time on the all-SIP benchmark (17 s -> 13 s CPU). Nothing sipflow builds holds a
    reference cycle (tests/test_analysis.py checks it), so reference counting frees
    everything anyway. An ``on_report`` callback runs inside: it must not make cycles either
    (``json.dumps`` with ``indent`` does: its pure-Python encoder's closures refer to each other).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class _WatchNotes:
    """What the security watch reads of the reports (it is fed them all at the end, in the
    order they were handed over, whether kept or streamed): a note per unanswered or
    international call, nothing for the others (see report_note)."""

    def __init__(self) -> None:
        self.config = SecurityConfig()
        self.notes: list[ReportNote] = []

    def add(self, r: CallReport) -> None:
        self.keep(report_note(r, self.config))

    def keep(self, note: ReportNote | None) -> None:
        if note is not None:
            self.notes.append(note)


@dataclass(slots=True)
class _Part:
    """What one process found besides its reports (delivered as they come)."""

    stats: DecodeStats
    warning: str
    messages: list[SipMessage]
    by_call: dict[ConversationKey, list[SipMessage]]
    watch: SecurityWatch
    evicted: int
    copies: int


def _analyze_part(
    paths: Sequence[str],
    progress: Callable[[int], None] | None,
    keep: bool,
    max_open: int,
    emit: Callable[[CallReport], None],
    limits: Limits = DEFAULT_LIMITS,
    relay: Callable[[list[Unreachable]], Relay] | None = None,
) -> _Part:
    """Read the captures and analyse their messages; with ``relay`` (the reading process of
    several), hand every message on instead (:class:`analyzer.relay.Relay`, made with the
    decoder's list of ICMP errors)."""
    decoder = Decoder(limits)
    run = _Run(decoder, keep, emit)
    run.store.max_open = max_open
    hand = relay(decoder.stats.unreachable) if relay is not None else None
    feed = run.feed if hand is None else hand.hand
    copies = 0
    if len(paths) == 1:
        reader = MessageReader(paths[0], decoder=decoder, finish=False).open()
        reader.progress = progress
        for msg in reader:
            feed(msg)
        warnings = [reader.capture.warning] if reader.capture.warning else []
    else:
        # rotated files and captures from several points: one time line (see MergedReader)
        merged = MergedReader(list(paths), decoder=decoder).open()
        merged.progress = progress
        for msg in merged:
            feed(msg)
        warnings = [f"{c.path}: {c.warning}" for c in merged.captures if c.warning]
        copies = merged.dedup.copies
    for msg in decoder.finish():
        feed(msg)
    if hand is not None:
        hand.close(decoder.stats.last_ts_ns or 0)
    run.finish()
    return _Part(decoder.stats, "; ".join(warnings), run.messages, run.by_call, run.watch, run.store.evicted, copies)


def _follow(
    recv: Connection,
    me: int,
    max_open: int,
    emit: Callable[[CallReport], None],
    mark: Callable[[int], None],
    ending: Callable[[], None],
    limits: Limits,
) -> tuple[int, SecurityWatch | None]:
    """A process that correlates and diagnoses the calls of share ``me`` from what the reading
    process hands on (:func:`analyzer.relay.follow`), sweeping where it says, and marking each
    sweep (``mark``: see :class:`_InTurn`), and calling ``ending`` once the input is over, before
    the calls still open are diagnosed; that of share 0 also keeps the security watch over every
    message. Returns how many conversations it evicted, and the watch."""
    decoder = Decoder(limits)  # reads nothing: holds the ICMP errors and the capture's end
    run = _Run(decoder, False, emit)
    run.store.max_open = max_open
    watch = run.watch if me == 0 else None
    run.marks = mark
    end = follow(recv, me, run.correlate, decoder.stats.unreachable, run.sweep, watch)
    if end is None:
        return 0, watch  # the reading process stopped: its error is the one to tell
    decoder.stats.last_ts_ns = end
    ending()
    _LEFT_FOR_EXIT.append(run.finish())  # a forked process: see _LEFT_FOR_EXIT
    return run.store.evicted, watch.settled() if watch is not None else None


_LEFT_FOR_EXIT: list[object] = []
"""What a forked process of the calls holds at its end (the conversations :meth:`_Run.finish`
diagnosed), left to its exit instead of freed
object by object: the process ends by ``os._exit`` (multiprocessing's way), which frees
nothing. On all-SIP each process frees about 8,000 conversations diagnosed at the end of the
input otherwise (20,000 took 157 ms to free), after its last report, before its results go."""


def usable_captures(paths: Sequence[str]) -> tuple[list[str], list[str]]:
    """The captures to read, each opened as far as its header (not standard input or a pipe:
    they can be read only once), and a line for each left out. Among several, a file that
    ends before its header does (:class:`analyzer.errors.CaptureCutError`: an empty file,
    the newest of a rotation still being written) holds no frame and is left out. Raises
    :class:`analyzer.errors.CaptureError` for any other file that is not a capture, and
    when no capture is left."""
    if list(paths).count("-") > 1:
        raise UsageError("standard input (-) can be read only once: give it once")
    kept: list[str] = []
    skipped: list[str] = []
    for path in paths:
        if not read_once(path):
            try:
                MessageReader(path).open().close()
            except CaptureCutError as exc:
                if len(paths) == 1:
                    raise
                skipped.append(f"{exc}: left out, it holds no frame")
                continue
        kept.append(path)
    if not kept:
        raise CaptureCutError(f"no frame in any of the {len(paths)} captures: {'; '.join(skipped)}")
    return kept, skipped


def _stdin_fd() -> int | None:
    """Standard input's file descriptor, None when it has none (closed, or an object in memory)."""
    try:
        return sys.stdin.fileno() if sys.stdin is not None else None
    except (OSError, ValueError, AttributeError):
        return None


GIVE_WAY = 10
"""How much the processes fed by the reader lower their priority (``nice``), so that it runs
while they wait: on two cores with two processes for the calls, the all-SIP benchmark took
6.8 s this way and 7.4 s without."""


def _analyze_parallel(
    paths: Sequence[str],
    progress: Callable[[int], None] | None,
    shards: int,
    max_open: int,
    stream: Streaming[Any],
    seen: _WatchNotes,
    limits: Limits = DEFAULT_LIMITS,
) -> _Part:
    """Forked processes (:class:`analyzer.parallel.Sharded`): one reads the captures (with the
    decode stats and the progress bar) and hands every message on (:mod:`analyzer.relay`) to
    ``shards`` that correlate and diagnose a share of the Call-IDs each, the first of which
    also keeps the security watch. Each report is prepared (``stream``) and noted for the watch
    (``seen``) there; what they make is merged in start order as it comes. The reader is the
    one the others wait for: they give way to it (:data:`GIVE_WAY`)."""
    import multiprocessing

    from analyzer.parallel import Sharded  # multiprocessing: only for several processes

    share = max(1, max_open // shards)  # each process holds its share of the open calls
    # A forked process's standard input is /dev/null (multiprocessing sees to it): the reader
    # gets a copy of the descriptor instead.
    fd = _stdin_fd() if "-" in paths else None
    stdin = [os.dup(fd)] if fd is not None else []
    links = [multiprocessing.get_context("fork").Pipe(duplex=False) for _ in range(shards)]
    for recv, _ in links:
        roomy(recv)

    def work(
        k: int, put: Callable[[_Handed | _Mark], None], tick: Callable[[int], None]
    ) -> _Part | tuple[int, SecurityWatch | None]:
        # the reader (process 0) sends on every link; process k receives on link k - 1
        for n, (recv, send) in enumerate(links, 1):
            if n != k:
                recv.close()
            if k:
                send.close()
        if k:
            os.nice(GIVE_WAY)
            prepare, config = stream.prepare, seen.config
            swept = [0]  # sweeps marked so far: a report handed out now goes with the next

            def hand(r: CallReport) -> None:
                put(_Handed(swept[0], _report_order(r), report_note(r, config), prepare(r)))

            def mark(watermark: int) -> None:
                put(_Mark(swept[0], watermark))
                swept[0] += 1

            def ending() -> None:
                swept[0] = AT_END

            return _follow(links[k - 1][0], k - 1, share, hand, mark, ending, limits)
        if stdin:
            sys.stdin = io.TextIOWrapper(open(stdin[0], "rb"))  # noqa: SIM115  (the process's standard input from now on)
        sends = [send for _, send in links]
        owner = owners(shards)
        return _analyze_part(
            paths, tick, False, share, _unhanded, limits, lambda icmp: Relay(sends, owner, icmp, EXPIRE_EVERY)
        )

    def started() -> None:
        for recv, send in links:  # the processes hold them now: each end closes when its holder does
            recv.close()
            send.close()
        while stdin:
            os.close(stdin.pop())

    run: Sharded[_Handed | _Mark, _Part | tuple[int, SecurityWatch | None]] = Sharded(
        1 + shards, work, _merge_key, progress, started, ahead=None, quiet=1
    )
    in_turn = _InTurn(shards, seen, stream.take)
    try:
        for x in run:
            in_turn.add(x)
    finally:
        started()  # again: when a process could not be started, nothing closed them
    in_turn.pending.release()  # those of the end
    part = run.ends[0]
    calls = [end for end in run.ends[1:] if isinstance(end, tuple)]
    assert isinstance(part, _Part) and len(calls) == shards
    part.watch = next(watch for _, watch in calls if watch is not None)
    part.evicted = sum(evicted for evicted, _ in calls)
    return part


def _report_order(r: CallReport | Conversation) -> tuple[int, str, str]:
    """Where a report goes in start order; of a conversation, where its report goes."""
    return (r.start_ns, r.call_id, str(r.kind))


def _unhanded(r: CallReport) -> None:
    raise AssertionError(f"the reading process made a report ({r.call_id}): it hands every message on")


EXPIRE_EVERY = 4096  # messages between two expiry sweeps when streaming


class _Run:
    """Messages into the call store; reports out, in start order, early when streaming."""

    def __init__(self, decoder: Decoder, keep: bool, emit: Callable[[CallReport], None]) -> None:
        self.decoder = decoder
        self.keep = keep
        self.store = CallStore()
        self.messages: list[SipMessage] = []
        self.by_call: dict[ConversationKey, list[SipMessage]] = {}
        self.pending: _Pending[CallReport] = _Pending(emit)
        """Diagnosed reports not handed over yet."""
        self.watch = SecurityWatch()  # bounded tables: streaming memory stays bounded
        self.last_ns = 0
        self.count = 0
        self.marks: Callable[[int], None] | None = None
        """Set in a process of the calls, fed by the reader: it sweeps when told (:meth:`sweep`:
        where one process would have), not every :data:`EXPIRE_EVERY` messages of its own; it
        hands out every report it holds at each sweep, then gives its watermark here (the
        calling process releases them: :class:`_InTurn`)."""

    def feed(self, msg: SipMessage) -> None:
        self.watch.message(msg)
        self.correlate(msg)

    def correlate(self, msg: SipMessage) -> None:
        self.store.feed(msg)
        self.last_ns = max(self.last_ns, msg.origin.ts_ns)
        if self.keep:
            self.messages.append(msg)
            return
        self.count += 1
        if self.marks is None and not self.count % EXPIRE_EVERY:
            self.sweep(self.last_ns)
        elif len(self.store.conversations) > self.store.max_open:
            if self.marks is None:
                self.sweep(self.last_ns)
            else:
                self._expire(self.last_ns)  # handed out at the next sweep, with its reports

    def sweep(self, now_ns: int) -> None:
        """Hand out the conversations over by ``now_ns`` (the newest time the run has seen)."""
        self._expire(now_ns)
        if self.marks is None:
            self.pending.release(self._watermark())
        else:
            self.pending.release()
            self.marks(self._watermark())

    def _expire(self, now_ns: int) -> None:
        self.last_ns = max(self.last_ns, now_ns)
        icmp = tuple(self.decoder.stats.unreachable)
        for c in self.store.expire(self.last_ns):
            self._hold(diagnose(c, self.last_ns, icmp))

    def _hold(self, r: CallReport) -> None:
        self.pending.hold(_report_order(r), r)

    def _watermark(self) -> int:
        """No conversation still to be reported starts before this: the open ones start later,
        and new ones start at the time reached (in a capture whose clock only goes forward)."""
        first = self.store.first_start()
        return self.last_ns if first is None else first

    def finish(self) -> list[Conversation]:
        """Diagnose the conversations still open and hand their reports out; returns them."""
        st = self.decoder.stats
        end = max(st.last_ts_ns or 0, self.last_ns)
        icmp = tuple(st.unreachable)
        conversations = self.store.finish()
        if self.keep:
            self.by_call = {c.key: c.messages for c in conversations}
        # In start order, each report goes as soon as no other can come before it: a process
        # of the calls sends its reports while it still diagnoses, not all after the last.
        conversations.sort(key=_report_order)
        for c in conversations:
            self.pending.release(c.start_ns)
            self._hold(diagnose(c, end, icmp))
        self.pending.release()
        return conversations
