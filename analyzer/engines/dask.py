"""The analysis on a Dask distributed cluster: many captures, one job, the same result.

    capture 1 ─► decode ─► rows by Call-ID ─┐          ┌─► partition 1: dedup, correlate, diagnose ─┐
    capture 2 ─► decode ─► rows by Call-ID ─┼─shuffle─►┼─► partition 2: dedup, correlate, diagnose ─┼─► reports
    …                                       ┘          └─► …                                        ┘

1. One task per capture decodes it with a fresh :class:`~analyzer.decode.pipeline.Decoder`
   into an Arrow table of messages (:mod:`analyzer.engines.table`), cut into one part per
   partition by a stable hash of the Call-ID, written as Parquet under a shared work
   directory or kept in worker memory. Only small facts come back to the client: the
   file's frame times (8 bytes a frame), :class:`DecodeStats`, the span of message times,
   the truncation warning.
2. The client numbers the frames of all files as the local engine's merged time line does
   (:func:`analyzer.engines.timeline.frame_numbers`: ``heapq.merge`` on (time, file), as
   ``mergecap -w``), merges the decode stats in that order, and takes the capture's end
   time and its ICMP unreachable list from all files: diagnosis needs both, and they are
   global. The frame numbers go to every task once (scattered), and each task renumbers
   its rows' ``frame``/``frames`` with them.
3. One task per partition reads its part of every file, puts the rows in the order one
   decoder fed the merged frames would have produced them (by the merged number of the
   frame that completed each message), drops a capture point's copy of a message another
   file already delivered (:class:`~analyzer.correlate.dedup.Dedup`, the file index as the
   capture point: copies share the Call-ID, so they meet in one partition), feeds a
   :class:`CallStore` and diagnoses each conversation, as :func:`analyzer.analysis.analyze`
   does. The copies are counted in ``Analysis.copies``.
4. Meanwhile the capture-wide :class:`SecurityWatch`, which needs every message in input
   order and cannot be split by Call-ID, goes through the time line group by group: files
   whose frames interleave in the merged order, or whose messages lie within the dedup
   window of each other, form one group (rotated files of one capture point: one file per
   group; captures of several points: their overlapping files together). One task per group
   merges the group's parts back into merged order batch by batch, drops the copies with
   its own :class:`Dedup` (it sees every message that could match, so it decides as the
   partitions do) and feeds the watch; the client hands the watch from one task to the next
   (then once more through the files whose decoder's ``finish`` gave messages: the local
   engine feeds those last), and at the end feeds it the final reports.

Differences from the local engine, all from decoding each file with its own decoder:

- The local engine reads all files through ONE decoder, so a TCP stream or an IP datagram
  whose pieces straddle a file boundary is still reassembled; here such a message is lost
  (counted as ``tcp-incomplete`` / ``ip-fragments-incomplete``, and the stream's next
  segment may be junk). Captures rotated by time or size split a message only when the cut
  falls between the TCP segments of one message, microseconds apart.
- More generally, the local decoder can build one message from frames of two files; here
  never. Two capture points holding the same TCP connection are the main case: the local
  decoder takes the second point's segments for TCP retransmissions and gives each message
  once (mostly not counted in ``copies``), where here each file gives it and the copies are
  dropped by the dedup rule (counted in ``copies``). The calls and messages agree, the
  ``sip``/``tcp-sip-segment`` frame reasons and ``copies`` do not (``tcp_large_invite.pcap``
  and a copy 4 ms later: 2 copies locally, 21 here).
- What the decoders' ``finish`` reports (leftover TCP bytes, incomplete fragments) is
  listed file by file (TCP first), where one decoder lists it by stream age.
- The capture's end time (for calls still open) counts the copies' times too; it differs
  only when a dropped copy is the latest thing in all captures (a HEP agent's clock).
- Beyond :data:`analyzer.correlate.dedup.MAX_TRACKED` messages within one dedup window,
  each partition's dedup forgets differently from one over every message.
"""

from __future__ import annotations

import array
import contextlib
import dataclasses
import heapq
import os
import shutil
import tempfile
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from distributed import Client, Future, LocalCluster, wait

from analyzer.analysis import Analysis, capture_paths, usable_captures
from analyzer.capture.source import open_stream, read_frames, read_once
from analyzer.capture.stats import CaptureStats
from analyzer.correlate.dedup import WINDOW_NS, Dedup
from analyzer.correlate.model import ConversationKey
from analyzer.correlate.store import CallStore
from analyzer.decode.pipeline import Decoder, DecodeStats, Malformed, Unreachable
from analyzer.diagnose.security import SecurityWatch
from analyzer.diagnose.verdict import CallReport, diagnose
from analyzer.engines.table import SCHEMA, from_table, split_by_call_id, to_table
from analyzer.engines.timeline import (
    FrameNumbers,
    Stamps,
    first_and_last,
    frame_numbers,
    merged_order,
    renumber,
    row_keys,
)
from analyzer.errors import UsageError
from analyzer.limits import DEFAULT_LIMITS, Limits
from analyzer.sip.message import SipMessage

