"""A call seen from the caller's side: which transactions are the caller's, which decide.

Pure functions over a :class:`Conversation`; the rules and the state table read these.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter

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
    first: SipMessage | None
    """The request of the caller's first INVITE (its From names the caller)."""
    answered: Transaction | None
    """The first of ``invites`` answered with a 2xx."""
    bye: Transaction | None
    """The dialog's first BYE (:func:`first_bye`)."""
    methods: Mapping[str, Sequence[Transaction]]
    """The conversation's transactions by method, in arrival order."""

    @property
    def deciding(self) -> Transaction | None:
        """The caller's last INVITE transaction: the one whose answer decides the call."""
        return self.invites[-1] if self.invites else None

    @property
    def caller_tag(self) -> str:
        return from_tag(self.first) if self.first is not None else ""

    def answered_tx(self) -> Transaction | None:
        return self.answered

    def from_caller(self, msg: SipMessage) -> bool:
        """``msg`` carries the caller's From tag (a BYE the caller sent, not the callee)."""
        # The same From header carries the same tag: comparing the values spares parsing them.
        if self.first is not None and msg.headers.get("from") == self.first.headers.get("from"):
            return True
        return from_tag(msg) == self.caller_tag

    def by_method(self, method: str) -> Sequence[Transaction]:
        """``conv.by_method(method)``, sorted out once for all the rules."""
        return self.methods.get(method, ())


def call_view(conv: Conversation) -> CallView:
    methods: dict[str, list[Transaction]] = {}
    for t in conv.transactions.values():
        methods.setdefault(t.method, []).append(t)
    initial: list[Transaction] = []
    reinvites: list[Transaction] = []
    for t in methods.get("INVITE", ()):
        (reinvites if t.request is not None and to_tag(t.request) else initial).append(t)
    caller, first = "", None
    firsts = [t for t in initial if t.request is not None]
    if firsts:
        # Counting Vias reads headers: only worth it when there is a choice.
        tx = firsts[0] if len(firsts) == 1 else min(firsts, key=lambda t: (t.vias, t.first_ns))
        caller, first = tx.src, tx.request
    elif initial:
        caller = initial[0].src
    mine = _in_time_order([t for t in initial if t.src == caller])
    return CallView(
        conv,
        caller,
        mine,
        _in_time_order([t for t in initial if t.src != caller]),
        tuple(reinvites),
        first,
        answered=next((t for t in mine if _is_2xx(t.final)), None),
        bye=_first_request(methods.get("BYE", ())),
        methods=methods,
    )


def _first_ns(tx: Transaction) -> int:
    return tx.first_ns


def _in_time_order(txs: list[Transaction]) -> tuple[Transaction, ...]:
    if len(txs) > 1:
        txs.sort(key=_first_ns)
    return tuple(txs)


def _is_2xx(msg: SipMessage | None) -> bool:
    return msg is not None and 200 <= msg.status < 300


def ringing(tx: Transaction) -> SipMessage | None:
    """First 18x (not 100) of a transaction."""
    for r in tx.responses:
        if 101 <= r.status < 200:
            return r
    return None


def bye_is_error(bye: SipMessage) -> bool:
    """A BYE whose Reason is a SIP error or a Q.850 cause other than normal clearing (RFC 3326)."""
    if not bye.may_carry(b"reason"):
        return False
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
        timed.append((tx.first_ns, 0, Event.INVITE_AUTH if _with_credentials(tx) else Event.INVITE))
        ring = ringing(tx)
        if ring is not None:
            timed.append((ring.origin.ts_ns, 1, Event.RINGING))
        final = tx.final
        if final is not None:
            timed.append((final.origin.ts_ns, 2, final_event(final.status, ring is not None)))
    for tx in view.by_method("CANCEL"):
        if tx.src == view.caller:
            timed.append((tx.first_ns, 1, Event.CANCEL))
    for tx in view.by_method("ACK"):
        if tx.src == view.caller or not view.caller:
            timed.append((tx.first_ns, 3, Event.ACK))
    bye = view.bye
    if bye is not None:
        timed.append((bye.first_ns, 4, Event.BYE_ERROR if _bye_breaks(view, bye) else Event.BYE))
    timed.sort(key=itemgetter(0, 1))
    return [e for _, _, e in timed]


def _with_credentials(tx: Transaction) -> bool:
    return tx.request is not None and tx.has_credentials


def first_bye(conv: Conversation) -> Transaction | None:
    return _first_request(conv.by_method("BYE"))


def _first_request(txs: Iterable[Transaction]) -> Transaction | None:
    """The earliest of ``txs`` whose request was captured."""
    sent = [t for t in txs if t.request is not None]
    return min(sent, key=_first_ns) if sent else None


# RFC 3261 §13.3.1.4: a UAS retransmits its 2xx until Timer H (64*T1 = 32 s) and then
# ends the dialog with a BYE; a BYE from the callee this late after an unACKed 2xx is that.
UNACKED_BYE_NS = 30_000_000_000


def _bye_breaks(view: CallView, bye: Transaction) -> bool:
    assert bye.request is not None
    if bye_is_error(bye.request):
        return True
    answered = view.answered
    if answered is None or answered.final is None or answered.cseq in view.conv.acked:
        return False
    by_callee = not view.from_caller(bye.request)
    return by_callee and bye.first_ns - answered.final.origin.ts_ns >= UNACKED_BYE_NS
