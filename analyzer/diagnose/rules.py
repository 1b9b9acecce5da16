"""Diagnosis rules: a call in, findings out.

Each rule is a small function over a :class:`RuleInput`. :data:`BREAKING_RULES` are
tried in order on the message that broke a call; the first that matches names it
(the generic catalogue rule always matches last). :data:`FINDING_RULES` add findings
about anything else in the call (a failed re-INVITE, glare, Q.850 causes …).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass

from analyzer.correlate.model import Conversation, Outcome, Transaction
from analyzer.correlate.store import over_ns
from analyzer.decode.pipeline import Unreachable
from analyzer.diagnose.codes import lookup
from analyzer.diagnose.q850 import cause_name
from analyzer.diagnose.view import CallView, from_tag, ringing, to_tag
from analyzer.pickling import by_fields
from analyzer.sip.message import SipMessage
from analyzer.sip.sdp import codec_names, parse_sdp


@by_fields
@dataclass(frozen=True, slots=True)
class Finding:
    rule: str
    severity: str
    """``failure`` (it broke the call), ``warning`` (something went wrong on a call that
    otherwise worked) or ``info``."""
    explanation: str
    hint: str
    frame: int | None = None
    code: int | None = None


@dataclass(frozen=True, slots=True)
class RuleInput:
    conv: Conversation
    view: CallView | None
    outcome: Outcome
    msg: SipMessage | None
    """The breaking message (a response, or the unanswered request)."""
    tx: Transaction | None
    """Its transaction on the caller's side."""
    unreachable: tuple[Unreachable, ...] = ()
    """ICMP destination-unreachable errors seen in the capture."""


Rule = Callable[[RuleInput], Finding | None]


def _code(i: RuleInput) -> int:
    return i.msg.status if i.msg is not None else 0


def _fail(i: RuleInput, rule: str, explanation: str, hint: str | None = None) -> Finding:
    code = _code(i) or None
    return Finding(
        rule,
        "failure",
        explanation,
        hint if hint is not None else (lookup(code).hint if code else ""),
        i.msg.frame if i.msg is not None else None,
        code,
    )


def _codecs(msg: SipMessage | None) -> str:
    if msg is None or not msg.body:
        return "none"
    names = codec_names(parse_sdp(msg.body))
    return ", ".join(names) if names else "none"


def _with_sdp(msg: SipMessage) -> bool:
    return bool(msg.body) and msg.body.find(b"m=") >= 0


def early_media_rejected(i: RuleInput) -> Finding | None:
    """488/606 after a 183 with SDP: early media started, then the offer was rejected."""
    if _code(i) not in (488, 606) or i.tx is None:
        return None
    early = next((r for r in i.tx.responses if r.status == 183 and _with_sdp(r)), None)
    if early is None:
        return None
    return _fail(
        i,
        "early_media_rejected",
        f"The callee sent early media (183 with SDP, frame {early.frame}) and then rejected the offer with "
        f"{_code(i)}: offered {_codecs(i.tx.request)}; early media answered {_codecs(early)}.",
    )


def _rounds(i: RuleInput) -> tuple[int, int]:
    """(requests sent with credentials, challenges received after credentials)."""
    method = i.tx.method if i.tx is not None else "INVITE"
    txs = i.view.invites if i.view is not None else tuple(i.conv.by_method(method))
    with_creds = [t for t in txs if t.has_credentials]
    rechallenged = [t for t in with_creds if t.final is not None and t.final.status in (401, 407)]
    return len(with_creds), len(rechallenged)


def _realm(msg: SipMessage | None) -> str:
    auth = msg.auth if msg is not None else None
    return f" (realm {auth.realm!r})" if auth is not None and auth.realm else ""


def auth_loop(i: RuleInput) -> Finding | None:
    """401/407 again after credentials were sent: wrong password, user or realm."""
    if _code(i) not in (401, 407) or i.tx is None or not i.tx.has_credentials:
        return None
    sent, challenged = _rounds(i)
    user = ""
    if i.tx.request is not None and i.tx.request.auth is not None:
        user = f" for user {i.tx.request.auth.username!r}"
    return _fail(
        i,
        "auth_loop",
        f"Credentials{user} were sent {sent} time(s) and challenged again {challenged} time(s){_realm(i.msg)}: "
        "the password, the user name or the realm is wrong.",
        "Check the account's password and auth user name on the phone/trunk and that it answers the realm "
        "the server challenges with.",
    )