CONNECT_TIMEOUT_S = 10
# The scheduler of a cluster started here serves its status pages (and the dashboard when
# bokeh is installed) on this machine only, on any free port: never all interfaces or 8787.
LOOPBACK_HTTP = "127.0.0.1:0"
PARTS_PER_THREAD = 2  # partitions per worker thread: a slow partition does not hold up the job
ROW_GROUP_ROWS = 4096
"""Rows per Parquet row group of a part: the security watch reads a group's parts side by
side, holding one row group (and one batch of :data:`WATCH_BATCH_ROWS` messages) of each."""
WATCH_BATCH_ROWS = 256

Part: TypeAlias = "pa.Table | str | None"
"""One file's rows of one partition: a table, a Parquet file's path, or None (no rows)."""


def _no_stamps() -> Stamps:
    return np.zeros(0, dtype=np.int64)


@dataclass(frozen=True, slots=True)
class FileDecode:
    """What decoding one capture gives: facts for the client, and the rows by partition."""

    index: int
    path: str
    frames: int
    """Frames read."""
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
    stamps: Stamps = field(default_factory=_no_stamps)
    """Time of each frame, in the file's order (to number the frames of the merged time line)."""
    malformed_at: tuple[int, ...] = ()
    """For each of the first ``body_malformed`` entries of ``stats.malformed``: the frame
    (in this file) whose decoding found it."""
    first_msg_ns: int = 0
    """Earliest message time."""
    rows: int = 0
    """Messages in all (``tail_rows`` of them from ``finish``)."""


@dataclass(frozen=True, slots=True)
class PartitionResult:
    reports: list[CallReport]
    messages: pa.Table | None = None
    """With ``keep_messages``: the partition's rows in merged order, without the copies."""
    conversations: tuple[tuple[ConversationKey, tuple[int, ...]], ...] = ()
    """With ``keep_messages``: (its key, row numbers in ``messages``) per conversation."""
    copies: int = 0
    """Messages dropped as another capture point's copy."""


# -- on a worker ------------------------------------------------------------------------
def decode_capture(
    path: str, index: int, partitions: int, out_dir: str | None, limits: Limits = DEFAULT_LIMITS
) -> FileDecode:
    """Decode one capture into rows by partition (Parquet under ``out_dir`` when given)."""
    capture = CaptureStats(path)
    decoder = Decoder(limits)
    stats = decoder.stats
    messages: list[SipMessage] = []
    stamps = array.array("q")
    found_at: list[int] = []
    with open_stream(path) as stream:
        feed, malformed = decoder.feed, stats.malformed
        for number, (ts_ns, linktype, data, _orig) in enumerate(read_frames(stream, capture), 1):
            stamps.append(ts_ns)
            out = feed(number, ts_ns, linktype, data)
            if out:
                messages += out
            if len(malformed) > len(found_at):
                found_at += [number] * (len(malformed) - len(found_at))
    tail_from = len(messages)
    messages += decoder.finish()
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
    times = [m.origin.ts_ns for m in messages]
    tail = len(messages) - tail_from
    return FileDecode(
        index,
        path,
        len(stamps),
        stats,
        len(found_at),
        max(times, default=0),
        capture.warning or "",
        tail,
        tuple(parts),
        np.frombuffer(stamps, dtype=np.int64).copy(),
        tuple(found_at),
        min(times, default=0),
        len(messages),
    )


def correlate_partition(
    parts: Sequence[Part], numbers: FrameNumbers, end_ns: int, icmp: tuple[Unreachable, ...], keep: bool
) -> PartitionResult:
    """Correlate and diagnose the conversations of one partition (all their messages are here,
    and all the copies of each: they share its Call-ID)."""
    tables = [pq.read_table(p) if isinstance(p, str) else p for p in parts if p is not None]
    rows = merged_order(renumber(pa.concat_tables(tables), numbers)) if tables else SCHEMA.empty_table()
    tails, files = rows.column("tail").to_pylist(), rows.column("file").to_pylist()
    dedup = Dedup()
    store = CallStore()
    kept: list[int] = []
    index: dict[int, int] = {}
    for i, msg in enumerate(from_table(rows)):
        if not tails[i] and dedup.copy(msg, files[i]):  # the local engine dedups all but ``finish``'s
            continue
        store.feed(msg)
        if keep:
            index[id(msg)] = len(kept)
            kept.append(i)
    conversations = store.finish()
    reports = [diagnose(c, end_ns, icmp) for c in conversations]
    if not keep:
        return PartitionResult(reports, copies=dedup.copies)
    members = tuple((c.key, tuple(index[id(m)] for m in c.messages)) for c in conversations)
    return PartitionResult(reports, rows.take(pa.array(kept, pa.int64())), members, dedup.copies)


