"""What the correlator builds: transactions grouped into conversations (calls, registrations …).

Terms follow RFC 3261: a *transaction* is a request with its responses (§17), keyed
by the top Via branch, the CSeq number and the method; a *conversation* is what one
Call-ID carries for one purpose (a call, a registration, an OPTIONS ping …). A
Call-ID can carry several conversations (a REGISTER then an INVITE, as SIPp's
branch scenarios do), never one conversation over several Call-IDs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from analyzer.decode.ip import hostport
from analyzer.sip.message import SipMessage

__all__ = ["Conversation", "Kind", "Outcome", "Transaction", "TxKey", "hostport"]


class Kind(StrEnum):
    CALL = "call"
    REGISTRATION = "registration"
    OPTIONS = "options"
    OTHER = "other"


class Outcome(StrEnum):
    """The fixed outcome vocabulary (documented in the README)."""

    ANSWERED = "answered"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    AUTH_FAILED = "auth_failed"
    REDIRECTED = "redirected"
    TIMEOUT = "timeout"
    DROPPED = "dropped"
    IN_PROGRESS = "in_progress"
    REGISTERED = "registered"
    UNREGISTERED = "unregistered"


TxKey = tuple[str, int, str]
"""(top Via branch, CSeq number, method) — RFC 3261 §17.1.3 / §17.2.3."""


ConversationKey = tuple[str, str, int]
"""(Call-ID, kind, start time in ns): one conversation. A Call-ID's conversation of a kind that
was over (idle past its limit, :func:`analyzer.correlate.store.is_over`) when its next message
came is followed by another with the same Call-ID and kind, from that message on."""


def conversation_key(call_id: str, kind: Kind, start_ns: int) -> ConversationKey:
    """A conversation's key, as its :class:`Conversation` and its report both give it."""
    return (call_id, str(kind), start_ns)


@dataclass(slots=True)
class Transaction:
    key: TxKey
    method: str
    cseq: int
    src: str
    """Client side (request sender) ip:port; for a transaction seen only through its
    responses, the responses' destination."""
    dst: str
    request: SipMessage | None = None
    """First copy of the request; None when only responses were captured."""
    request_copies: int = 0
    responses: list[SipMessage] = field(default_factory=list)
    """Distinct responses in arrival order (retransmissions not repeated here)."""
    response_retransmissions: int = 0
    acks: list[SipMessage] = field(default_factory=list)
    """ACKs of a non-2xx final response: part of the INVITE transaction (§17.1.1.3)."""
    last_ns: int = 0
    final: SipMessage | None = None
    """The first final response (≥ 200); a 2xx after it is a forked answer, kept in responses.
    Set by :meth:`add_response` (the diagnosis asks for it a dozen times a call)."""

    def add_response(self, msg: SipMessage) -> None:
        """A distinct response, in arrival order."""
        self.responses.append(msg)
        if self.final is None and msg.status >= 200:
            self.final = msg

    @property
    def retransmissions(self) -> int:
        return max(0, self.request_copies - 1) + self.response_retransmissions

    @property
    def first_ns(self) -> int:
        if self.request is not None:
            return self.request.origin.ts_ns
        return self.responses[0].origin.ts_ns if self.responses else 0

    @property
    def has_credentials(self) -> bool:
        req = self.request
        # Most requests carry none; both names contain "authorization".
        return (
            req is not None
            and req.may_carry(b"authorization")
            and (req.headers.get("authorization") is not None or req.headers.get("proxy-authorization") is not None)
        )

    @property
    def vias(self) -> int:
        """Number of Via entries on the request (1 at the UAC, one more per proxy hop)."""
        req = self.request
        if req is None:
            return 0
        from analyzer.sip.fields import split_commas

        return sum(len(split_commas(v)) for v in req.headers.get_all("via"))


@dataclass(slots=True)
class Conversation:
    call_id: str
    kind: Kind
    messages: list[SipMessage] = field(default_factory=list)
    transactions: dict[TxKey, Transaction] = field(default_factory=dict)
    acked: set[int] = field(default_factory=set)
    """CSeq numbers of INVITEs whose 2xx was ACKed (the ACK is its own transaction, §13.2.2.4)."""
    retransmissions: int = 0
    last_ns: int = 0
    """Capture time of the newest message (for expiry in live mode)."""
    ended_ns: int = 0
    """When it ended as far as SIP says (BYE answered, or a final ≥ 300 to the INVITE or
    the request): 0 while open. It may still get retransmissions for a while."""
    retry_expected: bool = False
    """It ended with a challenge (401/407): its sender may send the request again with
    credentials on the same Call-ID (a person typing a password), so it is held longer."""
    follows_ns: int = 0
    """The time of the last message of this Call-ID's conversation of this kind before it,
    which was over when this one's first message came (0: none)."""

    @property
    def start_ns(self) -> int:
        return self.messages[0].origin.ts_ns if self.messages else 0

    @property
    def key(self) -> ConversationKey:
        return conversation_key(self.call_id, self.kind, self.start_ns)

    @property
    def end_ns(self) -> int:
        if self.last_ns:  # the store keeps it: the newest of the messages it filed
            return self.last_ns
        return max(m.origin.ts_ns for m in self.messages) if self.messages else 0

    def by_method(self, method: str) -> list[Transaction]:
        return [t for t in self.transactions.values() if t.method == method]
