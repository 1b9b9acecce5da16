"""Damaged captures, made at test time by real tools from real captures: each gives a clear
message and every call that could be read.

The damage is done by ``editcap``, ``mergecap``, ``gzip`` and ``head -c`` (as a user's
disk, tcpdump or copy would do it), in ``tmp_path``, from ``../shared/pcaps`` and
``sample_pcaps``. Two files are written by hand because no tool makes them: the lying
record length (the issue asks for exactly that one field to be wrong), and a pcapng
custom block (type 0x00000BAD / 0x40000BAD, draft-ietf-opsawg-pcapng §4.8), which
editcap cannot add; it is a valid block, and capinfos and tshark read the file as the
original.

What "every call that could be read" means is derived from the undamaged original: when
the damage leaves frames 1..K whole, the output must be the original's messages of those
frames, the original's calls seen in them, and the same outcome for each call whose
messages all lie in them. For the shared captures the figures are also written out.
"""

from __future__ import annotations

import gzip
import json
import shutil
import struct
import subprocess
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from analyzer.cli import main

pytestmark = pytest.mark.tools

AAA = "wireshark-samplecaptures/aaa.pcap"  # 691 frames, 81 SIP messages over UDP, 6 conversations
PCAPNG = "goffinet-sip_captures/sip-register-publish-subscribe-489-401.pcapng"  # 60 frames, 19 conversations
RAW_IP = "zeek/sip-long-request-response-paths.pcap"  # link type 228 (raw IPv4)
CUSTOM_BLOCK = 0x00000BAD
CUSTOM_BLOCK_NO_COPY = 0x40000BAD
EXAMPLE_PEN = 32473  # the IANA enterprise number for documentation (RFC 5612)
EPB, SPB, OPB = 6, 3, 2


# -- running sipflow ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Run:
    code: int
    stdout: str
    stderr: str


def sipflow(*args: str) -> Run:
    result = CliRunner().invoke(main, list(args))
    return Run(result.exit_code, result.stdout, result.stderr)


def messages(path: Path) -> tuple[Run, list[dict[str, Any]]]:
    run = sipflow("messages", str(path), "--format", "jsonl")
    return run, [json.loads(line) for line in run.stdout.splitlines()]


def analysis(path: Path) -> tuple[Run, dict[str, Any]]:
    run = sipflow("analyze", str(path), "--format", "json")
    return run, json.loads(run.stdout) if run.stdout else {}


def tool(*cmd: str | Path) -> None:
    subprocess.run([str(c) for c in cmd], check=True, capture_output=True, timeout=60)


def outcomes(doc: dict[str, Any]) -> dict[str, tuple[str, int]]:
    """Call-ID → (outcome, messages) of an ``analyze --format json`` document."""
    return {c["call_id"]: (c["outcome"], c["messages"]) for c in doc["calls"]}


# -- what the original says ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Prefix:
    """What sipflow must still find when only the first ``frames`` frames of ``original`` are whole."""

    rows: list[dict[str, Any]]
    """The original's messages completed in those frames (``sipflow messages`` rows)."""
    seen: set[str]
    """Call-IDs with at least one of those messages."""
    whole: dict[str, tuple[str, int]]
    """Calls whose messages all lie in those frames: their outcome and message count."""


def prefix(original: Path, frames: int) -> Prefix:
    _, rows = messages(original)
    _, doc = analysis(original)
    kept = [r for r in rows if r["frame"] <= frames]
    late = {r["call_id"] for r in rows if r["frame"] > frames}
    seen = {r["call_id"] for r in kept}
    return Prefix(kept, seen, {cid: v for cid, v in outcomes(doc).items() if cid in seen - late})


def assert_prefix(damaged: Path, want: Prefix) -> tuple[Run, Run]:
    run_m, rows = messages(damaged)
    run_a, doc = analysis(damaged)
    assert rows == want.rows
    got = outcomes(doc)
    assert set(got) == want.seen
    assert {cid: got[cid] for cid in want.whole} == want.whole
    return run_m, run_a