def challenge_unanswered(i: RuleInput) -> Finding | None:
    if _code(i) not in (401, 407) or i.tx is None or i.tx.has_credentials:
        return None
    return _fail(
        i,
        "challenge_unanswered",
        f"The caller was challenged with {_code(i)}{_realm(i.msg)} and never sent the request again with credentials.",
        "Configure credentials for this realm on the caller (or trust its address on the server).",
    )


def forbidden_after_credentials(i: RuleInput) -> Finding | None:
    if _code(i) != 403 or i.tx is None or not i.tx.has_credentials:
        return None
    return _fail(
        i,
        "auth_forbidden",
        "The server refused the request (403) although credentials were sent: wrong password, or the "
        "account may not make this call.",
        "Check the password and the account's permissions (dial plan, allowed destinations, IP ACL).",
    )


def redirect_not_followed(i: RuleInput) -> Finding | None:
    if not 300 <= _code(i) < 400 or i.msg is None:
        return None
    contact = i.msg.headers.get("contact") or "no Contact"
    invites = i.view.invites if i.view is not None else ()
    loop = sum(1 for t in invites if t.final is not None and 300 <= t.final.status < 400)
    what = f"redirected {loop} times (redirect loop)" if loop > 1 else "redirected and not followed"
    return _fail(i, "redirect_not_followed", f"The call was {what}: {_code(i)} to {contact}.")


def numbering(i: RuleInput) -> Finding | None:
    if _code(i) not in (404, 484, 485, 604) or i.msg is None:
        return None
    uri = i.tx.request.uri if i.tx is not None and i.tx.request is not None else "?"
    return _fail(i, "numbering", f"The dialled address {uri} was not accepted: {_label(i.msg)}.")


def callee_side(i: RuleInput) -> Finding | None:
    if _code(i) not in (480, 486, 600, 603) or i.msg is None:
        return None
    return _fail(i, "callee_rejected", f"The callee's side answered {_label(i.msg)}: {lookup(_code(i)).meaning}")


def request_timeout(i: RuleInput) -> Finding | None:
    if _code(i) != 408 or i.msg is None:
        return None
    rang = i.tx is not None and ringing(i.tx) is not None
    what = "after ringing: nobody answered" if rang else "without ringing: the next hop did not answer in time"
    return _fail(i, "request_timeout", f"A server gave up with 408 {what}.")


def no_final_response(i: RuleInput) -> Finding | None:
    if i.outcome is not Outcome.TIMEOUT or i.tx is None:
        return None
    tx = i.tx
    copies = tx.request_copies
    only = [r.status for r in tx.responses]
    heard = f"only {', '.join(map(str, only))} came back" if only else "nothing came back"
    until, call_id = over_ns(i.conv), i.conv.call_id
    icmp = [u for u in i.unreachable if _about(u, tx, until, call_id)]
    seen = ""
    if icmp:
        first = icmp[0]
        seen = f" ICMP destination unreachable came from {first.reporter} ({len(icmp)}x, first in frame {first.frame})."
    return Finding(
        "no_final_response",
        "failure",
        f"The {tx.method} to {tx.dst} was sent {copies} time(s) (Timer A/E retransmissions) and {heard}: "
        f"{tx.dst} is unreachable or not answering.{seen}",
        "Check that the next hop is up and reachable on this address, port and transport (firewall, DNS, "
        "routing); look for ICMP unreachable.",
        tx.request.frame if tx.request is not None else None,
        None,
    )


def _about(u: Unreachable, tx: Transaction, until_ns: int, call_id: str) -> bool:
    """Whether an ICMP error may be about ``tx``: to its destination, from its first send until
    the call was over (``until_ns``: later ones are another call's, and a streaming run judges
    the call then: found by comparing the ways of running an analysis), quoting its Call-ID
    when the quote holds one (it may be cut short: a prefix of it)."""
    return u.dst == tx.dst and tx.first_ns <= u.ts_ns < until_ns and u.may_quote(call_id)


