"""How --jobs shares the work out: processes per input size, Call-IDs per process."""

from __future__ import annotations

from pathlib import Path

from analyzer.shards import MIN_SIP_PER_CALLS_JOB, jobs_for, owners, shard_of, sip_messages_guess

SAMPLES = Path(__file__).resolve().parents[1] / "sample_pcaps"
CALL_IDS = ("", "1-12985@127.0.0.80", "a84b4c76e66710", "3-12985@127.0.0.80")


def test_shards_are_stable_numbers() -> None:
    # CRC-32: 0, 3767633200, 2691821262, 3846565555
    assert [shard_of(cid, 4) for cid in CALL_IDS] == [0, 0, 2, 3]
    assert [shard_of(cid, 3) for cid in CALL_IDS] == [0, 1, 0, 1]
    assert [shard_of(cid, 1) for cid in CALL_IDS] == [0, 0, 0, 0]


def test_owners_remember_the_shard_of_each_call_id() -> None:
    owner = owners(3)
    assert [owner(cid) for cid in CALL_IDS * 2] == [shard_of(cid, 3) for cid in CALL_IDS * 2]


def test_jobs_follow_the_input_size() -> None:
    small = str(SAMPLES / "udp_call.pcap")
    assert (jobs_for([small], 8), jobs_for(["-"], 8), jobs_for([small], 1)) == (1, 1, 1)
    # one process reads for all (analyze): standard input gets them all, its size unknown
    assert (jobs_for(["-"], 8, read_alone=True), jobs_for(["-"], 1, read_alone=True)) == (8, 1)


def test_jobs_follow_how_dense_the_sip_is(tmp_path: Path) -> None:
    """SIP/2.0 twice a message (start line, Via) in the first bytes, scaled to the whole size."""
    rtp = tmp_path / "rtp.pcap"
    rtp.write_bytes(b"\x80" * (9 << 20))
    sip = tmp_path / "sip.pcap"
    sip.write_bytes((b"INVITE sip:a SIP/2.0\r\nVia: SIP/2.0/UDP x\r\n\r\n" + b"\x80" * 400) * 40_000)
    assert sip_messages_guess(str(rtp), 9 << 20) == 0
    assert sip_messages_guess(str(sip), sip.stat().st_size) == 40_001  # the sample ends inside a message
    assert (jobs_for([str(rtp)], 8), jobs_for([str(sip)], 8), jobs_for([str(sip)], 2)) == (1, 2, 2)
    sparse = tmp_path / "sparse.pcap"  # 5,000 messages in 17 MB: worth a second process for the calls only
    sparse.write_bytes((b"INVITE sip:a SIP/2.0\r\nVia: SIP/2.0/UDP x\r\n\r\n" + b"\x80" * 3400) * 5_000)
    assert (jobs_for([str(sparse)], 8), jobs_for([str(sparse)], 8, MIN_SIP_PER_CALLS_JOB)) == (1, 2)
    gz = tmp_path / "sip.pcap.gz"
    gz.write_bytes(b"\x1f\x8b" + b"\x00" * (17 << 20))
    assert (sip_messages_guess(str(gz), 17 << 20), jobs_for([str(gz)], 8)) == (None, 2)  # by its size