# -- reading file structure (never changing it) --------------------------------------------------
def pcap_record_ends(data: bytes) -> list[int]:
    """File offset just past each whole record of a classic pcap."""
    order = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    ends, pos = [], 24
    while pos + 16 <= len(data):
        (incl,) = struct.unpack_from(order + "I", data, pos + 8)
        if pos + 16 + incl > len(data):
            break
        pos += 16 + incl
        ends.append(pos)
    return ends


def pcapng_blocks(data: bytes) -> tuple[str, list[tuple[int, int, int]]]:
    """Byte order and (offset, type, total length) of every whole block of a one-section pcapng."""
    order = "<" if data[8:12] == struct.pack("<I", 0x1A2B3C4D) else ">"
    blocks, pos = [], 0
    while pos + 12 <= len(data):
        btype, blen = struct.unpack_from(order + "II", data, pos)
        if pos + blen > len(data):
            break
        blocks.append((pos, btype, blen))
        pos += blen
    return order, blocks


def custom_block(order: str, btype: int, payload: bytes) -> bytes:
    """A pcapng Custom Block: type, total length, PEN, data padded to 32 bits, total length."""
    padded = payload + b"\0" * (-len(payload) % 4)
    total = 16 + len(padded)
    return struct.pack(order + "III", btype, total, EXAMPLE_PEN) + padded + struct.pack(order + "I", total)


def capinfos_packets(path: Path) -> int:
    out = subprocess.run(["capinfos", "-M", "-c", str(path)], check=True, capture_output=True, text=True, timeout=60)
    return int(out.stdout.strip().splitlines()[-1].split(":")[1])


# -- the damaged captures ------------------------------------------------------------------------
@pytest.fixture(scope="module", autouse=True)
def _tools() -> None:
    missing = [t for t in ("editcap", "mergecap", "capinfos", "gzip", "head") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)}")


def test_zero_length_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.pcap"
    tool("touch", empty)
    for command in ("messages", "analyze"):
        run = sipflow(command, str(empty))
        assert (run.code, run.stdout, run.stderr) == (
            2,
            "",
            f"sipflow: error: {empty}: not a pcap or pcapng capture (an empty file)\n",
        )


def test_head_cut_pcap_keeps_the_calls_before_the_cut(shared_pcaps: Path, tmp_path: Path) -> None:
    original = shared_pcaps / AAA
    cut = tmp_path / "cut.pcap"
    with cut.open("wb") as f:
        subprocess.run(["head", "-c", "60000", str(original)], stdout=f, check=True, timeout=60)
    ends = pcap_record_ends(cut.read_bytes())
    frames = len(ends)
    assert (frames, ends[-1]) == (392, 59962)
    want = prefix(original, frames)
    assert (len(want.rows), len(want.seen), len(want.whole)) == (44, 3, 2)
    run_m, run_a = assert_prefix(cut, want)
    why = "last record cut short at byte 59962 (38 bytes left over)"
    assert (run_m.code, run_m.stderr) == (0, f"sipflow: warning: {cut}: reading stopped after frame 392: {why}\n")
    assert (run_a.code, run_a.stderr) == (0, f"sipflow: warning: reading stopped early: {why}\n")


