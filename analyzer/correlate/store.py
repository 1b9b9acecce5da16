"""The call store: fed one message at a time (from a file or a live capture), sans-I/O.

``CallStore.feed(msg)`` files the message into its conversation and transaction and
recognises retransmissions; ``CallStore.expire(now)`` hands over the conversations over
by then (streaming and live mode), ``CallStore.finish()`` every one at the end of the input.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from heapq import heapify, heappop, heappush

from analyzer.correlate.model import Conversation, Kind, Transaction, TxKey, hostport
from analyzer.sip.fields import split_commas
from analyzer.sip.message import SipMessage

# Methods that make up an INVITE dialog's life; anything else inside a Call-ID that
# has a call belongs to the call too (in-dialog OPTIONS, NOTIFY for a REFER …).
_CALL_METHODS = frozenset({"INVITE", "ACK", "CANCEL", "BYE", "PRACK", "UPDATE", "INFO", "REFER"})
MAGIC_COOKIE = "z9hG4bK"
_CHALLENGES = (401, 407)
"""Final responses after which the same Call-ID is expected again, with credentials."""


def method_of(msg: SipMessage) -> str:
    """The method a message belongs to: the request's, or the CSeq method of a response."""
    return (msg.method if msg.status == 0 else msg.cseq_method).upper()


def kind_of(method: str, has_call: bool) -> Kind:
    if method in _CALL_METHODS or (has_call and method != "REGISTER"):
        return Kind.CALL
    if method == "REGISTER":
        return Kind.REGISTRATION
    if method == "OPTIONS":
        return Kind.OPTIONS
    return Kind.OTHER


def over_ns(conv: Conversation) -> int:
    """When ``conv`` is over if no message comes: its last message and its idle limit."""
    return conv.last_ns + _idle_limit(conv)


def is_over(conv: Conversation, now_ns: int) -> bool:
    """Whether ``conv`` is over at ``now_ns`` (capture time): no message for its idle limit.

    A message of its Call-ID and kind that comes later starts another conversation: the
    same whether the store was swept in between (:meth:`CallStore.expire`) or not, so that
    streaming, keeping every message and sharing the Call-IDs out over processes agree."""
    idle = now_ns - conv.last_ns
    return idle >= LINGER_NS and idle >= _idle_limit(conv)  # the shortest limit first: it is cheap


def _idle_limit(conv: Conversation) -> int:
    if conv.ended_ns and conv.ended_ns >= conv.last_ns - LINGER_NS:
        return CHALLENGE_IDLE_NS if conv.retry_expected else LINGER_NS
    if conv.acked or any(
        t.final is not None and 200 <= t.final.status < 300 for t in conv.transactions.values() if t.method == "INVITE"
    ):
        return CALL_IDLE_NS
    return SETUP_IDLE_NS


def top_branch(msg: SipMessage) -> str:
    """Top Via branch; for RFC 2543 peers (no magic cookie) a key made of what §17.2.3 matches on."""
    return msg.headers.memo("@branch", _top_branch, msg)


def _top_branch(msg: SipMessage) -> str:
    # The usual Via, on one line of its own with a magic-cookie branch, read from the raw
    # bytes; anything else the long way below, which gives the same for the usual one.
    raw = msg.headers.first_line("via")
    if raw is not None and raw.find(b",") < 0:
        i = raw.lower().find(b"branch=")
        if i >= 0:
            branch = raw[i + 7 :].split(b";", 1)[0].decode("ascii").strip()
            if branch.startswith(MAGIC_COOKIE):
                return branch
    return _top_branch_text(msg)


def _top_branch_text(msg: SipMessage) -> str:
    via = msg.headers.get("via")
    if via is None:
        return "-"
    parts = split_commas(via) if "," in via else [via]
    top = parts[0] if parts else ""
    low = top.lower()
    i = low.find("branch=")
    branch = ""
    if i >= 0:
        branch = top[i + 7 :].split(";", 1)[0].split(",", 1)[0].strip()
    if branch.startswith(MAGIC_COOKIE):
        return branch
    sent_by = top.split(";", 1)[0].strip()
    return f"2543|{sent_by}|{branch}|{msg.from_tag}"


# How long a conversation stays open after its last message, by state: a message of its
# Call-ID and kind that comes later starts another (is_over).
# RFC 3261 §17: Timer D / J / K (32 s over UDP) let retransmissions arrive after the end.
LINGER_NS = 32_000_000_000
SETUP_IDLE_NS = 300_000_000_000  # no final response: past Timer C (3 min)
CHALLENGE_IDLE_NS = 120_000_000_000  # a 401/407: time for a person to type a password
CALL_IDLE_NS = 4 * 3600 * 1_000_000_000  # answered, no BYE yet: a long call or a lost BYE


CAME_BACK_NS = SETUP_IDLE_NS
"""A call's Call-ID that comes back within this long after the call was over is noted in
the new call (:attr:`analyzer.correlate.model.Conversation.follows_ns`); later, not."""