def server_error(i: RuleInput) -> Finding | None:
    code = _code(i)
    if not 500 <= code < 600 or i.msg is None:
        return None
    retry = i.msg.headers.get("retry-after")
    extra = f"; it asks to retry after {retry} s" if retry else ""
    return _fail(i, "server_error", f"A server failed the call with {_label(i.msg)}{extra}.")


def interval_too_brief(i: RuleInput) -> Finding | None:
    if _code(i) not in (422, 423) or i.msg is None:
        return None
    minimum = i.msg.headers.get("min-se") or i.msg.headers.get("min-expires") or "?"
    return _fail(i, "interval_too_brief", f"{_label(i.msg)}: the server wants at least {minimum} s.")


def loop_detected(i: RuleInput) -> Finding | None:
    if _code(i) not in (482, 483) or i.msg is None:
        return None
    return _fail(i, "loop", f"{_label(i.msg)}: the request went round in a routing loop.{_loop_path(i)}")


def _loop_path(i: RuleInput) -> str:
    """On a capture that sees the hops (a proxy's): how often the request was relayed, and
    between which addresses. Each pass costs one Max-Forwards (RFC 3261 §16.6 step 3)."""
    if i.view is None or i.tx is None:
        return ""
    hops = [t for t in i.view.downstream if t.method == i.tx.method and t.cseq == i.tx.cseq]
    if len(hops) < 2:
        return ""
    addrs = list(dict.fromkeys(a for t in hops for a in (t.src, t.dst)))
    where = " and ".join(addrs) if len(addrs) == 2 else ", ".join(addrs)
    return f" It was relayed {len(hops)} times between {where}."


def extension_or_media(i: RuleInput) -> Finding | None:
    if _code(i) not in (415, 420, 421, 488, 606) or i.msg is None:
        return None
    unsupported = i.msg.headers.get("unsupported") or i.msg.headers.get("require") or ""
    offer = _codecs(i.tx.request) if i.tx is not None else "none"
    detail = f" (unsupported: {unsupported})" if unsupported else f" (offered codecs: {offer})"
    return _fail(i, "extension_or_media", f"{_label(i.msg)}{detail}.")


def ack_missing(i: RuleInput) -> Finding | None:
    if i.outcome is not Outcome.DROPPED or i.view is None:
        return None
    answered = i.view.answered_tx()
    if answered is None or answered.final is None or answered.cseq in i.conv.acked:
        return None
    ok = answered.final
    contact = ok.contact
    host = contact.parsed.host if contact is not None and contact.parsed is not None else ""
    nat = ""
    if host and _private(host) and not _private(ok.origin.src_ip):
        nat = f" Its Contact {host} is a private address behind NAT: the ACK cannot reach it."
    return Finding(
        "ack_missing",
        "failure",
        f"The 2xx (frame {ok.frame}) was never ACKed, so the callee retransmitted it and hung up.{nat}",
        "Fix NAT traversal: enable rport/force-rport and Contact rewriting (fix_nated_contact/SBC) or "
        "a correct external address on the callee.",
        ok.frame,
        ok.status,
    )


def bye_with_error(i: RuleInput) -> Finding | None:
    if i.outcome is not Outcome.DROPPED or i.msg is None or i.msg.method != "BYE":
        return None
    return Finding(
        "bye_with_error",
        "failure",
        f"The call was torn down by a BYE carrying an error: {_reasons(i.msg)}.",
        "See the cause: media timeout, session-timer expiry or a network failure on the side that sent it.",
        i.msg.frame,
        None,
    )


def dialog_gone(i: RuleInput) -> Finding | None:
    """An answered call ended by a 481 to a re-INVITE or UPDATE (RFC 3261 §12.2.1.2)."""
    if i.outcome is not Outcome.DROPPED or _code(i) != 481 or i.msg is None:
        return None
    return _fail(
        i,
        "call_leg_gone",
        f"The {i.msg.cseq_method} (CSeq {i.msg.cseq}) inside the answered call got 481: the other side no "
        "longer knows this dialog (it restarted, failed over or already ended the call), so the call is over.",
    )


