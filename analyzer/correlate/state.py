"""Everything that decides a conversation's state lives here (one table, as h11's _state.py).

A call is followed from the caller's side: the INVITE transactions the caller sent
(auth retries included), the final responses it got, its CANCEL and the dialog's BYE.
Each becomes an :class:`Event`; :data:`CALL_TRANSITIONS` moves a :class:`CallState`
(sngrep's names where it has one) and :data:`CALL_OUTCOMES` names the outcome.
Registrations and other requests are decided by their last transaction
(:func:`request_outcome`).
"""

from __future__ import annotations

from enum import StrEnum

from analyzer.correlate.model import Outcome

# RFC 3261 §17.1.1.2: Timer B = 64*T1 = 32 s. A request younger than this at the end of
# the capture may still be answered: the conversation is in progress, not timed out.
TIMER_B_NS = 32_000_000_000
# RFC 3261 §16.6 step 11: Timer C (> 3 min) bounds a proxied INVITE that got a provisional.
TIMER_C_NS = 180_000_000_000


class CallState(StrEnum):
    CALL_SETUP = "CALL SETUP"
    RINGING = "RINGING"
    CHALLENGED = "CHALLENGED"
    AUTH_RETRY = "AUTH RETRY"
    CANCELLING = "CANCELLING"
    IN_CALL = "IN CALL"
    CONFIRMED = "CONFIRMED"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"
    BUSY = "BUSY"
    NO_ANSWER = "NO ANSWER"
    DIVERTED = "DIVERTED"
    AUTH_FAILED = "AUTH FAILED"
    DROPPED = "DROPPED"


class Event(StrEnum):
    INVITE = "invite"
    INVITE_AUTH = "invite with credentials"
    RINGING = "18x"
    ANSWERED = "2xx"
    CHALLENGED = "401/407"
    REDIRECTED = "3xx"
    BUSY = "486/600"
    NO_ANSWER = "480/408 after ringing"
    TERMINATED = "487"
    FORBIDDEN = "403"
    FAILED = "other failure"
    CANCEL = "CANCEL"
    ACK = "ACK of 2xx"
    BYE = "BYE"
    BYE_ERROR = "BYE with an error Reason"
    DIALOG_GONE = "481 to a re-INVITE/UPDATE"


S, E = CallState, Event
_SETUP = (S.CALL_SETUP, S.RINGING, S.AUTH_RETRY, S.CANCELLING)
_FINAL_FOR_SETUP: dict[Event, CallState] = {
    E.RINGING: S.RINGING,
    E.ANSWERED: S.IN_CALL,
    E.CHALLENGED: S.CHALLENGED,
    E.REDIRECTED: S.DIVERTED,
    E.BUSY: S.BUSY,
    E.NO_ANSWER: S.NO_ANSWER,
    E.TERMINATED: S.NO_ANSWER,
    E.FORBIDDEN: S.REJECTED,
    E.FAILED: S.REJECTED,
    E.CANCEL: S.CANCELLING,
}

CALL_TRANSITIONS: dict[tuple[CallState, Event], CallState] = {
    **{(s, e): t for s in _SETUP for e, t in _FINAL_FOR_SETUP.items()},
    # Credentials change the meaning of the next challenge or 403 (RFC 3261 §22.2).
    **{(S.AUTH_RETRY, e): S.AUTH_FAILED for e in (E.CHALLENGED, E.FORBIDDEN)},
    (S.CANCELLING, E.TERMINATED): S.CANCELLED,
    (S.CANCELLING, E.NO_ANSWER): S.CANCELLED,
    (S.CANCELLING, E.FAILED): S.CANCELLED,
    # A new INVITE (new CSeq) starts the setup again: after a challenge, a redirect, a 423 …
    **{(s, E.INVITE): S.CALL_SETUP for s in (*_SETUP, S.CHALLENGED, S.DIVERTED, S.REJECTED, S.NO_ANSWER, S.BUSY)},
    **{(s, E.INVITE_AUTH): S.AUTH_RETRY for s in (*_SETUP, S.CHALLENGED, S.REJECTED, S.AUTH_FAILED)},
    (S.IN_CALL, E.ACK): S.CONFIRMED,
    (S.IN_CALL, E.BYE): S.COMPLETED,
    (S.IN_CALL, E.BYE_ERROR): S.DROPPED,
    (S.CONFIRMED, E.BYE): S.COMPLETED,
    (S.CONFIRMED, E.BYE_ERROR): S.DROPPED,
    # RFC 3261 §12.2.1.2: a 481 to a request inside the dialog ends the dialog; the far end
    # lost the call (restart, failover), the caller did not hang up.
    (S.IN_CALL, E.DIALOG_GONE): S.DROPPED,
    (S.CONFIRMED, E.DIALOG_GONE): S.DROPPED,
}