MAX_OPEN = 200_000
"""Default bound on open conversations (``--max-open``), live and offline: about 4 KiB each."""

_Key = tuple[str, Kind]
_Entry = tuple[int, int, _Key, int]
"""A conversation in one of the store's heaps: (the time it is ordered by, its place in the
order conversations were opened, its key, its start: a key reused by a later conversation
has another start, so an entry left over from one that was handed out is told apart)."""


@dataclass(slots=True)
class CallStore:
    """Open conversations by Call-ID, in order of first appearance.

    Bounded for live use: at most ``max_open`` conversations; beyond that the one with the
    oldest last message is handed out early by :meth:`expire` and counted in ``evicted``.
    """

    conversations: dict[tuple[str, Kind], Conversation] = field(default_factory=dict)
    over: list[Conversation] = field(default_factory=list)
    """Conversations a message found over (:func:`is_over`): it started another one. Handed
    out by the next :meth:`expire` or :meth:`finish`."""
    gone: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Calls :meth:`expire` handed out as over, by Call-ID: (last message, over at), for
    :data:`CAME_BACK_NS` after they were over. A message of one finds it as it would
    have found the call itself had the store not been swept in between."""
    messages: int = 0
    retransmissions: int = 0
    max_open: int = MAX_OPEN
    evicted: int = 0
    opened: int = 0
    """Conversations opened so far."""
    _by_start: list[_Entry] = field(default_factory=list)
    """Heap of the open conversations by start, and of some already handed out (skipped when
    met): :meth:`first_start` without a pass over every open one at each sweep."""
    _by_last: list[_Entry] = field(default_factory=list)
    """Heap of the open conversations by their last message as of when it was pushed (raised
    when met): :meth:`expire` looks only at those quiet long enough to be over."""

    def feed(self, msg: SipMessage) -> None:
        self.messages += 1
        method = method_of(msg)
        ts = msg.origin.ts_ns
        call, follows = self._open((msg.call_id, Kind.CALL), ts)
        kind = kind_of(method, call is not None)
        conv = call
        if kind is not Kind.CALL:
            conv, follows = self._open((msg.call_id, kind), ts)
        if conv is None:
            conv = self._new(msg.call_id, kind, follows, ts)
        conv.messages.append(msg)
        conv.last_ns = max(conv.last_ns, ts)
        if self._file(conv, msg, method):
            conv.retransmissions += 1
            self.retransmissions += 1
        elif msg.status >= 200:
            self._note_end(conv, msg, method)
        elif msg.status == 0 and method != "ACK":
            conv.ended_ns = 0  # a new request (the INVITE after a 407, a re-REGISTER …) reopens it

    def _new(self, call_id: str, kind: Kind, follows: int, ts_ns: int) -> Conversation:
        key = (call_id, kind)
        conv = self.conversations[key] = Conversation(call_id, kind, follows_ns=follows)
        self.opened += 1
        heappush(self._by_start, (ts_ns, self.opened, key, ts_ns))
        heappush(self._by_last, (ts_ns, self.opened, key, ts_ns))
        return conv

    def _open(self, key: tuple[str, Kind], ts_ns: int) -> tuple[Conversation | None, int]:
        """The open conversation ``key`` for a message at ``ts_ns``, None when there is none;
        and when one was over by then (set aside in :attr:`over`), its last message's time."""
        conv = self.conversations.get(key)
        if conv is not None:
            if not is_over(conv, ts_ns):
                return conv, 0
            self.over.append(self.conversations.pop(key))
            before = (conv.last_ns, over_ns(conv)) if key[1] is Kind.CALL else None
        else:  # a call a sweep handed out: found as it would have been without the sweep
            before = self.gone.pop(key[0], None) if self.gone and key[1] is Kind.CALL else None
        if before is None:
            return None, 0
        last_ns, over_at = before
        return None, last_ns if ts_ns < over_at + CAME_BACK_NS else 0

    @staticmethod
    def _note_end(conv: Conversation, msg: SipMessage, method: str) -> None:
        """A final response that may end the conversation (a later request reopens it)."""
        if conv.kind is Kind.CALL:
            if method == "BYE" or (method == "INVITE" and msg.status >= 300):
                conv.ended_ns = msg.origin.ts_ns
                conv.retry_expected = msg.status in _CHALLENGES and method == "INVITE"
        elif method != "ACK":
            conv.ended_ns = msg.origin.ts_ns
            conv.retry_expected = msg.status in _CHALLENGES

    def finish(self) -> list[Conversation]:
        out = [*self.over, *self.conversations.values()]
        self.over = []
        self.conversations.clear()
        self._by_start.clear()
        self._by_last.clear()
        return out

    def first_start(self) -> int | None:
        """The earliest start of the open conversations (None when there is none)."""
        heap, conversations = self._by_start, self.conversations
        while heap:
            start, _, key, _ = heap[0]
            conv = conversations.get(key)
            if conv is not None and conv.start_ns == start:
                return start
            heappop(heap)
        return None

    def expire(self, now_ns: int) -> list[Conversation]:
        """Conversations over by ``now_ns`` (capture time), removed from the store.

        Ended ones once :data:`LINGER_NS` has passed without a message; unanswered ones
        after :data:`SETUP_IDLE_NS`; answered ones without a BYE after :data:`CALL_IDLE_NS`;
        and the oldest beyond ``max_open``.
        """
        done = [self.conversations.pop(key) for _, _, key, _ in self._quiet_over(now_ns)]
        gone = self.gone
        for call_id in [k for k, (_, over) in gone.items() if now_ns >= over + CAME_BACK_NS]:
            del gone[call_id]
        for c in done:
            if c.kind is Kind.CALL:
                gone[c.call_id] = (c.last_ns, over_ns(c))
        out, self.over = [*self.over, *done], []
        excess = len(self.conversations) - self.max_open
        if excess > 0:
            excess += self.max_open // 10  # evict a batch: a flood must not sort the store per message
            oldest = sorted(self.conversations, key=lambda k: self.conversations[k].last_ns)[:excess]
            out += [self.conversations.pop(k) for k in oldest]
            self.evicted += excess
        self._compact()
        return out

    def _quiet_over(self, now_ns: int) -> list[_Entry]:
        """The entries of the open conversations over by ``now_ns``, in the order they were
        opened (the store's order). Only those whose last message is :data:`LINGER_NS` old
        (the shortest idle limit) are looked at; those not over yet are looked at again at
        the next call, as a message that changes their limit also moves their last one."""
        quiet = now_ns - LINGER_NS
        heap, conversations = self._by_last, self.conversations
        over: list[_Entry] = []
        waiting: list[_Entry] = []
        while heap and heap[0][0] <= quiet:
            entry = heappop(heap)
            _, order, key, start = entry
            conv = conversations.get(key)
            if conv is None or conv.start_ns != start:
                continue  # handed out already
            if conv.last_ns > quiet:
                heappush(heap, (conv.last_ns, order, key, start))
            elif is_over(conv, now_ns):
                over.append(entry)
            else:
                waiting.append(entry)
        for entry in waiting:
            heappush(heap, entry)
        over.sort(key=lambda e: e[1])
        return over

    def _compact(self) -> None:
        """Rebuild the heaps from the open conversations when handed-out ones are most of
        them: one long call at the top keeps every later one's entry by start."""
        if len(self._by_start) + len(self._by_last) <= 4 * len(self.conversations) + 4096:
            return
        entries = [(c.start_ns, i, key, c.start_ns) for i, (key, c) in enumerate(self.conversations.items())]
        self._by_start = entries
        self._by_last = [(self.conversations[key].last_ns, i, key, start) for _, i, key, start in entries]
        heapify(self._by_start)
        heapify(self._by_last)

    # -- transactions --------------------------------------------------------------------
    def _file(self, conv: Conversation, msg: SipMessage, method: str) -> bool:
        """Put ``msg`` in its transaction; True when it is a retransmission."""
        branch = top_branch(msg)
        if msg.status == 0 and method == "ACK":
            return self._ack(conv, msg, branch)
        key: TxKey = (branch, msg.cseq, method)
        tx = conv.transactions.get(key)
        o = msg.origin
        if tx is None:
            src, dst = hostport(o.src_ip, o.src_port), hostport(o.dst_ip, o.dst_port)
            if msg.status:
                src, dst = dst, src
            tx = conv.transactions[key] = Transaction(key, method, msg.cseq, src, dst)
        tx.last_ns = max(tx.last_ns, o.ts_ns)
        if msg.status == 0:
            tx.request_copies += 1
            if tx.request is None:
                tx.request = msg
                return False
            return True
        return self._response(tx, msg)

    @staticmethod
    def _response(tx: Transaction, msg: SipMessage) -> bool:
        to: str | None = None  # looked up only for a response of a status seen before
        for prev in tx.responses:
            if prev.status != msg.status:
                continue
            if to is None:
                to = msg.headers.get("to") or ""
            if (prev.headers.get("to") or "") == to:
                tx.response_retransmissions += 1
                return True
        tx.add_response(msg)
        return False

    @staticmethod
    def _ack(conv: Conversation, msg: SipMessage, branch: str) -> bool:
        invite = conv.transactions.get((branch, msg.cseq, "INVITE"))
        if invite is not None:  # ACK of a non-2xx final: same transaction (§17.1.1.3)
            invite.acks.append(msg)
            return len(invite.acks) > 1
        conv.acked.add(msg.cseq)
        key: TxKey = (branch, msg.cseq, "ACK")
        tx = conv.transactions.get(key)
        if tx is None:
            o = msg.origin
            tx = conv.transactions[key] = Transaction(
                key, "ACK", msg.cseq, hostport(o.src_ip, o.src_port), hostport(o.dst_ip, o.dst_port)
            )
        tx.request_copies += 1
        tx.last_ns = max(tx.last_ns, msg.origin.ts_ns)
        if tx.request is None:
            tx.request = msg
            return False
        return True
