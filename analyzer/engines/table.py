"""SIP messages as an Arrow table and back: the form in which messages leave a worker.

One row per message: every :class:`~analyzer.sip.message.Origin` field, the Call-ID (to
shuffle on), the defects and the raw bytes, plus where the message sits in the input
(``file``, ``seq``, ``tail``) so that rows from many places can be put back in the order
one decoder would have produced them. Everything else in a :class:`SipMessage` is what
:func:`analyzer.sip.parser.parse_message` makes of the raw bytes, so it is rebuilt by
parsing them again rather than stored twice: the parser is the single definition of a
message, and a table cannot disagree with it.

The Origin columns follow ``Origin``'s own fields, so a field added there travels too.
"""

from __future__ import annotations

import heapq
import zlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, get_type_hints

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from analyzer.sip.message import Origin, SipMessage
from analyzer.sip.parser import parse_message

# Arrow type of each Python type used in Origin. Strings are "large" (64-bit offsets):
# one capture can hold more than 2 GB of them.
_ARROW_TYPES: dict[object, pa.DataType] = {
    int: pa.int64(),
    str: pa.large_string(),
    tuple[int, ...]: pa.list_(pa.int64()),
}


def _origin_columns() -> list[pa.Field]:
    """One column per Origin field; an annotation not mapped above fails here, loudly."""
    hints = get_type_hints(Origin)
    return [pa.field(name, _ARROW_TYPES[hints[name]], nullable=False) for name in Origin._fields]


ORIGIN_COLUMNS: tuple[str, ...] = Origin._fields
SCHEMA = pa.schema(
    [
        pa.field("file", pa.int32(), nullable=False),
        pa.field("seq", pa.int64(), nullable=False),
        pa.field("tail", pa.bool_(), nullable=False),
        *_origin_columns(),
        pa.field("call_id", pa.large_string(), nullable=False),
        pa.field("defects", pa.list_(pa.large_string()), nullable=False),
        pa.field("raw", pa.large_binary(), nullable=False),
    ]
)
"""``file``: index of the capture among the inputs; ``seq``: position of the message in
what that file's decoder produced; ``tail``: produced by the decoder's ``finish`` (the
local engine feeds those after every file)."""

INPUT_ORDER = [("tail", "ascending"), ("file", "ascending"), ("seq", "ascending")]


def to_table(messages: Sequence[SipMessage], *, file: int = 0, tail_from: int | None = None) -> pa.Table:
    """The messages of one capture as rows, in the order given; ``messages[tail_from:]``
    are marked as coming from the decoder's ``finish``."""
    n = len(messages)
    tail_at = n if tail_from is None else tail_from
    origins = list(zip(*(m.origin for m in messages), strict=True)) if n else [() for _ in ORIGIN_COLUMNS]
    columns: dict[str, Any] = {
        "file": np.full(n, file, dtype=np.int32),
        "seq": np.arange(n, dtype=np.int64),
        "tail": np.arange(n) >= tail_at,
    }
    columns.update(zip(ORIGIN_COLUMNS, (list(values) for values in origins), strict=True))
    columns["call_id"] = [m.call_id for m in messages]
    columns["defects"] = [list(m.defects) for m in messages]
    columns["raw"] = [m.raw for m in messages]
    return pa.Table.from_pydict(columns, schema=SCHEMA)


def from_table(table: pa.Table | pa.RecordBatch, frame_offsets: Sequence[int] = ()) -> Iterator[SipMessage]:
    """The messages of ``table`` (or of one batch of its rows), in row order, equal to those
    :func:`to_table` was given.

    ``frame_offsets[file]`` is added to frame numbers: a file decoded on its own counts
    frames from 1, where the local engine counts on across the files of one analysis.
    """
    names = ["file", *ORIGIN_COLUMNS, "defects", "raw"]
    columns = [table.column(name).to_pylist() for name in names]
    i_frame, i_frames = 1 + ORIGIN_COLUMNS.index("frame"), 1 + ORIGIN_COLUMNS.index("frames")
    for row in zip(*columns, strict=True):
        fields = list(row[1:-2])
        if frame_offsets and (offset := frame_offsets[row[0]]):
            fields[i_frame - 1] += offset
            fields[i_frames - 1] = [f + offset for f in fields[i_frames - 1]]
        fields[i_frames - 1] = tuple(fields[i_frames - 1])
        msg = parse_message(row[-1], Origin(*fields))
        defects = tuple(row[-2])
        if msg.defects != defects:
            # the decoder adds what the bytes alone cannot show (``cut-short``: the IP
            # length said more than was captured)
            msg = msg._replace(defects=defects)
        yield msg


def partition_of(call_id: str, partitions: int) -> int:
    """The partition of a Call-ID: a stable hash (CRC-32; Python's ``hash`` of a str
    changes from one process to the next), so every worker agrees."""
    return zlib.crc32(call_id.encode("utf-8")) % partitions


def split_by_call_id(table: pa.Table, partitions: int) -> list[pa.Table]:
    """``table`` cut into ``partitions`` tables, every row of one Call-ID in the same one;
    rows keep their order within each part."""
    ids = table.column("call_id").to_pylist()
    parts = np.fromiter((partition_of(c, partitions) for c in ids), dtype=np.int64, count=len(ids))
    order = np.argsort(parts, kind="stable")
    counts = np.bincount(parts, minlength=partitions)
    ordered = table.take(pa.array(order))
    starts = np.concatenate(([0], np.cumsum(counts)))
    return [ordered.slice(int(starts[j]), int(counts[j])) for j in range(partitions)]


def in_input_order(tables: Sequence[pa.Table]) -> pa.Table:
    """Rows of several tables (several files, one partition) in the order one decoder reading
    the files one after the other would have produced them."""
    if not tables:
        return SCHEMA.empty_table()
    return pa.concat_tables(tables).sort_by(INPUT_ORDER)


InputKey = tuple[bool, int, int]
"""(tail, file, seq) of a row: sorting on it gives :data:`INPUT_ORDER`."""


def merge_in_input_order(
    streams: Iterable[Iterable[pa.RecordBatch]], frame_offsets: Sequence[int] = (), *, tail: bool | None = None
) -> Iterator[SipMessage]:
    """The messages of several streams of row batches, each stream in input order (one
    partition of one file: :func:`split_by_call_id` keeps the order), merged back into input
    order, as :func:`in_input_order` would put them, while holding one batch of each stream.

    ``tail``: only the rows of the decoders' ``finish`` (True), only the others (False), or all.
    """
    keyed = [_keyed(batches, frame_offsets, tail) for batches in streams]
    for _, msg in heapq.merge(*keyed, key=lambda km: km[0]):
        yield msg


def _keyed(
    batches: Iterable[pa.RecordBatch], frame_offsets: Sequence[int], tail: bool | None
) -> Iterator[tuple[InputKey, SipMessage]]:
    for batch in batches:
        if tail is not None:
            rows = batch.column("tail")
            batch = batch.filter(rows if tail else pc.invert(rows))
        keys = zip(*(batch.column(name).to_pylist() for name, _ in INPUT_ORDER), strict=True)
        yield from zip(keys, from_table(batch, frame_offsets), strict=True)
