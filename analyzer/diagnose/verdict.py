"""One conversation in, one :class:`CallReport` out: outcome, breaking message, findings, timings."""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass
from typing import TypeVar

from analyzer.correlate.model import (
    Conversation,
    ConversationKey,
    Kind,
    Outcome,
    Transaction,
    conversation_key,
    hostport,
)
from analyzer.correlate.state import Event, call_outcome, request_outcome, run_call
from analyzer.decode.pipeline import Unreachable
from analyzer.diagnose.q850 import cause_name
from analyzer.diagnose.rules import BREAKING_RULES, FINDING_RULES, REQUEST_FINDING_RULES, Finding, RuleInput
from analyzer.diagnose.timing import Timings, call_timings, registration_timings
from analyzer.diagnose.view import CallView, call_events, call_view
from analyzer.pickling import by_fields
from analyzer.sip.fields import NameAddr, name_addr, parse_int
from analyzer.sip.message import SipMessage

_T = TypeVar("_T")

_NOT_FAILED = (
    Outcome.ANSWERED,
    Outcome.CANCELLED,
    Outcome.IN_PROGRESS,
    Outcome.REGISTERED,
    Outcome.UNREGISTERED,
)


@by_fields
@dataclass(frozen=True, slots=True)
class Breaking:
    """The message that broke a conversation, and why."""

    frame: int
    time_ns: int
    code: int | None
    reason: str
    method: str
    cseq: int
    src: str
    dst: str
    hop: str
    """Where the failure came from: ``caller leg`` or ``A -> B``, the leg whose answer it was."""
    rule: str
    explanation: str
    hint: str


@by_fields
@dataclass(frozen=True, slots=True)
class CallReport:
    call_id: str
    kind: Kind
    outcome: Outcome
    state: str
    start_ns: int
    end_ns: int
    caller: str
    callee: str
    caller_addr: str
    """ip:port the first request came from."""
    callee_addr: str
    """ip:port it was sent to (the next hop: a proxy, a trunk, the callee)."""
    final_code: int | None
    final_reason: str
    breaking: Breaking | None
    findings: tuple[Finding, ...]
    timings: Timings
    messages: int
    retransmissions: int
    frames: tuple[int, ...]
    addresses: frozenset[str] = frozenset()
    """Every IP address a message of it came from or went to (for filters)."""
    codes: frozenset[int] = frozenset()
    """Every response code seen in it, on any leg."""
    request_user: str = ""
    """User part of the first request's Request-URI (the dialled number)."""

    @property
    def key(self) -> ConversationKey:
        """Its conversation's :attr:`analyzer.correlate.model.Conversation.key`."""
        return conversation_key(self.call_id, self.kind, self.start_ns)


def _user_host(na: NameAddr | None) -> str:
    if na is None or na.parsed is None:
        return na.uri if na is not None else ""
    p = na.parsed
    return f"{p.user}@{p.host}" if p.user else p.host


def _party(value: str | None) -> str:
    """``user@host`` of a From or To value: :func:`_user_host` of its name-addr."""
    if value and '"' not in value and "," not in value:
        lt = value.find("<")
        gt = value.find(">", lt) if lt >= 0 else -1
        if gt >= 0:
            # Without quotes or commas, the URI is what the first <...> holds, and what follows
            # it (the tag, new on every call) cannot change it: the rest repeats call after call.
            return _party_of(value[: gt + 1])
    return sys.intern(_user_host(name_addr(value)))


@functools.lru_cache(maxsize=4096)
def _party_of(name_addr_text: str) -> str:
    return sys.intern(_user_host(name_addr(name_addr_text)))


def diagnose(conv: Conversation, capture_end_ns: int, unreachable: tuple[Unreachable, ...] = ()) -> CallReport:
    """``unreachable``: the capture's ICMP errors, evidence for requests that got no answer."""
    if conv.kind is Kind.CALL:
        return _call(conv, capture_end_ns, unreachable)
    return _request(conv, capture_end_ns, unreachable)