def generic(i: RuleInput) -> Finding | None:
    if i.msg is None:
        return None
    if _code(i):
        return _fail(i, "final_response", f"{_label(i.msg)}: {lookup(_code(i)).meaning}")
    return Finding("no_final_response", "failure", f"{i.msg.label} got no final response.", "", i.msg.frame)


BREAKING_RULES: tuple[Rule, ...] = (
    ack_missing,
    bye_with_error,
    dialog_gone,
    no_final_response,
    early_media_rejected,
    auth_loop,
    challenge_unanswered,
    forbidden_after_credentials,
    redirect_not_followed,
    numbering,
    request_timeout,
    callee_side,
    interval_too_brief,
    loop_detected,
    extension_or_media,
    server_error,
    generic,
)


# -- findings on the rest of the call ------------------------------------------------------
def failed_reinvites(conv: Conversation, view: CallView | None) -> list[Finding]:
    out: list[Finding] = []
    for tx in _per_request(view.reinvites) if view is not None and view.reinvites else ():
        final = tx.final
        # A 481 did not refuse the offer, the dialog was gone: call_leg_gone reports it.
        if final is not None and final.status >= 300 and final.status != 481:
            what = "491 glare: both sides re-INVITEd at once" if final.status == 491 else _label(final)
            t38 = " (switch to T.38 fax)" if tx.request is not None and b"image" in tx.request.body else ""
            out.append(
                Finding(
                    "reinvite_failed",
                    "warning",
                    f"A re-INVITE{t38} failed: {what}.",
                    lookup(final.status).hint,
                    final.frame,
                    final.status,
                )
            )
    return out


def _per_request(txs: tuple[Transaction, ...]) -> list[Transaction]:
    """One transaction per request sent in the dialog. A capture on a proxy sees each
    re-INVITE once per leg, each leg its own transaction (a new branch per hop, RFC 3261
    §16.6 step 8); the copies share the sender's From tag and CSeq number (§12.2.1.1).
    Keep the sender's own leg, the copy with fewest Vias: its final is what the sender got."""
    kept: dict[object, Transaction] = {}
    for tx in txs:
        key = (from_tag(tx.request), tx.cseq, tx.method) if tx.request is not None else tx.key
        seen = kept.get(key)
        if seen is None or tx.vias < seen.vias:
            kept[key] = tx
    return sorted(kept.values(), key=lambda t: t.first_ns)


def leg_gone(conv: Conversation) -> list[Finding]:
    gone = tuple(
        tx
        for tx in conv.transactions.values()
        if tx.final is not None
        and tx.final.status == 481
        and tx.method in ("BYE", "INVITE", "UPDATE", "NOTIFY", "REFER")
    )
    if not gone:
        return []
    # A capture on a proxy sees the 481 on both legs: one finding per request, as it reached its sender.
    return [
        Finding(
            "call_leg_gone",
            "warning",
            f"481 on {tx.method}: the other side no longer knows this dialog.",
            lookup(481).hint,
            tx.final.frame,
            481,
        )
        for tx in _per_request(gone)
        if tx.final is not None
    ]


def q850_causes(conv: Conversation) -> list[Finding]:
    out: list[Finding] = []
    seen: set[tuple[int, int]] = set()
    for msg in conv.messages:
        if not msg.may_carry(b"reason") or "reason" not in msg.headers:
            continue
        for r in msg.reasons:
            if r.protocol == "Q.850" and r.cause is not None and (msg.status, r.cause) not in seen:
                seen.add((msg.status, r.cause))
                out.append(
                    Finding(
                        "q850_cause",
                        "info",
                        f"{msg.label} carries Q.850 cause {r.cause}: {cause_name(r.cause)}.",
                        "",
                        msg.frame,
                        msg.status or None,
                    )
                )
    return out


