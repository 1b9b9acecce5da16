"""SIP messages to Arrow rows and back: every message of every capture survives unchanged."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from analyzer.engines.table import (
    ORIGIN_COLUMNS,
    SCHEMA,
    from_table,
    in_input_order,
    merge_in_input_order,
    partition_of,
    split_by_call_id,
    to_table,
)
from analyzer.errors import CaptureError
from analyzer.reader import read_messages
from analyzer.sip.message import Origin, SipMessage
from analyzer.sip.parser import parse_message
from tests.oracle import SAMPLE_PCAPS, SHARED_PCAPS

CAPTURE_NAMES = (".pcap", ".pcapng", ".cap", ".gz", ".libpcap")


def captures() -> list[Path]:
    found = [p for root in (SHARED_PCAPS, SAMPLE_PCAPS) for p in sorted(root.rglob("*")) if p.is_file()]
    return [p for p in found if p.name.endswith(CAPTURE_NAMES)]


def readable(path: Path) -> list[SipMessage]:
    try:
        return list(read_messages(path))
    except CaptureError:
        return []


def test_every_message_of_every_capture_comes_back_equal() -> None:
    paths = captures()
    assert len(paths) >= 100
    total = 0
    for path in paths:
        msgs = readable(path)
        back = list(from_table(to_table(msgs, file=3)))
        assert back == msgs, path
        total += len(msgs)
    assert total > 7000


def test_schema_follows_origin() -> None:
    assert Origin._fields == ORIGIN_COLUMNS
    assert SCHEMA.names == ["file", "seq", "tail", *Origin._fields, "call_id", "defects", "raw"]


def _message(call_id: str, frame: int, *, frames: tuple[int, ...] = ()) -> SipMessage:
    raw = (
        f"OPTIONS sip:a@example.com SIP/2.0\r\nCall-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    origin = Origin(frame, frames or (frame,), 1_000 * frame, "192.0.2.1", 5060, "192.0.2.2", 5080, "tcp", "vlan")
    return parse_message(raw, origin)


def test_a_defect_added_by_the_decoder_is_kept() -> None:
    # ``cut-short`` comes from the IP length, not the bytes: parsing again cannot find it.
    msg = _message("cut@x", 4)
    msg = msg._replace(defects=(*msg.defects, "cut-short"))
    (back,) = from_table(to_table([msg]))
    assert back.defects == ("cut-short",)
    assert back == msg


def test_frame_offsets_number_on_per_file() -> None:
    table = in_input_order([to_table([_message("a", 2, frames=(1, 2))], file=1), to_table([_message("b", 5)], file=0)])
    back = list(from_table(table, frame_offsets=[0, 100]))
    assert [(m.call_id, m.frame, m.origin.frames) for m in back] == [("b", 5, (5,)), ("a", 102, (101, 102))]


def test_input_order_puts_the_decoders_finish_last() -> None:
    first = to_table([_message("a", 1), _message("b", 2), _message("c", 3)], file=0, tail_from=2)
    second = to_table([_message("d", 1)], file=1)
    rows = in_input_order([second, first])
    assert rows.column("call_id").to_pylist() == ["a", "b", "d", "c"]
    assert rows.column("tail").to_pylist() == [False, False, False, True]
    assert in_input_order([]).num_rows == 0


def test_partition_of_is_a_stable_hash() -> None:
    # CRC-32, the same in every process (Python's str hash is salted per process)
    assert partition_of("abc", 1000) == 891568578 % 1000 == 578
    assert partition_of("", 7) == 0
    assert partition_of("a84b4c76e66710@pc33.atlanta.com", 16) == partition_of("a84b4c76e66710@pc33.atlanta.com", 16)


def test_split_keeps_each_call_id_together_in_order() -> None:
    ids = ["x", "y", "x", "z", "y", "x"]
    table = to_table([_message(c, i + 1) for i, c in enumerate(ids)])
    parts = split_by_call_id(table, 4)
    assert len(parts) == 4 and sum(p.num_rows for p in parts) == 6
    for part in parts:
        rows = part.to_pydict()
        assert all(partition_of(c, 4) == parts.index(part) for c in rows["call_id"])
        assert rows["seq"] == sorted(rows["seq"])
    (home,) = (p for p in parts if "x" in p.column("call_id").to_pylist())
    rows = home.to_pydict()
    assert [f for c, f in zip(rows["call_id"], rows["frame"], strict=True) if c == "x"] == [1, 3, 6]


@pytest.mark.parametrize("name", ["tcp_large_invite.pcap", "ipv6_fragmented.pcap"])
def test_parquet_round_trip(name: str, tmp_path: Path) -> None:
    msgs = list(read_messages(SAMPLE_PCAPS / name))
    pq.write_table(to_table(msgs), tmp_path / "m.parquet")
    back = list(from_table(pq.read_table(tmp_path / "m.parquet")))
    assert back == msgs
    assert len(back) == {"tcp_large_invite.pcap": 21, "ipv6_fragmented.pcap": 14}[name]


def test_merge_puts_the_parts_of_files_back_in_input_order() -> None:
    # two files cut by Call-ID into 3 parts, read 2 rows at a time: the rows come back as
    # one decoder would have produced them, the decoders' ``finish`` rows on their own
    first = to_table([_message(c, i + 1) for i, c in enumerate("abcabd")], file=0, tail_from=5)
    second = to_table([_message(c, i + 1) for i, c in enumerate("ebe")], file=1, tail_from=2)
    streams = [part.to_batches(max_chunksize=2) for t in (first, second) for part in split_by_call_id(t, 3)]
    merged = list(merge_in_input_order(streams, [0, 10]))
    assert merged == list(from_table(in_input_order([first, second]), [0, 10]))
    assert [(m.call_id, m.frame) for m in merged] == [
        ("a", 1), ("b", 2), ("c", 3), ("a", 4), ("b", 5), ("e", 11), ("b", 12), ("d", 6), ("e", 13),
    ]  # fmt: skip
    for tail, frames in ((False, [1, 2, 3, 4, 5, 11, 12]), (True, [6, 13])):
        streams = [part.to_batches(max_chunksize=2) for t in (first, second) for part in split_by_call_id(t, 3)]
        assert [m.frame for m in merge_in_input_order(streams, [0, 10], tail=tail)] == frames
    assert list(merge_in_input_order([])) == []


def test_headers_equal_when_their_bytes_are() -> None:
    one, two = _message("h@x", 1), _message("h@x", 1)
    assert one.headers is not two.headers
    one.headers.get("via")  # what one has looked up does not matter
    assert one.headers == two.headers and one == two
    assert one.headers != _message("other@x", 1).headers
    assert one.headers != "Call-ID: h@x"
