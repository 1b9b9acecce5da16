"""The call store fed message by message, as live mode feeds it: retransmissions and expiry."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from analyzer.correlate.model import Conversation, ConversationKey, Kind
from analyzer.correlate.store import CHALLENGE_IDLE_NS, LINGER_NS, CallStore, _top_branch, _top_branch_text, is_over
from analyzer.diagnose.verdict import diagnose
from analyzer.errors import SipflowError
from analyzer.reader import read_messages
from analyzer.sip.message import Origin, SipMessage
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


def _conversations(convs: list[Conversation]) -> list[tuple[ConversationKey, list[int], int]]:
    return sorted((c.key, [m.frame for m in c.messages], c.follows_ns) for c in convs)


AAA = "wireshark-samplecaptures/aaa.pcap"
"""A phone registering on one Call-ID for 16 minutes: refreshes minutes apart, some after a
200 or a 403 (over after 32 s), some after a 401 (held 120 s for the credentials)."""


def test_a_challenged_call_waits_for_its_credentials(shared_pcaps: Path) -> None:
    # aaa.pcap: a 407, its ACK, and the INVITE with credentials 32.4 s after the ACK
    store = CallStore()
    msgs = [m for m in read_messages(shared_pcaps / AAA) if m.call_id == "85216695-42dcdb1d@192.168.1.2"]
    for m in msgs[:5]:
        store.feed(m)
    ack = msgs[4].origin.ts_ns
    assert (msgs[3].status, msgs[4].method, msgs[5].origin.ts_ns - ack) == (407, "ACK", 32_402_538_000)
    assert store.expire(ack + LINGER_NS) == []
    assert [c.call_id for c in store.expire(ack + CHALLENGE_IDLE_NS)] == ["85216695-42dcdb1d@192.168.1.2"]


def test_a_message_past_the_idle_limit_starts_another_conversation(shared_pcaps: Path) -> None:
    store = CallStore()
    for m in read_messages(shared_pcaps / AAA):
        store.feed(m)
    reg = [c for c in _conversations(store.finish()) if c[0][0] == "578222729-4665d775@578222732-4665d772"]
    assert [(frames[0], frames[-1], len(frames), follows) for _, frames, follows in reg] == [
        (19, 32, 5, 0),  # 401, then 403 at 09:33:10
        (107, 122, 4, 0),  # 90 s later: 401, credentials, 401 again at 09:34:57
        (143, 182, 9, 0),  # 150 s later (past the 120 s a challenge is held): 401s, then 200
        (421, 454, 8, 0),  # 8 minutes later: 401s again (only a call notes the conversation before it)
    ]


@given(st.sets(st.integers(0, 80)))
def test_sweeps_between_messages_change_no_conversation(shared_pcaps: Path, sweeps: set[int]) -> None:
    """Whether the store was swept between two messages (when a streaming run sweeps
    depends on how many messages came, so on how many processes share the capture) does
    not change which conversation a message joins."""
    msgs = list(read_messages(shared_pcaps / AAA))
    once, swept = CallStore(), CallStore()
    out: list[Conversation] = []
    for i, m in enumerate(msgs):
        once.feed(m)
        swept.feed(m)
        if i in sweeps:
            out += swept.expire(m.origin.ts_ns)
    assert _conversations(out + swept.finish()) == _conversations(once.finish())


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


def _again(msgs: list[SipMessage], offset_ns: int) -> list[SipMessage]:
    """The same messages ``offset_ns`` later (a UA that reuses its Call-ID for the next call)."""
    return [m._replace(origin=m.origin._replace(ts_ns=m.origin.ts_ns + offset_ns)) for m in msgs]


@pytest.mark.parametrize(
    ("after_s", "noted"),
    [(31, None), (33, 33), (32 + 299, 331), (32 + 301, 0)],  # held 32 s after the BYE; noted for 300 s more
)
def test_a_call_id_that_comes_back_is_another_call_noted(sample_pcaps: Path, after_s: int, noted: int | None) -> None:
    call = [m for m in read_messages(sample_pcaps / "udp_call.pcap") if m.call_id == "1-udp_call@198.18.0.1"]
    last = call[-1].origin.ts_ns
    for sweep in (False, True):
        store = CallStore()
        for m in call:
            store.feed(m)
        out = store.expire(last + after_s * 1_000_000_000 - 1) if sweep else []
        for m in _again(call, last - call[0].origin.ts_ns + after_s * 1_000_000_000):
            store.feed(m)
        convs = out + store.finish()
        if noted is None:
            assert [len(c.messages) for c in convs] == [2 * len(call)]
            continue
        assert [(len(c.messages), c.follows_ns) for c in convs] == [(len(call), 0), (len(call), noted and last)]
        found = [f for f in diagnose(convs[1], convs[1].last_ns).findings if f.rule == "call_id_came_back"]
        assert len(found) == (1 if noted else 0)
        for finding in found:
            assert finding.explanation.startswith(f"Its Call-ID came back {after_s:,}.0 s after the last message of")


def _brute_over(store: CallStore, now_ns: int) -> list[tuple[str, Kind]]:
    """Which open conversations :meth:`CallStore.expire` must hand out by ``now_ns``, found by
    looking at every one, in the store's order."""
    quiet = now_ns - LINGER_NS
    return [k for k, c in store.conversations.items() if c.last_ns <= quiet and is_over(c, now_ns)]


@given(
    st.lists(st.integers(-1_000, 1_000), min_size=1, max_size=3),
    st.sets(st.integers(0, 400)),
    st.integers(0, 400),
)
def test_expire_and_first_start_agree_with_a_look_at_every_conversation(
    shared_pcaps: Path, offsets_s: list[int], sweeps: set[int], ahead_s: int
) -> None:
    """The store's heaps give what a pass over every open conversation gives, also where the
    clock goes back (copies of a capture shifted earlier) and a Call-ID comes back."""
    msgs = list(read_messages(shared_pcaps / AAA))
    stream = [m for offset in offsets_s for m in _again(msgs, offset * 1_000_000_000)]
    store = CallStore()
    for i, m in enumerate(stream):
        store.feed(m)
        starts = [c.start_ns for c in store.conversations.values()]
        assert store.first_start() == (min(starts) if starts else None)
        if i in sweeps:
            now = m.origin.ts_ns + ahead_s * 1_000_000_000
            expected = _brute_over(store, now)
            held = len(store.over)
            out = store.expire(now)
            assert [(c.call_id, c.kind) for c in out[held:]] == expected
    store.finish()
    assert store.first_start() is None


def test_the_heaps_stay_near_the_open_conversations(sample_pcaps: Path) -> None:
    """A call answered and never ended stays open 4 hours; the calls after it come and go,
    and what the store keeps of them is rebuilt away."""
    call = [m for m in read_messages(sample_pcaps / "udp_call.pcap") if m.call_id == "1-udp_call@198.18.0.1"]
    answered = [m for m in call if m.method != "BYE" and m.cseq_method != "BYE"]
    store = CallStore()
    for m in answered:
        store.feed(m)
    first = answered[0].origin.ts_ns
    for n in range(1, 5_001):
        ts = first + n * 1_000_000_000
        for m in call:
            store.feed(m._replace(call_id=f"{n}-again", origin=m.origin._replace(ts_ns=ts)))
        if not n % 100:
            store.expire(ts)
            assert store.first_start() == first
            assert len(store._by_start) + len(store._by_last) <= 4 * len(store.conversations) + 4096
    assert len(store.conversations) == 1 + 32  # the open call, and the calls of the last 32 s
    assert len(store._by_start) < 1_000  # rebuilt: 5,000 calls came and went after the open one
