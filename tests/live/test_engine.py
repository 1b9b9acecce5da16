"""The live core fed frame by frame, as tcpdump feeds it, against `analyze` on the same file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

import analyzer.live.engine as engine_mod
from analyzer.analysis import analyze
from analyzer.capture.source import open_stream, read_frames
from analyzer.capture.stats import CaptureStats, RawFrame
from analyzer.correlate.store import LINGER_NS
from analyzer.decode import ip as ip_mod
from analyzer.decode.pipeline import Decoder, Malformed, Unreachable
from analyzer.diagnose.verdict import CallReport
from analyzer.live.engine import UNREACHABLE_KEEP_NS, CaptureClock, LiveEngine
from analyzer.report.calls import call_dict
from analyzer.sip.message import SipMessage
from tests.oracle import SAMPLE_PCAPS

_S = 1_000_000_000


def frames(path: Path) -> Iterator[RawFrame]:
    with open_stream(path) as f:
        yield from read_frames(f, CaptureStats(str(path)))


def replay(path: Path, engine: LiveEngine) -> tuple[list[CallReport], list[CallReport]]:
    """Frames at their capture times, a tick every simulated second (monotonic = capture
    time); then the end of input. Returns (reported by ticks, reported at the end)."""
    ticked: list[CallReport] = []
    next_tick = None
    for ts, linktype, data, _ in frames(path):
        while next_tick is not None and next_tick <= ts:
            ticked += engine.tick(next_tick)
            next_tick += _S
        engine.frame(ts, linktype, data, ts)
        if next_tick is None:
            next_tick = ts + _S
    return ticked, engine.finish()


def dicts(reports: list[CallReport]) -> list[str]:
    return sorted(json.dumps(call_dict(r), sort_keys=True) for r in reports)


SAMPLES = sorted(p.name for p in SAMPLE_PCAPS.glob("*.pcap*"))


@pytest.mark.parametrize("name", SAMPLES)
def test_same_reports_as_analyze(name: str) -> None:
    ticked, rest = replay(SAMPLE_PCAPS / name, LiveEngine())
    assert dicts(ticked + rest) == dicts(analyze(SAMPLE_PCAPS / name).calls)


@pytest.mark.parametrize(
    ("name", "conversations", "ticked"),
    [
        ("goffinet-sip_captures/uac-uas-scenario-sipp.pcapng", 771, 447),
        ("goffinet-sip_captures/sip-routing-error-wireshark.pcapng", 18, 15),
        ("goffinet-sip_captures/sip-register-to-repo-proxy.pcapng", 10, 7),
        ("goffinet-sip_captures/sip-register-publish-subscribe-489-401.pcapng", 19, 5),
        ("goffinet-sip_captures/voip1b.pcapng", 4, 3),
    ],
)
def test_same_reports_as_analyze_when_calls_end_on_the_way(
    shared_pcaps: Path, name: str, conversations: int, ticked: int
) -> None:
    """Longer real captures: most conversations are handed over by the clock, not the end."""
    by_tick, rest = replay(shared_pcaps / name, LiveEngine())
    assert (len(by_tick + rest), len(by_tick)) == (conversations, ticked)
    assert dicts(by_tick + rest) == dicts(analyze(shared_pcaps / name).calls)


def test_finished_calls_leave_after_the_linger() -> None:
    engine = LiveEngine()
    path = SAMPLE_PCAPS / "udp_call.pcap"
    last = 0
    for ts, linktype, data, _ in frames(path):
        engine.frame(ts, linktype, data, ts)
        last = ts
    # RFC 3261 Timers D/J/K: 32 s for the retransmissions that may still come. The third
    # call's last message is the capture's last frame; the other two ended earlier.
    early = engine.tick(last + LINGER_NS - 1)
    assert [(r.call_id, str(r.outcome)) for r in early] == [
        ("1-udp_call@198.18.0.1", "answered"),
        ("2-udp_call@198.18.0.1", "answered"),
    ]
    assert [(r.call_id, str(r.outcome)) for r in engine.tick(last + LINGER_NS)] == [
        ("3-udp_call@198.18.0.1", "answered")
    ]
    assert (engine.open_conversations, engine.counters.reported, engine.finish()) == (0, 3, [])


def test_a_registration_refreshed_on_one_call_id_is_reported_per_refresh(shared_pcaps: Path) -> None:
    """Live reports a registration when it is over; a refresh more than the linger later
    on the same Call-ID is a new report, in `analyze` too."""
    by_tick, rest = replay(shared_pcaps / "goffinet-sip_captures/sip-flow-private.pcapng", LiveEngine())
    reg = [(str(r.outcome), r.messages) for r in by_tick + rest if r.call_id == "872698126"]
    assert reg == [("registered", 2), ("unregistered", 2)]
    offline = [(str(r.outcome), r.messages) for r in analyze(shared_pcaps / "goffinet-sip_captures/sip-flow-private.pcapng").calls if r.call_id == "872698126"]  # fmt: skip
    assert offline == reg


def test_a_call_challenged_then_ringing_long_is_one_report(shared_pcaps: Path) -> None:
    by_tick, rest = replay(shared_pcaps / "gprshome-wireshark/sip.pcap", LiveEngine())
    call = [
        (str(r.outcome), r.messages)
        for r in by_tick + rest
        if r.call_id.startswith("ZTU2MDY4NTY4YjgwOTQ0ZTExMDZiNjdkZjl")
    ]
    assert call == [("answered", 10)]


def test_capture_clock() -> None:
    clock = CaptureClock()
    assert clock.now(123) == 0  # nothing seen: no time yet
    clock.seen(1000 * _S, 5 * _S)
    assert clock.now(7 * _S) == 1002 * _S  # 2 s of silence later
    clock.seen(999 * _S, 8 * _S)  # an older timestamp (a late HEP copy) does not move it back
    assert clock.now(8 * _S) == 1003 * _S
    assert clock.now(4 * _S) == 1000 * _S  # never before the newest timestamp


def _options(call_id: str, cseq: int, ts_ns: int) -> bytes:
    return (
        f"OPTIONS sip:pbx@198.18.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 198.18.0.1:5060;branch=z9hG4bK{cseq}\r\n"
        f"From: <sip:mon@198.18.0.1>;tag=1\r\nTo: <sip:pbx@198.18.0.2>\r\nCall-ID: {call_id}\r\n"
        f"CSeq: {cseq} OPTIONS\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def _udp_frame(payload: bytes) -> bytes:
    """Ethernet/IPv4/UDP 198.18.0.1:5060 -> 198.18.0.2:5060 around ``payload``."""
    udp_len = 8 + len(payload)
    ip_len = 20 + udp_len
    eth = bytes(6) + bytes(6) + b"\x08\x00"
    ip = bytes([0x45, 0, ip_len >> 8, ip_len & 0xFF, 0, 0, 0, 0, 64, 17, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2])
    udp = bytes([0x13, 0xC4, 0x13, 0xC4, udp_len >> 8, udp_len & 0xFF, 0, 0])
    return eth + ip + udp + payload


def test_a_conversation_that_never_goes_quiet_is_reported_in_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    """OPTIONS every second on one Call-ID, never answered: without a cap its messages would
    pile up for as long as the pings go on."""
    monkeypatch.setattr(engine_mod, "MAX_CONVERSATION_MESSAGES", 5)
    engine = LiveEngine()
    t0 = 1_700_000_000 * _S
    out: list[CallReport] = []
    for i in range(13):
        ts = t0 + i * _S
        engine.frame(ts, 1, _udp_frame(_options("ping-1", i + 1, ts)), ts)
        out += engine.tick(ts)
    assert [r.messages for r in out] == [6, 6]
    assert (engine.counters.split, engine.open_conversations) == (2, 1)
    assert [r.messages for r in engine.finish()] == [1]


def test_the_decoder_lists_stay_bounded() -> None:
    engine = LiveEngine()
    st = engine.decoder.stats
    st.malformed += [Malformed(1, (1,), "bad-start-line", ""), Malformed(2, (2,), "no-call-id", "")]
    now = 2_000_000 * _S
    old = Unreachable(1, now - UNREACHABLE_KEEP_NS - 1, "198.18.0.9", "198.18.0.2:5060", 3)
    recent = Unreachable(2, now - 10 * _S, "198.18.0.9", "198.18.0.2:5060", 3)
    st.unreachable += [old, recent]
    engine.clock.seen(now, now)
    assert engine.tick(now) == []
    assert (engine.counters.malformed, st.malformed, st.unreachable) == (2, [], [recent])


def _udp_payloads(path: Path) -> Iterator[tuple[int, bytes]]:
    """(capture time, UDP payload) of each Ethernet/IPv4/UDP frame."""
    for ts, _linktype, data, _ in frames(path):
        pkt = ip_mod.ipv4(data, 14)
        seg = pkt.payload
        yield ts, seg[8 : (seg[4] << 8 | seg[5])]


def test_feed_hep_gives_what_the_capture_path_gives(shared_pcaps: Path) -> None:
    """The HEP packets of a real capture, handed to feed_hep as the listener receives them,
    give the same messages as the same frames through feed (HEP inside UDP)."""
    path = shared_pcaps / "hep-wireshark/hep.pcap"
    by_frame = Decoder()
    from_capture: list[SipMessage] = []
    for n, (ts, linktype, data, _) in enumerate(frames(path), 1):
        from_capture += by_frame.feed(n, ts, linktype, data)
    by_hep = Decoder()
    from_listener: list[SipMessage] = []
    for n, (ts, payload) in enumerate(_udp_payloads(path), 1):
        from_listener += by_hep.feed_hep(n, ts, payload)
    assert [(m.origin, m.raw) for m in from_listener] == [(m.origin, m.raw) for m in from_capture]
    assert len(from_listener) == 6
    assert by_hep.stats.frames_by_reason == by_frame.stats.frames_by_reason == {"sip": 6, "hep-not-sip": 2}
    assert (by_hep.stats.frames, by_hep.stats.sip_messages) == (8, 6)


def test_feed_hep_counts_what_is_not_hep() -> None:
    d = Decoder()
    assert d.feed_hep(1, 5, b"not hep at all") == []
    assert d.feed_hep(2, 6, b"HEP3\x00\x03") == []
    st = d.stats
    assert (st.frames, st.first_ts_ns, st.last_ts_ns) == (2, 5, 6)
    assert st.frames_by_reason == {"hep-not-sip": 1, "hep-malformed": 1}
    assert [(m.frame, m.reason) for m in st.malformed] == [(2, "hep-bad-length")]
