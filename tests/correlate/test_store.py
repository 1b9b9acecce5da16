"""The call store fed message by message, as live mode feeds it: retransmissions and expiry."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from analyzer.correlate.model import Kind
from analyzer.correlate.store import LINGER_NS, CallStore, _top_branch, _top_branch_text
from analyzer.errors import SipflowError
from analyzer.reader import read_messages
from analyzer.sip.message import Origin
from analyzer.sip.parser import parse_message


def test_retransmissions_are_counted_not_new(shared_pcaps: Path) -> None:
    store = CallStore()
    for msg in read_messages(shared_pcaps / "wireshark-samplecaptures/aaa.pcap"):
        store.feed(msg)
    convs = {(c.call_id, c.kind): c for c in store.finish()}
    timed_out = convs[("105090259-446faf7a@192.168.1.2", Kind.CALL)]
    invite = timed_out.by_method("INVITE")[0]
    assert (invite.request_copies, len(timed_out.by_method("INVITE"))) == (3, 1)
    assert timed_out.retransmissions == 12  # 2 INVITE copies, 10 CANCEL copies (the last 408 answers the CANCEL)


def test_calls_expire_when_over(sample_pcaps: Path) -> None:
    store = CallStore()
    msgs = list(read_messages(sample_pcaps / "rule_callee_busy.pcap"))
    for m in msgs:
        store.feed(m)
    last = msgs[-1].origin.ts_ns
    assert store.expire(last) == []  # both rejected, but retransmissions may still come
    done = store.expire(last + LINGER_NS)
    assert sorted(c.call_id for c in done) == ["1-rule_callee_busy@198.18.0.1", "2-rule_callee_busy@198.18.0.1"]
    assert store.conversations == {}


def test_open_conversations_are_capped(sample_pcaps: Path) -> None:
    store = CallStore(max_open=1)
    for m in read_messages(sample_pcaps / "udp_call.pcap"):
        store.feed(m)
    out = store.expire(0)
    assert (len(out), store.evicted, len(store.conversations)) == (2, 2, 1)


_VIA_LINES = st.lists(
    st.sampled_from(
        [
            b"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-1",
            b"v:SIP/2.0/TCP h;BRANCH=z9hG4bKx;rport",
            b"VIA : SIP/2.0/UDP h;branch= z9hG4bK2 ;received=1.2.3.4",
            b"Via: SIP/2.0/UDP h;branch=z9hG4bK3, SIP/2.0/UDP g;branch=z9hG4bK4",
            b"Via: SIP/2.0/UDP h;branch=1234",
            b"Via: SIP/2.0/UDP h;branch=z9hG4bK\x1f",
            b"Via: SIP/2.0/UDP h\xc4\xb0;branch=z9hG4bK5",
            b"Via: SIP/2.0/UDP h;branch=z9hG4bK6\r\n ;rport",
            b"Via: SIP/2.0/UDP h",
            b"Via:",
            b"From: <sip:a@b>;tag=9",
            b"Vias: SIP/2.0/UDP x;branch=z9hG4bKnot",
        ]
    ),
    max_size=4,
)


@given(_VIA_LINES, st.sampled_from([b"\r\n", b"\n"]))
def test_top_branch_fast_path_reads_as_the_text_does(lines: list[bytes], eol: bytes) -> None:
    raw = eol.join([b"OPTIONS sip:x SIP/2.0", b"Call-ID: c", b"CSeq: 1 OPTIONS", *lines]) + eol + eol
    origin = Origin(1, (1,), 0, "10.0.0.1", 5060, "10.0.0.2", 5060, "udp", "")
    assert _top_branch(parse_message(raw, origin)) == _top_branch_text(parse_message(raw, origin))


def test_top_branch_fast_path_on_every_capture(shared_pcaps: Path, sample_pcaps: Path) -> None:
    captures = sorted(shared_pcaps.rglob("*.pcap*")) + sorted(sample_pcaps.glob("*.pcap*"))
    seen = 0
    for path in captures:
        try:
            messages = list(read_messages(path))
        except SipflowError:
            continue  # not a capture sipflow reads (tested elsewhere)
        for m in messages:
            fresh = parse_message(m.raw, m.origin)
            assert _top_branch(m) == _top_branch_text(fresh), (path.name, m.origin.frame)
            seen += 1
    assert seen > 7_000  # 7,153 messages in 140 captures
