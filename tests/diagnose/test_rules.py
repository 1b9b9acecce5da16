"""Rules of analyzer.diagnose.rules on real messages, changed where a rule has a shortcut."""

from __future__ import annotations

from pathlib import Path

from analyzer.correlate.store import CallStore
from analyzer.diagnose.verdict import diagnose
from analyzer.reader import read_messages
from analyzer.sip.message import SipMessage
from analyzer.sip.parser import parse_message


def _forked(messages: list[SipMessage]) -> list[str]:
    store = CallStore()
    for msg in messages:
        store.feed(msg)
    end = messages[-1].origin.ts_ns
    return [f.explanation for c in store.finish() for f in diagnose(c, end).findings if f.rule == "forked"]


def _to_folded(msg: SipMessage) -> SipMessage:
    """``msg`` with its To value folded onto a line of its own (RFC 3261 §7.3.1: the same header)."""
    raw = msg.raw.replace(b"\r\nTo: ", b"\r\nTo:\r\n ", 1)
    assert raw != msg.raw
    return parse_message(raw, msg.origin)


def test_forked_reads_the_tags_of_to_headers_that_are_no_plain_line(shared_pcaps: Path) -> None:
    """The 180s of two phones carry two To tags: with every To folded (none of them one plain
    line, which the rule compares as bytes), the rule reads the tags all the same."""
    messages = list(read_messages(shared_pcaps / "sngrep/ipv6frag.pcap"))
    want = [
        "The INVITE (CSeq 1) forked: 2 early dialogs answered (To tags '1632476SIPpTag0171847', "
        "'1632476SIPpTag0271847'); 200 came from To tag '1632476SIPpTag0171847'."
    ]
    assert _forked(messages) == want
    folded = [_to_folded(m) if m.status else m for m in messages]
    early = [m for m in folded if 100 < m.status < 300]
    assert len(early) == 17
    assert {m.headers.first_line("to") for m in early} == {None}
    assert _forked(folded) == want
