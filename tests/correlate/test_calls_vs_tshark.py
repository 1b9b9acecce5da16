"""Every INVITE Call-ID tshark sees is one call in sipflow: none hidden, none split."""

from __future__ import annotations

from pathlib import Path

import pytest

from analyzer.analysis import analyze
from analyzer.correlate.model import Kind
from tests.oracle import SHARED_PCAPS, summary_rows, tshark_messages

pytestmark = pytest.mark.tools

CAPTURES = sorted(summary_rows(SHARED_PCAPS / "SUMMARY.tsv")) if (SHARED_PCAPS / "SUMMARY.tsv").is_file() else []


@pytest.mark.parametrize("name", CAPTURES)
def test_invite_call_ids_are_calls(shared_pcaps: Path, name: str) -> None:
    path = shared_pcaps / name
    invite_ids = {m.call_id for m in tshark_messages(path) if m.method.upper() == "INVITE" or m.cseq_method == "INVITE"}
    calls = [r.call_id for r in analyze(path).calls if r.kind is Kind.CALL]
    assert len(calls) == len(set(calls)), "a Call-ID was split into several calls"
    assert invite_ids <= set(calls), f"INVITE Call-IDs not reported as calls: {sorted(invite_ids - set(calls))}"
