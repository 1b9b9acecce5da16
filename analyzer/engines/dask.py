"""The analysis on a Dask distributed cluster: many captures, one job, the same result.

    capture 1 ─► decode ─► rows by Call-ID ─┐          ┌─► partition 1: correlate, diagnose ─┐
    capture 2 ─► decode ─► rows by Call-ID ─┼─shuffle─►┼─► partition 2: correlate, diagnose ─┼─► reports
    …                                       ┘          └─► …                                 ┘

1. One task per capture decodes it with a fresh :class:`~analyzer.decode.pipeline.Decoder`
   into an Arrow table of messages (:mod:`analyzer.engines.table`), cut into one part per
   partition by a stable hash of the Call-ID, written as Parquet under a shared work
   directory or kept in worker memory. Only small facts come back to the client: frame
   count, :class:`DecodeStats`, the latest message time, the truncation warning.
2. The client numbers frames on across the files (as the local engine does), merges the
   decode stats, and takes the capture's end time and its ICMP unreachable list from all
   files: diagnosis needs both, and they are global.
3. One task per partition reads its part of every file, puts the rows in the order one
   decoder would have produced them, feeds a :class:`CallStore` and diagnoses each
   conversation, as :func:`analyzer.analysis.analyze` does.
4. Meanwhile the capture-wide :class:`SecurityWatch`, which needs every message in input
   order and cannot be split by Call-ID, goes from file to file: one task per file, next to
   its rows, merges the file's parts back into its decoder's order batch by batch and feeds
   the watch; the client hands the watch from one task to the next (then once more through
   the files whose decoder's ``finish`` gave messages: the local engine feeds those last),
   and at the end feeds it the final reports, as the local engine does.

The one difference from the local engine: the local engine reads rotated files through ONE
decoder, so a TCP stream or an IP datagram whose pieces straddle a file boundary is still
reassembled; here each file has its own decoder, so such a message is lost (counted as
``tcp-incomplete`` / ``ip-fragments-incomplete``, and the stream's next segment may be
junk). Captures rotated by time or size split a message only when the cut falls between the
TCP segments of one message, microseconds apart; none of the test captures does.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import tempfile
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

import pyarrow as pa
import pyarrow.parquet as pq
from distributed import Client, Future, LocalCluster, wait

from analyzer.analysis import Analysis, capture_paths
from analyzer.correlate.store import CallStore
from analyzer.decode.pipeline import DecodeStats, Malformed, Unreachable
from analyzer.diagnose.security import SecurityWatch
from analyzer.diagnose.verdict import CallReport, diagnose
from analyzer.engines.table import from_table, in_input_order, merge_in_input_order, split_by_call_id, to_table
from analyzer.errors import UsageError
from analyzer.reader import MessageReader
from analyzer.sip.message import SipMessage

CONNECT_TIMEOUT_S = 10
# The scheduler of a cluster started here serves its status pages (and the dashboard when
# bokeh is installed) on this machine only, on any free port: never all interfaces or 8787.
LOOPBACK_HTTP = "127.0.0.1:0"
PARTS_PER_THREAD = 2  # partitions per worker thread: a slow partition does not hold up the job
ROW_GROUP_ROWS = 4096
"""Rows per Parquet row group of a part: the security watch reads a file's parts side by side,
holding one row group (and one batch of :data:`WATCH_BATCH_ROWS` messages) of each."""
WATCH_BATCH_ROWS = 256

Part: TypeAlias = "pa.Table | str | None"
"""One file's rows of one partition: a table, a Parquet file's path, or None (no rows)."""


@dataclass(frozen=True, slots=True)
class FileDecode:
    """What decoding one capture gives: facts for the client, and the rows by partition."""

    index: int
    path: str
    frames: int
    """Frames read: the next file's frame numbers start after these."""
    stats: DecodeStats
    """Frame numbers in it counted from 1 in this file."""
    body_malformed: int
    """How many of ``stats.malformed`` came before the decoder's ``finish`` (the rest after)."""
    last_msg_ns: int
    """Latest message time (HEP agents' times can be later than the last frame's)."""
    warning: str
    tail_rows: int = 0
    """Messages produced by the decoder's ``finish``."""
    parts: tuple[Part, ...] = ()