def _call(conv: Conversation, capture_end_ns: int, unreachable: tuple[Unreachable, ...]) -> CallReport:
    view = call_view(conv)
    gone = dialog_gone(view)
    state = run_call(_with_dialog_gone(call_events(view)) if gone is not None else call_events(view))
    tx = view.deciding
    outcome = call_outcome(state, tx.first_ns, tx.last_ns, capture_end_ns) if tx is not None else _midcall(conv)
    msg = _breaking_message(conv, view, outcome, tx, gone)
    breaking = _breaking(RuleInput(conv, view, outcome, msg, tx, unreachable)) if msg is not None else None
    findings = [f for rule in FINDING_RULES for f in rule(conv, view)]
    final = tx.final if tx is not None else None
    callee_addr = view.invites[0].dst if view.invites else ""
    addrs = (view.caller, callee_addr)
    return _report(conv, outcome, str(state), addrs, breaking, findings, call_timings(view), final)


def _midcall(conv: Conversation) -> Outcome:
    """A call whose INVITE was not captured (capture started mid-call)."""
    return Outcome.ANSWERED if conv.by_method("BYE") or conv.acked else Outcome.IN_PROGRESS


def dialog_gone(view: CallView) -> SipMessage | None:
    """The 481 that ended an answered call: the final response to a re-INVITE or UPDATE sent
    after the answer and before any BYE. RFC 3261 §12.2.1.2: a 481 to a request inside a
    dialog means the far end no longer has it, and the UAC ends the dialog. (A 481 to the
    BYE itself ends nothing more: the caller was hanging up anyway.)"""
    answered = view.answered
    if answered is None or answered.final is None or not (view.reinvites or view.by_method("UPDATE")):
        return None
    answer_ns = answered.final.origin.ts_ns
    bye = view.bye
    txs = sorted((*view.reinvites, *view.by_method("UPDATE")), key=lambda t: t.first_ns)
    for t in txs:
        final = t.final
        if final is None or final.status != 481 or t.first_ns < answer_ns:
            continue
        return final if bye is None or t.first_ns < bye.first_ns else None
    return None


def _with_dialog_gone(events: list[Event]) -> list[Event]:
    """``events`` with the 481 of :func:`dialog_gone` in its place: after the answer and
    before the first BYE, the only events that can follow it."""
    byes = [n for n, e in enumerate(events) if e in (Event.BYE, Event.BYE_ERROR)]
    at = byes[0] if byes else len(events)
    return [*events[:at], Event.DIALOG_GONE, *events[at:]]


def _breaking_message(
    conv: Conversation, view: CallView, outcome: Outcome, tx: Transaction | None, gone: SipMessage | None
) -> SipMessage | None:
    if outcome in _NOT_FAILED or tx is None:
        return None
    if outcome is Outcome.DROPPED and gone is not None:
        return gone
    if outcome is Outcome.DROPPED:
        return view.bye.request if view.bye is not None else None
    if outcome is Outcome.TIMEOUT:
        return tx.request
    return tx.final


def _breaking(inp: RuleInput) -> Breaking | None:
    msg, view = inp.msg, inp.view
    if msg is None:
        return None
    finding = next(f for f in (rule(inp) for rule in BREAKING_RULES) if f is not None)
    explanation = finding.explanation + ("" if finding.rule == "bye_with_error" else _q850_note(msg))
    hop, hop_note = _hop(view, msg)
    o = msg.origin
    return Breaking(
        frame=msg.frame,
        time_ns=o.ts_ns,
        code=msg.status or None,
        reason=msg.reason,
        method=msg.cseq_method if msg.status else msg.method,
        cseq=msg.cseq,
        src=hostport(o.src_ip, o.src_port),
        dst=hostport(o.dst_ip, o.dst_port),
        hop=hop,
        rule=finding.rule,
        explanation=explanation + hop_note,
        hint=finding.hint,
    )


def _q850_note(msg: SipMessage) -> str:
    notes = [
        f" Reason: Q.850 cause {r.cause} ({cause_name(r.cause)})."
        for r in msg.reasons
        if r.protocol == "Q.850" and r.cause is not None
    ]
    return "".join(notes[:1])


def _hop(view: CallView | None, msg: SipMessage) -> tuple[str, str]:
    """Which leg the failure came from, for captures taken on a proxy (RFC 3261 §16.7)."""
    if not msg.status:
        o = msg.origin
        return f"{hostport(o.src_ip, o.src_port)} -> {hostport(o.dst_ip, o.dst_port)}", ""
    if view is None or not view.downstream:
        return "caller leg", ""
    before = [
        t
        for t in view.downstream
        if t.final is not None
        and t.final.status >= 300
        and t.final.origin.ts_ns <= msg.origin.ts_ns
        and not _cancelled_by_hop(view.conv, t)
    ]
    if not before:
        proxy = hostport(msg.origin.src_ip, msg.origin.src_port)
        return (
            f"{proxy} (generated)",
            f" The {msg.status} was generated by {proxy} itself, not by a hop behind it.",
        )
    same = [t for t in before if t.final is not None and t.final.status == msg.status]
    origin = (same or before)[-1]
    assert origin.final is not None
    hop = f"{origin.src} -> {origin.dst}"
    if origin.final.status != msg.status:
        return hop, (
            f" It came from {origin.dst}, which answered {origin.final.status} {origin.final.reason}; "
            f"the proxy turned it into {msg.status}."
        )
    return hop, f" It came from {origin.dst}."