def came_back(conv: Conversation) -> list[Finding]:
    """A call whose Call-ID had an earlier call, over (idle past the time it is held:
    :func:`analyzer.correlate.store.is_over`) when this one's first message came."""
    if not conv.follows_ns or not conv.messages:
        return []
    gap_s = (conv.start_ns - conv.follows_ns) / 1e9
    return [
        Finding(
            "call_id_came_back",
            "warning",
            f"Its Call-ID came back {gap_s:,.1f} s after the last message of an earlier call with it, over by then "
            "(no message for longer than such a call is held): the two are reported apart.",
            "A new call must not reuse a Call-ID (RFC 3261 §8.1.1.4); a capture whose clock jumped looks the same.",
            conv.messages[0].frame,
        )
    ]


def _one_to(responses: list[SipMessage]) -> bool:
    """The responses carry one and the same To header. Compared as the bytes on the wire when
    each is one plain line (:meth:`Headers.first_line`: nothing decoded, nothing kept, where
    most calls read no more of their responses' To), as text otherwise."""
    lines = {r.headers.first_line("to") for r in responses}
    if None in lines:
        return len({r.headers.get("to") for r in responses}) < 2
    return len(lines) < 2


def forked(conv: Conversation, view: CallView | None) -> list[Finding]:
    """One INVITE answered by several To tags (each an early dialog, RFC 3261 §12.1.2), or,
    on a capture that sees the proxy's legs, relayed to several destinations (§16.6)."""
    out: list[Finding] = []
    for tx in view.invites if view is not None else ():
        # early dialogs show in 18x and 2xx; a failure generated by a proxy carries its own tag
        early = [r for r in tx.responses if 100 < r.status < 300]
        branches = _branches(view, tx) if view is not None and view.downstream else []
        # Answers with one and the same To header carry one tag: no need to parse it.
        if len(branches) < 2 and (len(early) < 2 or _one_to(early)):
            continue
        tags = list(dict.fromkeys(t for t in map(to_tag, early) if t))
        if len(tags) < 2 and len(branches) < 2:
            continue
        dialogs = f"{len(tags)} early dialogs answered (To tags {', '.join(repr(t) for t in tags)})"
        final = tx.final
        if len(branches) > 1:
            legs = ", ".join(
                f"{t.dst} {t.final.status if t.final is not None else 'no final response'}" for t in branches
            )
            what = f"to {len(branches)} branches from {branches[0].src}: {legs}"
            what += f"; {dialogs}" if len(tags) > 1 else ""
            won = f"; the caller got {final.status}" if final is not None else ""
        else:
            what = dialogs
            won = f"; {final.status} came from To tag {to_tag(final)!r}" if final is not None else ""
        out.append(
            Finding(
                "forked",
                "info",
                f"The INVITE (CSeq {tx.cseq}) forked: {what}{won}.",
                "",
                tx.request.frame if tx.request is not None else None,
            )
        )
    return out


def _branches(view: CallView, tx: Transaction) -> list[Transaction]:
    """The proxy's legs for ``tx``: the downstream INVITEs one address sent to the most
    distinct destinations, one per destination. A chain of hops (a loop) has one each."""
    by_src: dict[str, dict[str, Transaction]] = {}
    for t in view.downstream:
        if t.method == tx.method and t.cseq == tx.cseq:
            by_src.setdefault(t.src, {}).setdefault(t.dst, t)
    widest = max(by_src.values(), key=len, default={})
    return list(widest.values())


FindingRule = Callable[[Conversation, CallView | None], list[Finding]]
REQUEST_FINDING_RULES: tuple[FindingRule, ...] = (
    lambda conv, _view: leg_gone(conv),
    lambda conv, _view: q850_causes(conv),
)
"""Findings for any conversation."""
FINDING_RULES: tuple[FindingRule, ...] = (
    failed_reinvites,
    forked,
    lambda conv, _view: came_back(conv),
    *REQUEST_FINDING_RULES,
)
"""Findings for calls."""


# -- helpers -------------------------------------------------------------------------------
def _label(msg: SipMessage) -> str:
    return msg.label


def _reasons(msg: SipMessage) -> str:
    parts = []
    for r in msg.reasons:
        name = f" ({cause_name(r.cause)})" if r.protocol == "Q.850" and r.cause is not None else ""
        text = f' "{r.text}"' if r.text else ""
        parts.append(f"{r.protocol} cause {r.cause}{name}{text}")
    return "; ".join(parts) or "no Reason header"


def _private(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_private
    except ValueError:
        return False