@dataclass(frozen=True, slots=True)
class PartitionResult:
    reports: list[CallReport]
    messages: pa.Table | None = None
    """With ``keep_messages``: the partition's rows in input order."""
    conversations: tuple[tuple[str, str, tuple[int, ...]], ...] = ()
    """With ``keep_messages``: (Call-ID, kind, row numbers in ``messages``) per conversation."""


# -- on a worker ------------------------------------------------------------------------
def decode_capture(path: str, index: int, partitions: int, out_dir: str | None) -> FileDecode:
    """Decode one capture into rows by partition (Parquet under ``out_dir`` when given)."""
    reader = MessageReader(path, finish=False)
    messages = list(reader)
    stats = reader.decoder.stats
    body = len(stats.malformed)
    tail_from = len(messages)
    messages += reader.decoder.finish()
    table = to_table(messages, file=index, tail_from=tail_from)
    parts: list[Part] = []
    for j, part in enumerate(split_by_call_id(table, partitions)):
        if not part.num_rows:
            parts.append(None)
        elif out_dir is None:
            parts.append(part)
        else:
            target = Path(out_dir, f"part-{j:05d}", f"file-{index:06d}.parquet")
            target.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(part, target, row_group_size=ROW_GROUP_ROWS)
            parts.append(str(target))
    last = max((m.origin.ts_ns for m in messages), default=0)
    warning = reader.capture.warning or ""
    tail = len(messages) - tail_from
    return FileDecode(index, path, reader.frames_read, stats, body, last, warning, tail, tuple(parts))


def correlate_partition(
    parts: Sequence[Part], offsets: Sequence[int], end_ns: int, icmp: tuple[Unreachable, ...], keep: bool
) -> PartitionResult:
    """Correlate and diagnose the conversations of one partition (all their messages are here)."""
    tables = [pq.read_table(p) if isinstance(p, str) else p for p in parts if p is not None]
    rows = in_input_order(tables)
    store = CallStore()
    index: dict[int, int] = {}
    for i, msg in enumerate(from_table(rows, offsets)):
        store.feed(msg)
        if keep:
            index[id(msg)] = i
    conversations = store.finish()
    reports = [diagnose(c, end_ns, icmp) for c in conversations]
    if not keep:
        return PartitionResult(reports)
    members = tuple((c.call_id, str(c.kind), tuple(index[id(m)] for m in c.messages)) for c in conversations)
    return PartitionResult(reports, rows, members)


def watch_capture(
    watch: SecurityWatch | None, decoded: FileDecode, offsets: Sequence[int], tail: bool
) -> SecurityWatch:
    """``watch`` (a new one for None) fed the messages of one capture in its decoder's order:
    those of the decoder's ``finish`` when ``tail``, else all the others."""
    # Changed in place: the client scattered it for this task alone, and releases it after.
    out = SecurityWatch() if watch is None else watch
    streams = [_batches(p) for p in decoded.parts if p is not None]
    for msg in merge_in_input_order(streams, offsets, tail=tail):
        out.message(msg)
    return out


def _batches(part: pa.Table | str) -> Iterator[pa.RecordBatch]:
    if not isinstance(part, str):
        yield from part.to_batches(max_chunksize=WATCH_BATCH_ROWS)
        return
    with pq.ParquetFile(part) as f:
        yield from f.iter_batches(batch_size=WATCH_BATCH_ROWS)


def _facts(decoded: FileDecode) -> FileDecode:
    """The decode without its rows: what the client fetches."""
    return dataclasses.replace(decoded, parts=())


def _part(decoded: FileDecode, j: int) -> Part:
    return decoded.parts[j]


# -- on the client ----------------------------------------------------------------------
def frame_offsets(decoded: Sequence[FileDecode]) -> list[int]:
    """Per file, the frames of the files before it (the local engine numbers on)."""
    out, total = [], 0
    for d in decoded:
        out.append(total)
        total += d.frames
    return out


