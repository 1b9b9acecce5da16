"""How --jobs shares the work out: processes per input size, Call-IDs per process."""

from __future__ import annotations

from pathlib import Path

from analyzer.shards import first_share, jobs_for, owner, shard_of, sip_messages_guess, takes

SAMPLES = Path(__file__).resolve().parents[1] / "sample_pcaps"
CALL_IDS = ("", "1-12985@127.0.0.80", "a84b4c76e66710")


def test_shards_are_stable_numbers() -> None:
    # CRC-32 % 1024: slots 0, 304 and 718; of 4 processes the first takes none, the others every third slot;
    # of 2, the first takes slots 0-348
    assert [shard_of(cid, 4) for cid in CALL_IDS] == [1, 2, 2]
    assert [shard_of(cid, 2) for cid in CALL_IDS] == [0, 0, 1]
    assert [shard_of(cid, 1) for cid in CALL_IDS] == [0, 0, 0]


def test_the_first_process_takes_a_smaller_share() -> None:
    """It also parses and watches every message: (3 + 64 - 30.5) / (43 + 64) with two processes."""
    assert [round(first_share(n), 3) for n in (1, 2, 3, 4, 8)] == [1.0, 0.341, 0.06, 0.0, 0.0]


def test_jobs_follow_the_input_size() -> None:
    small = str(SAMPLES / "udp_call.pcap")
    assert (jobs_for([small], 8), jobs_for(["-"], 8), jobs_for([small], 1)) == (1, 1, 1)


def test_a_process_parses_its_share_and_what_has_no_start_line() -> None:
    second = owner(takes(1, 2))
    assert [second(b"OPTIONS sip:a SIP/2.0\r\nCall-ID: " + cid.encode() + b"\r\n\r\n") for cid in CALL_IDS] == [
        False,
        False,
        True,
    ]
    assert second(b"not SIP at all") is True  # parsing says what it is


def test_jobs_follow_how_dense_the_sip_is(tmp_path: Path) -> None:
    """SIP/2.0 twice a message (start line, Via) in the first bytes, scaled to the whole size."""
    rtp = tmp_path / "rtp.pcap"
    rtp.write_bytes(b"\x80" * (9 << 20))
    sip = tmp_path / "sip.pcap"
    sip.write_bytes((b"INVITE sip:a SIP/2.0\r\nVia: SIP/2.0/UDP x\r\n\r\n" + b"\x80" * 400) * 40_000)
    assert sip_messages_guess(str(rtp), 9 << 20) == 0
    assert sip_messages_guess(str(sip), sip.stat().st_size) == 40_001  # the sample ends inside a message
    assert (jobs_for([str(rtp)], 8), jobs_for([str(sip)], 8), jobs_for([str(sip)], 2)) == (1, 2, 2)
    gz = tmp_path / "sip.pcap.gz"
    gz.write_bytes(b"\x1f\x8b" + b"\x00" * (17 << 20))
    assert (sip_messages_guess(str(gz), 17 << 20), jobs_for([str(gz)], 8)) == (None, 2)  # by its size
