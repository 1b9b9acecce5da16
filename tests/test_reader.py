"""Several captures read as one: files in turn through the fused loop where that is the
merged order, merged frame by frame from where it is not; always what a merge of every
frame gives (mergecap's order and numbering)."""

from __future__ import annotations

import signal
import struct
import subprocess
from pathlib import Path
from types import FrameType

import pytest

from analyzer.capture.pcap import PcapRecords
from analyzer.capture.pcapng import PcapngBlocks
from analyzer.reader import MergedReader
from analyzer.sip.message import Origin
from tests.edit import with_interface_options

PUBLIC = Path(__file__).resolve().parents[2] / "shared" / "pcaps"
SOURCE = PUBLIC / "heplify" / "rtp_rtcp_sip_ipv4_udp.pcap"  # 4,269 frames: RTP, RTCP and 14 SIP messages


def _records(path: Path) -> tuple[bytes, list[bytes]]:
    data = path.read_bytes()
    out, pos = [], 24
    while pos + 16 <= len(data):
        incl = struct.unpack_from("<I", data, pos + 8)[0]
        out.append(data[pos : pos + 16 + incl])
        pos += 16 + incl
    return data[:24], out


def _write(path: Path, head: bytes, records: list[bytes], cut: int = 0) -> str:
    data = head + b"".join(records)
    path.write_bytes(data[: len(data) - cut])
    return str(path)


def _cases(tmp: Path) -> dict[str, list[str]]:
    """The records of one real capture split into files in several ways."""
    head, r = _records(SOURCE)
    q = len(r) // 4
    return {
        "rotated": [_write(tmp / f"rot{i}.pcap", head, r[i * q : (i + 1) * q if i < 3 else None]) for i in range(4)],
        "names against time": [_write(tmp / f"rev{9 - i}.pcap", head, r[i * q : (i + 1) * q]) for i in range(3)][::-1],
        "alternate frames": [_write(tmp / "alt0.pcap", head, r[0::2]), _write(tmp / "alt1.pcap", head, r[1::2])],
        "runs on into the next": [
            _write(tmp / "tail0.pcap", head, r[:q] + r[q + 50 : q + 100]),
            _write(tmp / "tail1.pcap", head, r[q : q + 50] + r[q + 100 :]),
        ],
        "clock goes back": [
            _write(tmp / "back0.pcap", head, r[:q] + r[2 * q :]),
            _write(tmp / "back1.pcap", head, r[q : 2 * q]),
        ],
        "two capture points": [_write(tmp / "p0.pcap", head, r), _write(tmp / "p1.pcap", head, r)],
        "empty and cut": [
            _write(tmp / "e0.pcap", head, r[:q]),
            _write(tmp / "e1.pcap", head, []),
            _write(tmp / "e2.pcap", head, r[q : 2 * q], cut=37),
            _write(tmp / "e3.pcap", head, r[2 * q :]),
        ],
    }


EXPECTED = {  # (messages, frames, copies left out)
    "rotated": (14, 4269, 0),
    "names against time": (14, 3201, 0),  # three quarters
    "alternate frames": (14, 4269, 0),
    "runs on into the next": (14, 4269, 0),
    "clock goes back": (14, 4269, 0),
    "two capture points": (14, 8538, 14),
    "empty and cut": (14, 4268, 0),  # the last record of the third file is cut
}


def _read(paths: list[str]) -> tuple[object, ...]:
    reader = MergedReader(paths).open()
    messages = [(m.origin, m.raw, m.defects) for m in reader]
    stats = reader.decoder.sync_stats()
    return messages, stats, reader.frames_read, reader.dedup.copies, [c.warning for c in reader.captures]


