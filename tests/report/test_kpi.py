"""KPIs on a known mix of sample captures, values worked out by hand.

The mix: udp_call (3 answered, each ended by BYE), rule_callee_busy (486 busy, 603
rejected), rule_no_answer (480 and 408 after ringing), rule_timeout (2 INVITEs with no
answer at all, 1 answered redial ended by BYE): 10 attempts, 4 answered.
"""

from __future__ import annotations

from pathlib import Path

import analyzer
from analyzer.report.kpi import kpis

MIX = ("udp_call.pcap", "rule_callee_busy.pcap", "rule_no_answer.pcap", "rule_timeout.pcap")


def test_kpis_by_hand(sample_pcaps: Path) -> None:
    k = kpis(analyzer.analyze([sample_pcaps / n for n in MIX]).calls)
    assert (k.attempts, k.answered, k.failed) == (10, 4, 6)
    assert k.asr == 40.0  # 4 answered / 10
    assert k.ner == 80.0  # (4 answered + 486 + 603 + 480 + 408-after-ringing) / 10
    assert k.ser == 40.0  # 4 / (10 - 0 redirected)
    assert k.seer == 70.0  # (4 + 486 + 603 + 480) / 10
    assert k.isa == 30.0  # (one 408 + two without a final) / 10
    assert k.scr == 40.0  # 4 answered and ended by BYE / 10
    assert (k.registrations, k.ira) == (0, None)
