"""Per-call timings as RFC 6076 defines them (§4.1 RRD, §4.2 SRD, §4.3 SDT, §4.5 SDD)."""

from __future__ import annotations

from dataclasses import dataclass

from analyzer.correlate.model import Conversation, Transaction
from analyzer.diagnose.view import CallView, ringing
from analyzer.pickling import by_fields
from analyzer.sip.message import SipMessage


@by_fields
@dataclass(frozen=True, slots=True)
class Timings:
    pdd_ms: float | None = None
    """SRD / post-dial delay: first INVITE to the first non-100 provisional, or to the
    final response when there was none (RFC 6076 §4.2)."""
    setup_ms: float | None = None
    """First INVITE to the 2xx."""
    answer_ms: float | None = None
    """First 18x to the 2xx: how long it rang."""
    duration_s: float | None = None
    """SDT (RFC 6076 §4.3): 2xx to the BYE."""
    disconnect_ms: float | None = None
    """SDD (RFC 6076 §4.5): BYE to its final response."""
    hung_up_by: str | None = None
    """``caller`` or ``callee``: who sent the BYE."""
    rrd_ms: float | None = None
    """RRD (RFC 6076 §4.1): first REGISTER to the final 2xx."""


def _ms(a: int, b: int) -> float:
    return round((b - a) / 1e6, 3)


def call_timings(view: CallView) -> Timings:
    if not view.invites:
        return Timings()
    start = view.invites[0].first_ns
    first_ring = _first_ringing(view.invites)
    answered = view.answered
    pdd = None
    if first_ring is not None:
        pdd = _ms(start, first_ring.origin.ts_ns)
    elif (last_final := _last_final(view.invites)) is not None:
        pdd = _ms(start, last_final.origin.ts_ns)
    if answered is None or answered.final is None:
        return Timings(pdd_ms=pdd)
    ok_ns = answered.final.origin.ts_ns
    setup = _ms(start, ok_ns)
    ring_ms = _ms(first_ring.origin.ts_ns, ok_ns) if first_ring is not None else None
    bye = view.bye
    if bye is None or bye.request is None:
        return Timings(pdd_ms=pdd, setup_ms=setup, answer_ms=ring_ms)
    bye_final = bye.final
    return Timings(
        pdd_ms=pdd,
        setup_ms=setup,
        answer_ms=ring_ms,
        duration_s=round((bye.first_ns - ok_ns) / 1e9, 3),
        disconnect_ms=_ms(bye.first_ns, bye_final.origin.ts_ns) if bye_final is not None else None,
        hung_up_by="caller" if view.from_caller(bye.request) else "callee",
    )


def _first_ringing(txs: tuple[Transaction, ...]) -> SipMessage | None:
    for tx in txs:
        ring = ringing(tx)
        if ring is not None:
            return ring
    return None


def _last_final(txs: tuple[Transaction, ...]) -> SipMessage | None:
    for tx in reversed(txs):
        final = tx.final
        if final is not None:
            return final
    return None


def registration_timings(conv: Conversation) -> Timings:
    txs = sorted(conv.by_method("REGISTER"), key=lambda t: t.first_ns)
    if not txs:
        return Timings()
    for tx in txs:
        final = tx.final
        if final is not None and 200 <= final.status < 300:
            return Timings(rrd_ms=_ms(txs[0].first_ns, final.origin.ts_ns))
    return Timings()
