"""Every INVITE Call-ID tshark sees is one call in sipflow: none hidden, none split."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from analyzer.analysis import analyze
from analyzer.correlate.model import Kind
from tests.oracle import SHARED_PCAPS, summary_rows, tshark_messages

pytestmark = pytest.mark.tools

CAPTURES = sorted(summary_rows(SHARED_PCAPS / "SUMMARY.tsv")) if (SHARED_PCAPS / "SUMMARY.tsv").is_file() else []

SPLIT = {
    "heplify/sip_ipv6_udp.pcap": (
        "its six messages are years apart (2012 to 2092): each comes long after the call was over (idle past "
        "the time a call is held, analyzer.correlate.store.is_over), so each starts a conversation of its own",
        6,
    ),
}
"""Captures where a Call-ID is rightly more than one call: why, and how many it is."""


@pytest.mark.parametrize("name", CAPTURES)
def test_invite_call_ids_are_calls(shared_pcaps: Path, name: str) -> None:
    path = shared_pcaps / name
    invite_ids = {m.call_id for m in tshark_messages(path) if m.method.upper() == "INVITE" or m.cseq_method == "INVITE"}
    calls = [r.call_id for r in analyze(path).calls if r.kind is Kind.CALL]
    split = {c: n for c, n in Counter(calls).items() if n > 1 and c}  # messages without a Call-ID are no one call
    assert list(split.values()) == ([SPLIT[name][1]] if name in SPLIT else []), "a Call-ID was split into several calls"
    assert invite_ids <= set(calls), f"INVITE Call-IDs not reported as calls: {sorted(invite_ids - set(calls))}"