CALL_OUTCOMES: dict[CallState, Outcome] = {
    S.CALL_SETUP: Outcome.TIMEOUT,
    S.RINGING: Outcome.TIMEOUT,
    S.AUTH_RETRY: Outcome.TIMEOUT,
    S.CANCELLING: Outcome.CANCELLED,
    S.CHALLENGED: Outcome.AUTH_FAILED,
    S.IN_CALL: Outcome.ANSWERED,
    S.CONFIRMED: Outcome.ANSWERED,
    S.COMPLETED: Outcome.ANSWERED,
    S.CANCELLED: Outcome.CANCELLED,
    S.REJECTED: Outcome.REJECTED,
    S.BUSY: Outcome.BUSY,
    S.NO_ANSWER: Outcome.NO_ANSWER,
    S.DIVERTED: Outcome.REDIRECTED,
    S.AUTH_FAILED: Outcome.AUTH_FAILED,
    S.DROPPED: Outcome.DROPPED,
}

_WAITING = (S.CALL_SETUP, S.RINGING, S.AUTH_RETRY, S.CANCELLING, S.CHALLENGED)


def final_event(code: int, ringing: bool) -> Event:
    """The event a final response to the caller's INVITE is."""
    if 200 <= code < 300:
        return E.ANSWERED
    if code in (401, 407):
        return E.CHALLENGED
    if 300 <= code < 400:
        return E.REDIRECTED
    if code in (486, 600):
        return E.BUSY
    if code == 487:
        return E.TERMINATED
    if code == 480 or (code == 408 and ringing):
        return E.NO_ANSWER
    if code == 403:
        return E.FORBIDDEN
    return E.FAILED


def run_call(events: list[Event]) -> CallState:
    state = S.CALL_SETUP
    for event in events:
        state = CALL_TRANSITIONS.get((state, event), state)
    return state


def call_outcome(state: CallState, sent_ns: int, last_ns: int, capture_end_ns: int) -> Outcome:
    """Outcome of a call's final state. A call still waiting when the capture ended is in
    progress while its timer runs: Timer B from the INVITE's first sending (RFC 3261
    §17.1.1.2), or Timer C from the last thing heard once it rang or was cancelled."""
    if state in _WAITING and state is not S.CHALLENGED:
        ringing = state in (S.RINGING, S.CANCELLING)
        waited = capture_end_ns - (last_ns if ringing else sent_ns)
        if waited < (TIMER_C_NS if ringing else TIMER_B_NS):
            return Outcome.IN_PROGRESS
    return CALL_OUTCOMES[state]


def request_outcome(
    code: int | None,
    *,
    registration: bool,
    credentials: bool,
    expires_zero: bool,
    waited_ns: int,
) -> Outcome:
    """Outcome of a registration (or OPTIONS, MESSAGE …) from its last transaction.

    ``code`` is that transaction's final status (None when it got none), ``credentials``
    whether it carried Authorization, ``waited_ns`` how long the capture went on after it.
    """
    if code is None or code < 200:
        return Outcome.IN_PROGRESS if waited_ns < TIMER_B_NS else Outcome.TIMEOUT
    if code in (401, 407) and not credentials and waited_ns < TIMER_B_NS:
        return Outcome.IN_PROGRESS  # the capture ended before the client could answer the challenge
    if code < 300:
        if registration:
            return Outcome.UNREGISTERED if expires_zero else Outcome.REGISTERED
        return Outcome.ANSWERED
    if code in (401, 407) and registration:
        return Outcome.AUTH_FAILED
    if code == 403 and registration and credentials:
        return Outcome.AUTH_FAILED
    return Outcome.REJECTED
