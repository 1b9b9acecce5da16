"""A call seen from the caller's side: which transactions are the caller's, which decide.

Pure functions over a :class:`Conversation`; the rules and the state table read these.
"""

from __future__ import annotations

from dataclasses import dataclass

from analyzer.correlate.model import Conversation, Transaction
from analyzer.correlate.state import Event, final_event
from analyzer.sip.message import SipMessage


def to_tag(msg: SipMessage) -> str:
    return msg.to_tag


def from_tag(msg: SipMessage) -> str:
    return msg.from_tag


@dataclass(frozen=True, slots=True)
class CallView:
    conv: Conversation
    caller: str
    """ip:port the first INVITE came from (the UAC, fewest Via headers)."""
    invites: tuple[Transaction, ...]
    """The caller's initial INVITE transactions (no To tag), in time order."""
    downstream: tuple[Transaction, ...]
    """Initial INVITE transactions on the other hops (proxy to callee, proxy to trunk …)."""
    reinvites: tuple[Transaction, ...]
    caller_tag: str

    @property
    def deciding(self) -> Transaction | None:
        """The caller's last INVITE transaction: the one whose answer decides the call."""
        return self.invites[-1] if self.invites else None

    def answered_tx(self) -> Transaction | None:
        for tx in self.invites:
            final = tx.final
            if final is not None and 200 <= final.status < 300:
                return tx
        return None


def call_view(conv: Conversation) -> CallView:
    initial = [t for t in conv.by_method("INVITE") if t.request is None or not to_tag(t.request)]
    reinvites = tuple(t for t in conv.by_method("INVITE") if t.request is not None and to_tag(t.request))
    caller, tag = "", ""
    firsts = [t for t in initial if t.request is not None]
    if firsts:
        first = min(firsts, key=lambda t: (t.vias, t.first_ns))
        caller = first.src
        tag = from_tag(first.request) if first.request is not None else ""
    elif initial:
        caller = initial[0].src
    mine = tuple(sorted((t for t in initial if t.src == caller), key=lambda t: t.first_ns))
    others = tuple(sorted((t for t in initial if t.src != caller), key=lambda t: t.first_ns))
    return CallView(conv, caller, mine, others, reinvites, tag)


def ringing(tx: Transaction) -> SipMessage | None:
    """First 18x (not 100) of a transaction."""
    for r in tx.responses:
        if 101 <= r.status < 200:
            return r
    return None


def bye_is_error(bye: SipMessage) -> bool:
    """A BYE whose Reason is a SIP error or a Q.850 cause other than normal clearing (RFC 3326)."""
    for r in bye.reasons:
        if r.protocol == "SIP" and r.cause is not None and r.cause >= 400:
            return True
        if r.protocol == "Q.850" and r.cause is not None and r.cause not in (16, 31):
            return True
    return False


def call_events(view: CallView) -> list[Event]:
    """The caller-side events of a call in time order, for :func:`run_call`."""
    timed: list[tuple[int, int, Event]] = []
    for tx in view.invites:
        timed.append((tx.first_ns, 0, Event.INVITE_AUTH if tx.has_credentials else Event.INVITE))
        ring = ringing(tx)
        if ring is not None:
            timed.append((ring.origin.ts_ns, 1, Event.RINGING))
        final = tx.final
        if final is not None:
            timed.append((final.origin.ts_ns, 2, final_event(final.status, ring is not None)))
    conv = view.conv
    for tx in conv.by_method("CANCEL"):
        if tx.src == view.caller:
            timed.append((tx.first_ns, 1, Event.CANCEL))
    for tx in conv.by_method("ACK"):
        if tx.src == view.caller or not view.caller:
            timed.append((tx.first_ns, 3, Event.ACK))
    bye = first_bye(conv)
    if bye is not None and bye.request is not None:
        timed.append((bye.first_ns, 4, Event.BYE_ERROR if _bye_breaks(view, bye) else Event.BYE))
    timed.sort(key=lambda t: (t[0], t[1]))
    return [e for _, _, e in timed]


def first_bye(conv: Conversation) -> Transaction | None:
    byes = [t for t in conv.by_method("BYE") if t.request is not None]
    return min(byes, key=lambda t: t.first_ns) if byes else None


# RFC 3261 §13.3.1.4: a UAS retransmits its 2xx until Timer H (64*T1 = 32 s) and then
# ends the dialog with a BYE; a BYE from the callee this late after an unACKed 2xx is that.
UNACKED_BYE_NS = 30_000_000_000


def _bye_breaks(view: CallView, bye: Transaction) -> bool:
    assert bye.request is not None
    if bye_is_error(bye.request):
        return True
    answered = view.answered_tx()
    if answered is None or answered.final is None or answered.cseq in view.conv.acked:
        return False
    by_callee = from_tag(bye.request) != view.caller_tag
    return by_callee and bye.first_ns - answered.final.origin.ts_ns >= UNACKED_BYE_NS