def _shift_malformed(m: Malformed, offset: int) -> Malformed:
    # frame 0 means "no frame" (a TCP leftover without segments), it stays 0
    frame = m.frame + offset if m.frame else 0
    return dataclasses.replace(m, frame=frame, frames=tuple(f + offset for f in m.frames))


def merge_stats(decoded: Sequence[FileDecode], offsets: Sequence[int]) -> DecodeStats:
    """The stats one decoder would have kept over all the files, read one after the other.

    Malformed entries found by each file's ``finish`` go after every file's others: the
    local engine calls ``finish`` once, at the end.
    """
    out = DecodeStats(frames_by_reason=Counter())
    tails: list[Malformed] = []
    for d, off in zip(decoded, offsets, strict=True):
        st = d.stats
        out.frames += st.frames
        out.bytes += st.bytes
        out.sip_messages += st.sip_messages
        out.frames_by_reason.update(st.frames_by_reason)
        shifted = [_shift_malformed(m, off) for m in st.malformed]
        out.malformed += shifted[: d.body_malformed]
        tails += shifted[d.body_malformed :]
        out.unreachable += (dataclasses.replace(u, frame=u.frame + off) for u in st.unreachable)
        if out.first_ts_ns is None:
            out.first_ts_ns = st.first_ts_ns
        if st.last_ts_ns is not None:
            out.last_ts_ns = st.last_ts_ns
    out.malformed += tails
    return out


def default_partitions(client: Client) -> int:
    threads: dict[str, int] = client.nthreads()  # type: ignore[no-untyped-call]  # distributed is partly typed
    return max(1, PARTS_PER_THREAD * sum(threads.values()))


def analyze(
    inputs: Sequence[str | Path],
    client: Client,
    *,
    work_dir: str | Path | None = None,
    partitions: int | None = None,
    keep_messages: bool = False,
    timeout: float | None = None,
) -> Analysis:
    """:func:`analyzer.analysis.analyze` on the cluster behind ``client``; equal result.

    ``work_dir``: where workers write the shuffled rows as Parquet (on a real cluster, storage
    every worker and the client see at the same path); None keeps them in worker memory and
    moves them over Dask's own connections. ``keep_messages`` brings every message back to
    the client (for ladders and reports), which costs the client the memory of all of them.
    ``timeout``: seconds to wait for each stage (None: as long as it takes).
    """
    paths = capture_paths(list(inputs))
    if not paths:
        raise UsageError("no capture to analyse")
    if "-" in paths:
        raise UsageError("the dask engine reads files, not standard input")
    n = partitions if partitions is not None else default_partitions(client)
    if n < 1:
        raise UsageError(f"partitions must be at least 1, not {n}")
    run_dir = Path(work_dir, f"sipflow-{uuid.uuid4().hex}") if work_dir is not None else None
    futures: list[Future[Any]] = []
    try:
        out = str(run_dir) if run_dir is not None else None
        decodes = [client.submit(decode_capture, p, i, n, out, pure=False) for i, p in enumerate(paths)]
        futures += decodes
        facts = [client.submit(_facts, d, pure=False) for d in decodes]
        futures += facts
        decoded: list[FileDecode] = [f.result(timeout=timeout) for f in facts]  # the first bad file raises, in order
        offsets = frame_offsets(decoded)
        stats = merge_stats(decoded, offsets)
        end_ns = max(stats.last_ts_ns or 0, *(d.last_msg_ns for d in decoded))
        icmp = tuple(stats.unreachable)
        results: list[Future[Any]] = []
        for j in range(n):
            parts = [client.submit(_part, d, j, pure=False) for d in decodes]
            futures += parts
            results.append(client.submit(correlate_partition, parts, offsets, end_ns, icmp, keep_messages, pure=False))
        futures += results
        security = _watch(client, decodes, decoded, offsets, timeout)  # while the partitions run
        wait(results, timeout=timeout)  # type: ignore[no-untyped-call]
        gathered: list[PartitionResult] = client.gather(results)  # type: ignore[no-untyped-call]
    finally:
        client.cancel(futures)  # type: ignore[no-untyped-call]
        if run_dir is not None:
            shutil.rmtree(run_dir, ignore_errors=True)
    warnings = [f"{d.path}: {d.warning}" if len(paths) > 1 else d.warning for d in decoded if d.warning]
    name = paths[0] if len(paths) == 1 else f"{len(paths)} captures ({paths[0]} …)"
    reports = sorted((r for g in gathered for r in g.reports), key=lambda r: (r.start_ns, r.call_id, str(r.kind)))
    for r in reports:
        security.report(r)
    messages, by_call = _messages(gathered, offsets) if keep_messages else ([], {})
    return Analysis(name, stats, "; ".join(warnings), reports, messages, by_call, security.findings())