def watch_captures(
    watch: SecurityWatch | None, decoded: Sequence[FileDecode], numbers: FrameNumbers, tail: bool
) -> SecurityWatch:
    """``watch`` (a new one for None) fed the messages of a group of captures in merged order,
    without the copies: those of the decoders' ``finish`` when ``tail`` (not deduplicated, as
    in the local engine), else all the others."""
    # Changed in place: the client scattered it for this task alone, and releases it after.
    out = SecurityWatch() if watch is None else watch
    streams = [_keyed(_batches(p), numbers, tail) for d in decoded for p in d.parts if p is not None]
    merged = heapq.merge(*streams, key=lambda km: km[0])
    if tail:
        for _, msg in merged:
            out.message(msg)
        return out
    dedup = Dedup()
    for key, msg in merged:
        if not dedup.copy(msg, key[2]):
            out.message(msg)
    return out


def _keyed(
    batches: Iterator[pa.RecordBatch], numbers: FrameNumbers, tail: bool
) -> Iterator[tuple[tuple[bool, int, int, int], SipMessage]]:
    """One file's part, renumbered, as (merged-order key, message); each part is in its
    file's order, which the merged order keeps."""
    for batch in batches:
        rows = batch.column("tail")
        table = renumber(pa.Table.from_batches([batch.filter(rows if tail else pc.invert(rows))]), numbers)
        yield from zip(row_keys(table), from_table(table), strict=True)


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
def _renumber_malformed(m: Malformed, file: int, numbers: FrameNumbers) -> Malformed:
    # frame 0 means "no frame" (a TCP leftover without segments), it stays 0
    return m._replace(frame=numbers.of(file, m.frame), frames=tuple(numbers.of(file, f) for f in m.frames))


def _leftover_order(item: tuple[int, int, Malformed]) -> tuple[bool, int, int]:
    file, i, m = item
    return (m.reason == "ip-fragments-incomplete", file, i)


def merge_stats(decoded: Sequence[FileDecode], numbers: FrameNumbers) -> DecodeStats:
    """The stats one decoder fed the merged frames would have kept.

    Malformed entries and ICMP errors go in the merged order of the frames that revealed
    them; those found by each file's ``finish`` go after every file's others (the local
    engine calls ``finish`` once, at the end), file by file, TCP leftovers first.
    """
    out = DecodeStats(frames_by_reason=Counter())
    body: list[tuple[int, int, Malformed]] = []
    tails: list[tuple[int, int, Malformed]] = []
    icmp: list[Unreachable] = []
    for d in decoded:
        st, f = d.stats, d.index
        out.frames += st.frames
        out.bytes += st.bytes
        out.sip_messages += st.sip_messages
        out.frames_by_reason.update(st.frames_by_reason)
        out.limits.update(st.limits)
        renumbered = [_renumber_malformed(m, f, numbers) for m in st.malformed]
        body += ((numbers.of(f, at), i, m) for i, (at, m) in enumerate(zip(d.malformed_at, renumbered, strict=False)))
        tails += ((f, i, m) for i, m in enumerate(renumbered[d.body_malformed :]))
        icmp += (u._replace(frame=numbers.of(f, u.frame)) for u in st.unreachable)
    body.sort(key=lambda x: (x[0], x[1]))  # merged numbers are unique per (file, frame)
    tails.sort(key=_leftover_order)
    out.malformed = [m for _, _, m in body] + [m for _, _, m in tails]
    out.unreachable = sorted(icmp, key=lambda u: u.frame)
    out.first_ts_ns, out.last_ts_ns = first_and_last(numbers, [d.stamps for d in decoded])
    return out


