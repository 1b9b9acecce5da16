"""The call store fed message by message, as live mode feeds it: retransmissions and expiry."""

from __future__ import annotations

from pathlib import Path

from analyzer.correlate.model import Kind
from analyzer.correlate.store import LINGER_NS, CallStore
from analyzer.reader import read_messages


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