def test_head_cut_pcapng_keeps_the_calls_before_the_cut(shared_pcaps: Path, tmp_path: Path) -> None:
    original = shared_pcaps / PCAPNG
    data = original.read_bytes()
    _, blocks = pcapng_blocks(data)
    # Cut in the middle of the 31st packet block.
    packets = [(off, blen) for off, btype, blen in blocks if btype in (EPB, SPB, OPB)]
    off, blen = packets[30]
    cut = tmp_path / "cut.pcapng"
    with cut.open("wb") as f:
        subprocess.run(["head", "-c", str(off + blen // 2), str(original)], stdout=f, check=True, timeout=60)
    want = prefix(original, 30)
    assert (len(want.rows), len(want.seen), len(want.whole)) == (30, 9, 9)
    run_m, run_a = assert_prefix(cut, want)
    why = f"last block cut short at byte {off}"
    assert (run_m.code, run_m.stderr) == (0, f"sipflow: warning: {cut}: reading stopped after frame 30: {why}\n")
    assert (run_a.code, run_a.stderr) == (0, f"sipflow: warning: reading stopped early: {why}\n")


def test_head_cut_inside_the_file_header(shared_pcaps: Path, tmp_path: Path) -> None:
    cut = tmp_path / "header.pcap"
    with cut.open("wb") as f:
        subprocess.run(["head", "-c", "10", str(shared_pcaps / AAA)], stdout=f, check=True, timeout=60)
    for command in ("messages", "analyze"):
        run = sipflow(command, str(cut))
        assert (run.code, run.stdout, run.stderr) == (2, "", f"sipflow: error: {cut}: pcap file header is cut short\n")


def test_gzip_cut_in_the_middle(shared_pcaps: Path, tmp_path: Path) -> None:
    original = shared_pcaps / AAA
    packed = tmp_path / "aaa.pcap.gz"
    with packed.open("wb") as f:
        subprocess.run(["gzip", "-9", "-n", "-c", str(original)], stdout=f, check=True, timeout=60)
    cut = tmp_path / "cut.pcap.gz"
    with cut.open("wb") as f:
        size = packed.stat().st_size
        subprocess.run(["head", "-c", str(size // 2), str(packed)], stdout=f, check=True, timeout=60)
    # What survives is what zlib can inflate from the cut file: the whole records in it.
    inflated = zlib.decompressobj(wbits=31).decompress(cut.read_bytes())
    frames = len(pcap_record_ends(inflated))
    want = prefix(original, frames)
    assert len(want.rows) > 0 and len(want.whole) > 0
    run_m, run_a = assert_prefix(cut, want)
    why = "compressed data is damaged or cut short (Compressed file ended before the end-of-stream marker was reached)"
    assert (run_m.code, run_m.stderr) == (
        0,
        f"sipflow: warning: {cut}: reading stopped after frame {frames}: {why}\n",
    )
    assert (run_a.code, run_a.stderr) == (0, f"sipflow: warning: reading stopped early: {why}\n")


def test_gzip_cut_before_the_capture_header(shared_pcaps: Path, tmp_path: Path) -> None:
    packed = gzip.compress((shared_pcaps / AAA).read_bytes())
    cut = tmp_path / "cut.pcap.gz"
    with cut.open("wb") as f:
        subprocess.run(["head", "-c", "12"], input=packed, stdout=f, check=True, timeout=60)
    for command in ("messages", "analyze"):
        run = sipflow(command, str(cut))
        assert run.code == 2 and run.stdout == ""
        assert run.stderr == (
            f"sipflow: error: {cut}: compressed data is cut short "
            "(Compressed file ended before the end-of-stream marker was reached)\n"
        )


def lie_about_record(original: Path, record: int, extra: int | None) -> tuple[bytes, int]:
    """The capture with the length of record ``record`` (from 1) made to lie, and that
    record's offset: 2^31-16 bytes when ``extra`` is None, else ``extra`` bytes too many."""
    raw = bytearray(original.read_bytes())
    start = pcap_record_ends(bytes(raw))[record - 2]
    (incl,) = struct.unpack_from("<I", raw, start + 8)
    struct.pack_into("<I", raw, start + 8, 0x7FFFFFF0 if extra is None else incl + extra)
    return bytes(raw), start


def test_record_length_past_any_packet(shared_pcaps: Path, tmp_path: Path) -> None:
    """Record 301 claims 2^31-16 bytes (by hand: the issue asks for exactly this field)."""
    original = shared_pcaps / AAA
    data, start = lie_about_record(original, 301, None)
    liar = tmp_path / "liar.pcap"
    liar.write_bytes(data)
    want = prefix(original, 300)
    assert (len(want.rows), len(want.seen), len(want.whole)) == (36, 2, 1)
    run_m, run_a = assert_prefix(liar, want)
    why = f"record at byte {start} claims 2147483632 bytes (corrupt length)"
    assert start == 45761
    assert (run_m.code, run_m.stderr) == (0, f"sipflow: warning: {liar}: reading stopped after frame 300: {why}\n")
    assert (run_a.code, run_a.stderr) == (0, f"sipflow: warning: reading stopped early: {why}\n")


def test_record_length_a_little_too_long(shared_pcaps: Path, tmp_path: Path) -> None:
    """Record 301 claims 10 bytes more than it holds: it swallows the next record's header
    and the record after it is read from the wrong place, so reading stops there."""
    original = shared_pcaps / AAA
    data, start = lie_about_record(original, 301, 10)
    liar = tmp_path / "liar.pcap"
    liar.write_bytes(data)
    want = prefix(original, 301)
    run_m, run_a = assert_prefix(liar, want)
    misread = start + 16 + struct.unpack_from("<I", data, start + 8)[0]
    claimed = struct.unpack_from("<I", data, misread + 8)[0]
    why = f"record at byte {misread} claims {claimed} bytes (corrupt length)"
    assert (run_m.code, run_m.stderr) == (0, f"sipflow: warning: {liar}: reading stopped after frame 301: {why}\n")
    assert (run_a.code, run_a.stderr) == (0, f"sipflow: warning: reading stopped early: {why}\n")


@pytest.mark.parametrize("btype", [CUSTOM_BLOCK, CUSTOM_BLOCK_NO_COPY])
def test_pcapng_with_custom_blocks_reads_as_the_original(shared_pcaps: Path, tmp_path: Path, btype: int) -> None:
    original = shared_pcaps / PCAPNG
    data = original.read_bytes()
    order, blocks = pcapng_blocks(data)
    # One custom block right after the interface block, one between two packet blocks.
    cuts = [blocks[1][0] + blocks[1][2], blocks[30][0]]
    pieces = [data[: cuts[0]]]
    pieces += [custom_block(order, btype, b"sipflow damaged-capture test"), data[cuts[0] : cuts[1]]]
    pieces += [custom_block(order, btype, b"\x01\x02\x03"), data[cuts[1] :]]
    odd = tmp_path / "custom.pcapng"
    odd.write_bytes(b"".join(pieces))
    assert capinfos_packets(odd) == capinfos_packets(original) == 60  # a valid file, for Wireshark too
    for command in (("messages", "--format", "jsonl"), ("analyze", "--format", "json")):
        want = sipflow(command[0], str(original), *command[1:])
        got = sipflow(command[0], str(odd), *command[1:])
        assert (got.code, got.stderr) == (0, "")
        assert got.stdout == want.stdout.replace(str(original), str(odd))


def test_mergecap_of_three_link_types(shared_pcaps: Path, sample_pcaps: Path, tmp_path: Path) -> None:
    parts = [
        sample_pcaps / "udp_call.pcap",  # Ethernet
        sample_pcaps / "sll_call.pcap",  # Linux cooked (SLL)
        sample_pcaps / "sll2_call.pcap",  # Linux cooked v2
        shared_pcaps / RAW_IP,  # raw IPv4
    ]
    merged = tmp_path / "merged.pcapng"
    tool("mergecap", "-w", merged, *parts)
    want_rows: list[tuple[str, str | None, int | None]] = []
    want_calls: dict[str, tuple[str, int]] = {}
    for part in parts:
        _, rows = messages(part)
        want_rows += [(r["call_id"], r["method"], r["status"]) for r in rows]
        want_calls.update(outcomes(analysis(part)[1]))
    run_m, rows = messages(merged)
    run_a, doc = analysis(merged)
    assert (run_m.code, run_m.stderr, run_a.code, run_a.stderr) == (0, "", 0, "")
    assert sorted((r["call_id"], r["method"], r["status"]) for r in rows) == sorted(want_rows)
    assert outcomes(doc) == want_calls
    assert (len(rows), len(want_calls)) == (51, 8)


def test_snap_length_cut_keeps_no_call_without_its_call_id(sample_pcaps: Path, tmp_path: Path) -> None:
    """``editcap -s 100``: 58 bytes of each SIP message are left, never the Call-ID."""
    snapped = tmp_path / "snap100.pcap"
    tool("editcap", "-s", "100", sample_pcaps / "udp_call.pcap", snapped)
    run_m, rows = messages(snapped)
    assert (run_m.code, rows) == (0, [])
    assert run_m.stderr == "sipflow: 21 malformed SIP message(s) skipped (--show-skipped lists them)\n"
    run_a, doc = analysis(snapped)
    assert (run_a.code, doc["calls"], doc["capture"]["malformed"], doc["capture"]["sip_messages"]) == (0, [], 21, 0)
    shown = sipflow("messages", str(snapped), "--show-skipped").stderr.splitlines()
    assert shown[-1] == "  malformed frame 23: sip-cut-short '58 bytes captured: 200 OK'"


def test_snap_length_cut_is_named_by_analyze(sample_pcaps: Path, tmp_path: Path) -> None:
    snapped = tmp_path / "snap100.pcap"
    tool("editcap", "-s", "100", sample_pcaps / "udp_call.pcap", snapped)
    run_a, _ = analysis(snapped)
    assert "snap length" in run_a.stderr


def test_snap_length_that_keeps_the_call_id(shared_pcaps: Path, sample_pcaps: Path, tmp_path: Path) -> None:
    """``editcap -s 400`` keeps start line, Via, From, To, Call-ID and CSeq: every message and
    every call is read. In aaa.pcap two INVITEs lose their Proxy-Authorization to the cut, so
    the 403 that follows can no longer be told from a plain rejection (auth_failed → rejected)."""

    def key(row: dict[str, Any]) -> tuple[int, str, str, int | None]:
        return row["frame"], row["call_id"], row["method"], row["status"]

    changed = {"85216695-42dcdb1d@192.168.1.2", "24487391-449bf2a0@192.168.1.2"}
    for original, lost in ((sample_pcaps / "udp_call.pcap", set()), (shared_pcaps / AAA, changed)):
        snapped = tmp_path / f"snap400-{original.name}"
        tool("editcap", "-s", "400", original, snapped)
        _, want_rows = messages(original)
        run_m, rows = messages(snapped)
        run_a, doc = analysis(snapped)
        assert (run_m.code, run_m.stderr, run_a.code, run_a.stderr) == (0, "", 0, "")
        assert [key(r) for r in rows] == [key(r) for r in want_rows]
        want = outcomes(analysis(original)[1])
        got = outcomes(doc)
        assert set(got) == set(want)
        assert {cid for cid in want if got[cid] != want[cid]} == lost
        assert {got[cid][0] for cid in lost} <= {"rejected"}


def test_cat_of_a_pcapng_and_a_pcap(shared_pcaps: Path, tmp_path: Path) -> None:
    """``cat a.pcapng b.pcap > both``: the pcap's file header is read as a pcapng block with a
    bad length; everything of the pcapng is kept."""
    first, second = shared_pcaps / PCAPNG, shared_pcaps / AAA
    both = tmp_path / "both.pcapng"
    with both.open("wb") as f:
        subprocess.run(["cat", str(first), str(second)], stdout=f, check=True, timeout=60)
    want = prefix(first, 60)
    run_m, run_a = assert_prefix(both, want)
    assert len(want.whole) == len(want.seen) == 19
    why = f"block at byte {first.stat().st_size} has a bad length 262146"
    assert (run_m.code, run_m.stderr) == (0, f"sipflow: warning: {both}: reading stopped after frame 60: {why}\n")
    assert (run_a.code, run_a.stderr) == (0, f"sipflow: warning: reading stopped early: {why}\n")