@pytest.mark.parametrize("case", list(EXPECTED))
def test_files_in_turn_give_what_the_merge_gives(case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = _cases(tmp_path)[case]
    fast = _read(paths)
    _merge_every_frame(monkeypatch)
    merged = _read(paths)
    assert fast == merged
    messages, _, frames, copies, warnings = fast
    assert (len(messages), frames, copies) == EXPECTED[case]
    if case == "empty and cut":
        assert warnings[2] == "last record cut short at byte 232697 (193 bytes left over)"


def _merge_every_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(PcapRecords, "first_time", lambda self: None)
    monkeypatch.setattr(PcapngBlocks, "first_time", lambda self: None)


def _as_pcapng(paths: list[str], every: int = 1) -> list[str]:
    """Every ``every``-th file rewritten as pcapng by editcap (dumpcap's ring buffers are pcapng)."""
    out = []
    for i, path in enumerate(paths):
        if i % every:
            out.append(path)
            continue
        ng = path.replace(".pcap", ".pcapng")
        subprocess.run(["editcap", "-F", "pcapng", path, ng], check=True, timeout=60)
        out.append(ng)
    return out


@pytest.mark.tools
@pytest.mark.parametrize("every", [1, 2], ids=["pcapng", "pcap and pcapng"])
@pytest.mark.parametrize("case", list(EXPECTED))
def test_pcapng_files_in_turn_give_what_the_merge_gives(
    case: str, every: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = _as_pcapng(_cases(tmp_path)[case], every)
    fast = _read(paths)
    _merge_every_frame(monkeypatch)
    assert fast == _read(paths)
    assert (len(fast[0]), fast[2], fast[3]) == EXPECTED[case]


def test_rotated_files_go_through_the_fused_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    merged_from: list[int] = []
    original = MergedReader._merged

    def spy(self: MergedReader, frames: list, before: int):  # type: ignore[no-untyped-def,type-arg]
        merged_from.append(before)
        return original(self, frames, before)

    monkeypatch.setattr(MergedReader, "_merged", spy)
    cases = _cases(tmp_path)
    for case in ("rotated", "names against time", "empty and cut"):
        _read(cases[case])
    assert merged_from == []
    _read(cases["runs on into the next"])
    _read(cases["alternate frames"])
    q = 4269 // 4
    assert merged_from == [q, 1]  # merged after the first file's records up to the second's start


def _retimed(record: bytes, like: bytes, seconds: int = 0) -> bytes:
    """A pcap record (little-endian) given the time of record ``like``, ``seconds`` later."""
    return (int.from_bytes(like[:4], "little") + seconds).to_bytes(4, "little") + like[4:8] + record[8:]


@pytest.mark.parametrize("kind", ["pcap", pytest.param("pcapng", marks=pytest.mark.tools)])
@pytest.mark.parametrize("later", [0, 300], ids=["in the same second", "minutes later"])
def test_a_run_of_rtp_that_goes_on_past_the_next_files_start(
    later: int, kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The fused loop takes a run of records of one length at once (alike_records); here the
    # first file's run goes on past the second file's start, in the same second or (the second
    # file and one record of the first moved minutes later) in another. The second file holds
    # a SIP message: its frame number tells where the first file's frames were merged.
    head, r = _records(PUBLIC / "wireshark-samplecaptures" / "sip-rtp-g711.pcap")
    sip = next(x for x in r if b"SIP/2.0" in x)
    # inside a run of 1,500 G.711 packets of one length, the first of a new second (the loop
    # takes records at once only up to the second the next file starts in)
    k = next(
        i for i in range(10, len(r)) if r[i][:4] != r[i - 1][:4] and len({len(x) for x in r[i - 10 : i + 10]}) == 1
    )
    if later:
        first = [*r[:k], _retimed(r[k + 1], r[k + 1], later + 1), *r[k + 2 :]]
        second = [_retimed(sip, r[k], later)]
    else:
        first, second = [*r[:k], *r[k + 3 :]], [r[k], _retimed(sip, r[k + 1]), r[k + 2]]
    paths = [_write(tmp_path / "a.pcap", head, first), _write(tmp_path / "b.pcap", head, second)]
    if kind == "pcapng":
        paths = _as_pcapng(paths)
    fast = _read(paths)
    _merge_every_frame(monkeypatch)
    assert fast == _read(paths)
    messages: list[tuple[Origin, bytes, object]] = fast[0]  # type: ignore[assignment]
    sip_frame = k + 2 - (1 if later else 0)  # after the records up to the second file's start
    assert sip_frame in [origin.frame for origin, raw, _ in messages if raw == sip[16 + 42 :]]


def _too_long(_signum: int, _frame: FrameType | None) -> None:
    raise TimeoutError("still reading after 60 s")


def test_a_pcapng_at_two_to_the_minus_64_seconds_is_merged_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A real pcapng whose interface says its times are in 2^-64 s (if_tsresol 0xc0): all its
    # frames fall in 1970's first second. Read in turn before another capture, the last of its
    # timestamps before that one's start was looked for one unit (a 54-zeptosecond) at a time.
    changed = tmp_path / "resol.pcapng"
    changed.write_bytes(
        with_interface_options((PUBLIC / "goffinet-sip_captures" / "sip.pcapng").read_bytes(), {9: b"\xc0"})
    )
    paths = [str(PUBLIC / "wireshark-samplecaptures" / "Asterisk_ZFONE_XLITE.pcap"), str(changed)]
    old = signal.signal(signal.SIGALRM, _too_long)
    signal.alarm(60)  # a hang is a failure, not a stuck run
    try:
        fast = _read(paths)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    _merge_every_frame(monkeypatch)
    assert fast == _read(paths)
    messages: list[tuple[Origin, bytes, object]] = fast[0]  # type: ignore[assignment]
    assert messages[0][0].ts_ns < 1_000_000_000 < messages[-1][0].ts_ns