def _cancelled_by_hop(conv: Conversation, tx: Transaction) -> bool:
    """A 487 on a leg whose client sent CANCEL (a losing fork, a proxy's Timer C) is no failure."""
    return (
        tx.final is not None
        and tx.final.status == 487
        and any(c.src == tx.src and c.cseq == tx.cseq for c in conv.by_method("CANCEL"))
    )


def _request(conv: Conversation, capture_end_ns: int, unreachable: tuple[Unreachable, ...]) -> CallReport:
    txs = sorted((t for t in conv.transactions.values() if t.method != "ACK"), key=lambda t: t.first_ns)
    last = txs[-1] if txs else None
    final = last.final if last is not None else None
    registration = conv.kind is Kind.REGISTRATION
    outcome = request_outcome(
        final.status if final is not None else None,
        registration=registration,
        credentials=last.has_credentials if last is not None else False,
        expires_zero=_expires_zero(last),
        waited_ns=capture_end_ns - (last.last_ns if last is not None else 0),
    )
    msg: SipMessage | None = None
    if outcome not in _NOT_FAILED and last is not None:
        msg = last.request if outcome is Outcome.TIMEOUT else final
    breaking = _breaking(RuleInput(conv, None, outcome, msg, last, unreachable))
    timings = registration_timings(conv) if registration else Timings()
    caller = last.src if last is not None else ""
    findings = [f for rule in REQUEST_FINDING_RULES for f in rule(conv, None)]
    addrs = (caller, last.dst if last is not None else "")
    return _report(conv, outcome, "", addrs, breaking, findings, timings, final)


def _expires_zero(tx: Transaction | None) -> bool:
    """A de-registration: Expires 0 or a Contact ;expires=0 on the REGISTER (RFC 3261 §10.2.2)."""
    if tx is None or tx.request is None:
        return False
    req = tx.request
    contact = req.headers.get("contact") or ""
    if contact.strip() == "*" or "expires=0" in contact.replace(" ", "").lower():
        return True
    return parse_int(req.headers.get("expires")) == 0


def _report(
    conv: Conversation,
    outcome: Outcome,
    state: str,
    addrs: tuple[str, str],
    breaking: Breaking | None,
    findings: list[Finding],
    timings: Timings,
    final: SipMessage | None,
) -> CallReport:
    first = next((m for m in conv.messages if m.status == 0), conv.messages[0])
    frames = sorted({f for m in conv.messages for f in m.origin.frames})
    return CallReport(
        call_id=conv.call_id,
        kind=conv.kind,
        outcome=outcome,
        state=state,
        start_ns=conv.start_ns,
        end_ns=conv.end_ns,
        caller=_party(first.headers.get("from")),
        callee=_party(first.headers.get("to")),
        caller_addr=sys.intern(addrs[0]),
        callee_addr=sys.intern(addrs[1]),
        final_code=final.status if final is not None else None,
        final_reason=final.reason if final is not None else "",
        breaking=breaking,
        findings=tuple(findings),
        timings=timings,
        messages=len(conv.messages),
        retransmissions=conv.retransmissions,
        frames=tuple(frames),
        addresses=_shared(frozenset([a for m in conv.messages for a in (m.origin.src_ip, m.origin.dst_ip)])),
        codes=_shared(frozenset([m.status for m in conv.messages if m.status])),
        request_user=_uri_user(first.uri) if first.status == 0 else "",
    )


@functools.lru_cache(maxsize=4096)
def _shared(items: frozenset[_T]) -> frozenset[_T]:
    """One copy of each small set: a flood's thousands of reports share their two addresses."""
    return items


def _uri_user(uri: str) -> str:
    """``sip:5550100@host;x`` → ``5550100``; ``tel:+1555`` → ``+1555``."""
    rest = uri.split(":", 1)[-1]
    return rest.split("@", 1)[0] if "@" in rest else rest.split(";", 1)[0]