def watch_groups(decoded: Sequence[FileDecode], numbers: FrameNumbers) -> list[list[int]]:
    """Files with messages, cut into groups the security watch can go through one after the
    other: within a group frames interleave or messages may be copies of each other; between
    groups neither (their merged frame ranges are apart and their messages further apart than
    the dedup window). Groups in merged order, files in a group by index."""
    live = [d for d in decoded if d.rows > d.tail_rows]
    parent = {d.index: d.index for d in live}

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    # messages within the dedup window: the same group (a sweep over time spans)
    end, first = 0, -1
    for d in sorted(live, key=lambda d: d.first_msg_ns):
        if first >= 0 and d.first_msg_ns - end <= WINDOW_NS:
            parent[root(d.index)] = root(first)
            end = max(end, d.last_msg_ns)
        else:
            first, end = d.index, d.last_msg_ns
    # then whole groups whose merged frame ranges overlap (a sweep over their hulls)
    hulls: dict[int, tuple[int, int, list[int]]] = {}
    for d in live:
        own = numbers.flat[numbers.starts[d.index] : numbers.starts[d.index] + d.frames]
        lo, hi = int(own.min()), int(own.max())
        r = root(d.index)
        was = hulls.get(r)
        hulls[r] = (lo, hi, [d.index]) if was is None else (min(lo, was[0]), max(hi, was[1]), [*was[2], d.index])
    groups: list[tuple[int, int, list[int]]] = []
    for lo, hi, files in sorted(hulls.values()):
        if groups and lo <= groups[-1][1]:
            glo, ghi, gfiles = groups[-1]
            groups[-1] = (glo, max(ghi, hi), gfiles + files)
        else:
            groups.append((lo, hi, files))
    return [sorted(files) for _, _, files in groups]


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
    limits: Limits | None = None,
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
    if any(read_once(p) for p in paths):
        raise UsageError("the dask engine reads files, not standard input or a pipe")
    paths, skipped = usable_captures(paths)
    n = partitions if partitions is not None else default_partitions(client)
    if n < 1:
        raise UsageError(f"partitions must be at least 1, not {n}")
    run_dir = Path(work_dir, f"sipflow-{uuid.uuid4().hex}") if work_dir is not None else None
    futures: list[Future[Any]] = []
    try:
        out = str(run_dir) if run_dir is not None else None
        lim = limits if limits is not None else DEFAULT_LIMITS
        decodes = [client.submit(decode_capture, p, i, n, out, lim, pure=False) for i, p in enumerate(paths)]
        futures += decodes
        facts = [client.submit(_facts, d, pure=False) for d in decodes]
        futures += facts
        decoded: list[FileDecode] = [f.result(timeout=timeout) for f in facts]  # the first bad file raises, in order
        numbers = frame_numbers([d.stamps for d in decoded])
        stats = merge_stats(decoded, numbers)
        end_ns = max(stats.last_ts_ns or 0, *(d.last_msg_ns for d in decoded))
        icmp = tuple(stats.unreachable)
        shared: Future[Any] = client.scatter(numbers, broadcast=True, hash=False)  # type: ignore[no-untyped-call]
        futures.append(shared)
        results: list[Future[Any]] = []
        for j in range(n):
            parts = [client.submit(_part, d, j, pure=False) for d in decodes]
            futures += parts
            results.append(client.submit(correlate_partition, parts, shared, end_ns, icmp, keep_messages, pure=False))
        futures += results
        steps = [([decodes[i] for i in g], False) for g in watch_groups(decoded, numbers)]
        steps += [([f], True) for f, d in zip(decodes, decoded, strict=True) if d.tail_rows]
        security = _watch(client, steps, shared, timeout)  # while the partitions run
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
    messages, by_call = _messages(gathered) if keep_messages else ([], {})
    copies = sum(g.copies for g in gathered)
    return Analysis(
        name,
        stats,
        "; ".join(warnings),
        reports,
        messages,
        by_call,
        security.findings(),
        copies=copies,
        skipped=skipped,
    )


def _watch(
    client: Client,
    steps: Sequence[tuple[list[Future[Any]], bool]],
    numbers: Future[Any] | FrameNumbers,
    timeout: float | None,
) -> SecurityWatch:
    """One :class:`SecurityWatch` fed every message in merged order by :func:`watch_captures`
    tasks, one per step: (a group of files' decodes, whether for their decoders' ``finish``).

    The client holds the watch between two tasks rather than chaining the tasks' futures: a
    chain would keep every file's watch in memory until the end, or leave tasks no client
    holds, which cancelling their inputs trips over (``stimulus_cancel`` asserts a holder).
    """
    watch: SecurityWatch | None = None
    for decodes, tail in steps:
        given = None if watch is None else client.scatter(watch, hash=False)  # type: ignore[no-untyped-call]
        task = client.submit(watch_captures, given, decodes, numbers, tail, pure=False)
        try:
            watch = task.result(timeout=timeout)
        finally:
            client.cancel([task] if given is None else [task, given])  # type: ignore[no-untyped-call]
    return SecurityWatch() if watch is None else watch  # no step: no message at all


def _messages(
    gathered: Sequence[PartitionResult],
) -> tuple[list[SipMessage], dict[ConversationKey, list[SipMessage]]]:
    """Every message in merged order, and each conversation's, rebuilt from the partitions."""
    keyed: list[tuple[tuple[bool, int, int, int], SipMessage]] = []
    by_call: dict[ConversationKey, list[SipMessage]] = {}
    for g in gathered:
        if g.messages is None:
            continue
        msgs = list(from_table(g.messages))
        keyed += zip(row_keys(g.messages), msgs, strict=True)
        for key, rows in g.conversations:
            by_call[key] = [msgs[i] for i in rows]
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
