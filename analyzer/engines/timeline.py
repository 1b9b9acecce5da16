"""Several captures as one time line, for engines that decode each capture on its own.

The local engine (:class:`analyzer.reader.MergedReader`) merges the frames of several
captures with ``heapq.merge`` on (timestamp, file index) and numbers them 1..N in that
order, as ``mergecap -w`` does. An engine that decodes each file apart gets each file's
frame times back and computes here the same number for every (file, frame in file):
:func:`frame_numbers`. :func:`renumber` rewrites the ``frame``/``frames`` columns of
message rows (:mod:`analyzer.engines.table`) with it, and :func:`merged_order` sorts rows
the way one decoder fed the merged frames would have produced them.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

Stamps = npt.NDArray[np.int64]
"""One file's frame times (ns), in the file's order."""

MERGED_ORDER = [("tail", "ascending"), ("order", "ascending"), ("file", "ascending"), ("seq", "ascending")]
"""Rows sorted by this (after :func:`with_order`) are in the order the local engine feeds them."""


@dataclass(frozen=True, slots=True)
class FrameNumbers:
    """Merged frame number of every frame of every file: frame ``n`` (from 1) of file ``f``
    is ``flat[starts[f] + n - 1]``."""

    flat: npt.NDArray[np.int64]
    starts: npt.NDArray[np.int64]

    def of(self, file: int, frame: int) -> int:
        """The merged number of one frame (0, "no frame", stays 0)."""
        return int(self.flat[self.starts[file] + frame - 1]) if frame else 0

    def many(self, files: npt.NDArray[np.int64], frames: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        out: npt.NDArray[np.int64] = self.flat[self.starts[files] + frames - 1]
        return out


def frame_numbers(stamps: Sequence[Stamps]) -> FrameNumbers:
    """Number the frames of several files as :class:`analyzer.reader.MergedReader` does.

    When every file's times are non-decreasing, ``heapq.merge`` on (time, file) is a stable
    sort of the concatenated frames by time (ties: the earlier file, then the file's own
    order), done here by numpy. A file whose times go backwards (clock steps, reordered
    pcapng interfaces) is merged by a real ``heapq.merge``, whose result then depends on
    where the heads of the files stand, exactly as in the local engine (about a second per
    million frames).
    """
    lengths = np.array([len(s) for s in stamps], dtype=np.int64)
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64)
    total = int(lengths.sum())
    flat = np.empty(total, dtype=np.int64)
    if all(bool(np.all(s[1:] >= s[:-1])) for s in stamps):
        order = np.argsort(np.concatenate(stamps) if total else flat, kind="stable")
        flat[order] = np.arange(1, total + 1, dtype=np.int64)
    else:
        tagged = [
            zip(s.tolist(), itertools.repeat(f), range(start, start + len(s)))
            for f, (s, start) in enumerate(zip(stamps, starts.tolist(), strict=True))
        ]
        merged = heapq.merge(*tagged)  # items (time, file, place): unique (time, file) as MergedReader's key
        flat[np.fromiter((place for _, _, place in merged), dtype=np.int64, count=total)] = np.arange(
            1, total + 1, dtype=np.int64
        )
    return FrameNumbers(flat, starts)


def first_and_last(numbers: FrameNumbers, stamps: Sequence[Stamps]) -> tuple[int | None, int | None]:
    """Times of the merged capture's first and last frames (None without frames)."""
    if not len(numbers.flat):
        return None, None
    times = np.concatenate(stamps)
    return int(times[int(np.argmin(numbers.flat))]), int(times[int(np.argmax(numbers.flat))])


def renumber(table: pa.Table, numbers: FrameNumbers) -> pa.Table:
    """``table`` with ``frame`` and ``frames`` as the merged capture numbers them (each
    row's ``file`` says whose frames they are)."""
    if not table.num_rows:
        return table
    files = table.column("file").to_numpy().astype(np.int64)
    frame = numbers.many(files, table.column("frame").to_numpy())
    lists = table.column("frames").combine_chunks()
    values = lists.flatten().to_numpy()
    owner = files[pc.list_parent_indices(lists).to_numpy()]
    lengths = pc.list_value_length(lists).to_numpy()
    offsets = np.concatenate(([0], np.cumsum(lengths))).astype(np.int32)
    frames = pa.ListArray.from_arrays(pa.array(offsets), pa.array(numbers.many(owner, values), pa.int64()))
    i = table.schema.get_field_index("frame")
    table = table.set_column(i, table.schema.field(i), pa.array(frame, pa.int64()))
    i = table.schema.get_field_index("frames")
    return table.set_column(i, table.schema.field(i), frames.cast(table.schema.field(i).type))


def with_order(table: pa.Table) -> pa.Table:
    """``table`` (renumbered) with an ``order`` column: the merged number of the frame that
    completed each message (``frame``: one decoder gives a message out when it is fed that
    frame), 0 for the rows of a decoder's ``finish`` (``tail``, ordered by file instead)."""
    tail = table.column("tail")
    order = pc.if_else(tail, pa.scalar(0, pa.int64()), table.column("frame"))
    return table.append_column("order", order)


def merged_order(table: pa.Table) -> pa.Table:
    """Rows of several files (renumbered) in the order the local engine feeds them."""
    return with_order(table).sort_by(MERGED_ORDER).drop_columns(["order"])


def row_keys(table: pa.Table | pa.RecordBatch) -> Iterator[tuple[bool, int, int, int]]:
    """Each row's :data:`MERGED_ORDER` key (renumbered rows)."""
    tail = table.column("tail").to_pylist()
    frame = table.column("frame").to_pylist()
    file = table.column("file").to_pylist()
    seq = table.column("seq").to_pylist()
    for t, fr, fi, s in zip(tail, frame, file, seq, strict=True):
        yield (t, 0 if t else fr, fi, s)