def _watch(
    client: Client,
    decodes: Sequence[Future[Any]],
    decoded: Sequence[FileDecode],
    offsets: Sequence[int],
    timeout: float | None,
) -> SecurityWatch:
    """One :class:`SecurityWatch` fed every message in input order by :func:`watch_capture`
    tasks, file after file, then again for the files whose decoder's ``finish`` gave messages.

    The client holds the watch between two tasks rather than chaining the tasks' futures: a
    chain would keep every file's watch in memory until the end, or leave tasks no client
    holds, which cancelling their inputs trips over (``stimulus_cancel`` asserts a holder).
    """
    steps = [(f, False) for f in decodes] + [(f, True) for f, d in zip(decodes, decoded, strict=True) if d.tail_rows]
    watch: SecurityWatch | None = None
    for decode, tail in steps:
        given = None if watch is None else client.scatter(watch, hash=False)  # type: ignore[no-untyped-call]
        task = client.submit(watch_capture, given, decode, offsets, tail, pure=False)
        try:
            watch = task.result(timeout=timeout)
        finally:
            client.cancel([task] if given is None else [task, given])  # type: ignore[no-untyped-call]
    assert watch is not None  # there is at least one capture
    return watch


def _messages(
    gathered: Sequence[PartitionResult], offsets: Sequence[int]
) -> tuple[list[SipMessage], dict[tuple[str, str], list[SipMessage]]]:
    """Every message in input order, and each conversation's, rebuilt from the partitions."""
    keyed: list[tuple[tuple[bool, int, int], SipMessage]] = []
    by_call: dict[tuple[str, str], list[SipMessage]] = {}
    for g in gathered:
        if g.messages is None:
            continue
        msgs = list(from_table(g.messages, offsets))
        order = zip(*(g.messages.column(c).to_pylist() for c in ("tail", "file", "seq")), strict=True)
        keyed += zip(order, msgs, strict=True)
        for call_id, kind, rows in g.conversations:
            by_call[(call_id, kind)] = [msgs[i] for i in rows]
    keyed.sort(key=lambda km: km[0])
    return [m for _, m in keyed], by_call


@contextlib.contextmanager
def connect(scheduler: str | None) -> Iterator[Client]:
    """A client of the scheduler at ``scheduler`` (``tcp://host:port``), or of a cluster of
    this machine's cores started for the run (on 127.0.0.1 only) and stopped after it.

    Raises :class:`UsageError` when the scheduler cannot be reached within
    :data:`CONNECT_TIMEOUT_S`.
    """
    if scheduler is None:
        workers = os.cpu_count() or 1
        with (
            LocalCluster(  # type: ignore[no-untyped-call]
                host="127.0.0.1",
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=LOOPBACK_HTTP,
            ) as cluster,
            Client(cluster) as client,  # type: ignore[no-untyped-call]
        ):
            yield client
        return
    try:
        client = Client(scheduler, timeout=CONNECT_TIMEOUT_S)  # type: ignore[no-untyped-call]
    except (OSError, TimeoutError, ValueError) as exc:
        raise UsageError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
    with client:
        yield client


@contextlib.contextmanager
def work_directory(work_dir: str | Path | None, scheduler: str | None) -> Iterator[str | None]:
    """Where the shuffle writes: ``work_dir`` when given; for a cluster started on this
    machine, a temporary directory (every worker sees it); for a remote scheduler without
    one, None (rows stay in worker memory: no path is known to be shared)."""
    if work_dir is not None:
        yield str(work_dir)
    elif scheduler is None:
        with tempfile.TemporaryDirectory(prefix="sipflow-dask-") as tmp:
            yield tmp
    else:
        yield None
