"""Security findings (sans-I/O): SIP messages and finished call reports in, findings out.

Scanning, password guessing and toll fraud show up as SIP before they show up anywhere
else. :class:`SecurityWatch` is fed every message (:meth:`SecurityWatch.message`) and every
finished call report (:meth:`SecurityWatch.report`), from a file or a live interface alike;
:meth:`SecurityWatch.findings` gives what it found so far, one finding per rule and source.

Rules (thresholds are the defaults of :class:`SecurityConfig`):

- ``scanner`` (medium): a request names a known attack tool in its User-Agent, its From
  display name, or the tool's default From URI. One finding per source.
- ``register_bruteforce`` (medium): ≥ 10 REGISTERs from one source refused within 60 s, or
  refusals for ≥ 5 usernames within 60 s. Refused: credentials answered 401/407 (not
  ``stale``) or 403; no credentials answered 403/404 (probing for extensions). High when a
  REGISTER of one of the refused usernames then succeeds: a guessed password.
- ``invite_flood`` (medium): ≥ 50 new Call-IDs a second sustained over 10 s from one source;
  or ≥ 50 of its calls started within 60 s got no final answer (from the call reports).
- ``toll_fraud`` (medium): ≥ 5 international numbers (``+``, ``00``, ``011`` and ≥ 7 digits)
  tried by one source within an hour, ≥ 80 % of its international calls refused or
  unanswered (probing the dial plan); high when one of them was answered. Also any
  international call from a source whose credentials were refused and that never registered.
- ``spoofed_response``: a final response whose Call-ID no request carried although this
  capture saw requests go from its addressee to its sender before, ≥ 32 s into the capture,
  and no request uses the Call-ID within 4 s (low); a 2xx to an INVITE whose top Via branch
  no INVITE of that call carried (medium).

Every table is bounded (the caps in :class:`SecurityConfig`; least recently used entries
go first and are counted in :attr:`SecurityWatch.overflow`), so a scan from a million
addresses costs a fixed amount of memory. Time is capture time (ns), from the messages.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Generic, NamedTuple, TypeVar

from analyzer.correlate.model import Kind, Outcome
from analyzer.correlate.store import top_branch
from analyzer.diagnose.verdict import CallReport
from analyzer.sip import fields
from analyzer.sip.message import SipMessage

# User-Agent substrings (lower case) of SIP attack tools, as honeypots and SBC vendors
# list them: SIPVicious svmap/svwar/svcrack ("friendly-scanner", newer versions
# "sipvicious"), sipcli (a brute forcer), VaxSIPUserAgent (bots built on the VaxVoIP SDK),
# pplsip, SIPScan / sip-scan, sundayddr, iWar (war dialer). Left out on purpose: sipsak
# (operators ping their own proxies with it), "Cisco"-lookalikes and VoipBuster (real
# devices and a real service), which would flag ordinary traffic.
SCANNERS = (
    "friendly-scanner",
    "sipvicious",
    "sipcli",
    "vaxsipuseragent",
    "pplsip",
    "sipscan",
    "sip-scan",
    "sundayddr",
    "iwar",
)
# From URIs that tools send unless told otherwise: SIPVicious' "sip:100@1.1.1.1" and the
# "sip:nm@nm" of nmap's SIP probe (nmap-service-probes, SIPOptions).
SCANNER_FROM_URIS = (("sip:100@1.1.1.1", "sipvicious"), ("sip:nm@nm", "nmap"))

SEVERITIES = ("low", "medium", "high")
"""Severities, mildest first."""
RULES = ("scanner", "register_bruteforce", "invite_flood", "toll_fraud", "spoofed_response")

_NS = 1_000_000_000
_MAX_FRAMES = 5
_TRANSACTION_S = 32
"""64·T1 (RFC 3261 §17.1.2.2, Timer F): no non-INVITE transaction outlives it."""
_INTL_PREFIXES = ("+", "011", "00")
_NUMBER_PUNCTUATION = str.maketrans("", "", "-.() ")  # visual separators (RFC 3966 §5.1.1)
_ANSWERED = (Outcome.ANSWERED, Outcome.DROPPED)
_REFUSED = (Outcome.REJECTED, Outcome.AUTH_FAILED, Outcome.TIMEOUT, Outcome.REDIRECTED)


@dataclass(frozen=True, slots=True)
class SecurityFinding:
    """One rule firing for one source over the capture (or so far, live)."""

    rule: str
    severity: str
    """``low``, ``medium`` or ``high``."""
    src: str
    """The IP address it is about: the sender of the requests, or of the spoofed responses."""
    first_ns: int
    last_ns: int
    count: int
    """How many requests, refusals, calls or responses it counts (the summary says which)."""
    frames: tuple[int, ...]
    """The first few frames that made it fire (examples, not all)."""
    summary: str
    hint: str
    details: tuple[tuple[str, str | int | float], ...] = ()
    """Rule-specific facts as (name, value) pairs (a frozen stand-in for a dict)."""

    @property
    def details_dict(self) -> dict[str, str | int | float]:
        return dict(self.details)


@dataclass(frozen=True, slots=True)
class SecurityConfig:
    """Thresholds and caps; the defaults are the ones documented in the README."""

    brute_window_s: float = 60.0
    brute_min_failures: int = 10
    """Refused REGISTERs from one source within the window …"""
    brute_min_users: int = 5
    """… or refusals for this many usernames within it."""
    flood_window_s: int = 10
    flood_per_s: int = 50
    """New Call-IDs a second, sustained over ``flood_window_s``."""
    unanswered_window_s: int = 60
    unanswered_min: int = 50
    """Calls from one source started within ``unanswered_window_s`` that got no final answer."""
    toll_window_s: float = 3600.0
    toll_min_numbers: int = 5
    toll_min_refused: float = 0.8
    """Share of the international attempts refused or unanswered."""
    toll_min_digits: int = 7
    """Digits after the international prefix: shorter ones are extensions or service codes."""
    spoof_grace_s: float = 4.0
    """How long a response with an unknown Call-ID may wait for a request (the ACK of a final
    response to an INVITE sent before the capture began) before it counts."""
    max_sources: int = 10_000
    max_calls: int = 100_000
    """Call-IDs remembered for the spoofed-response check."""
    max_pending: int = 65_536
    """Open REGISTER and credentialed transactions awaiting their final response."""
    max_findings: int = 1_000
    max_candidates: int = 1_024
    """Responses with an unknown Call-ID waiting out ``spoof_grace_s``."""


# -- bounded tables ---------------------------------------------------------------------------

K = TypeVar("K")
V = TypeVar("V")


@dataclass(slots=True)
class _Lru(Generic[K, V]):
    """A dict of at most ``limit`` keys; the least recently touched goes first, and is counted."""

    limit: int
    items: OrderedDict[K, V] = field(default_factory=OrderedDict)
    evicted: int = 0
    last_evicted: V | None = None

    def get(self, key: K) -> V | None:
        value = self.items.get(key)
        if value is not None:
            self.items.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> V:
        self.items[key] = value
        self.items.move_to_end(key)
        if len(self.items) > self.limit:
            _, self.last_evicted = self.items.popitem(last=False)
            self.evicted += 1
        return value

    def pop(self, key: K) -> V | None:
        return self.items.pop(key, None)


@dataclass(slots=True)
class _Buckets:
    """Events per second of capture time over a sliding window (a late event joins the newest second)."""

    window_s: int
    items: deque[list[int]] = field(default_factory=deque)
    total: int = 0

    def add(self, ts_ns: int) -> int:
        sec = ts_ns // _NS
        if self.items and self.items[-1][0] >= sec:
            self.items[-1][1] += 1
        else:
            self.items.append([sec, 1])
        self.total += 1
        newest = self.items[-1][0]
        while self.items[0][0] <= newest - self.window_s:
            self.total -= self.items.popleft()[1]
        return self.total


# -- per-source and per-transaction state -------------------------------------------------------


@dataclass(slots=True)
class _Source:
    """What one source address did, as far as the rules need it."""

    registered: bool = False
    """A REGISTER from it got a 2xx."""
    refused: int = 0
    """Its REGISTERs and INVITEs whose credentials were refused (401/407 not stale; 403 to a REGISTER)."""
    failures: deque[tuple[int, str, int]] = field(default_factory=lambda: deque(maxlen=64))
    """(time, username, frame) of its refused REGISTERs, the newest 64."""
    failed_users: set[str] = field(default_factory=set)
    """Usernames refused while a brute-force finding was open (at most 64)."""
    invites: _Buckets | None = None
    unanswered: _Buckets | None = None
    intl: deque[tuple[int, str, bool, bool, int]] = field(default_factory=lambda: deque(maxlen=256))
    """(start, number, answered, refused, frame) of its international calls, the newest 256."""
    intl_calls: int = 0


@dataclass(slots=True)
class _Pending:
    """A REGISTER, or a request with credentials, waiting for its final response."""

    src: str
    method: str
    username: str
    credentials: bool


@dataclass(slots=True)
class _Call:
    """A Call-ID seen in a request: when last, and the top Via branches of its INVITEs."""

    last_ns: int
    branches: set[str] = field(default_factory=set)


@dataclass(slots=True)
class _Candidate:
    """A final response with an unknown Call-ID, cleared if a request then uses the Call-ID."""

    src: str
    dst: str
    ts_ns: int
    frame: int
    label: str


@dataclass(slots=True)
class _Tally:
    """An open finding, updated as more evidence comes."""

    rule: str
    severity: str
    src: str
    first_ns: int
    last_ns: int
    count: int
    frames: list[int]
    summary: str
    hint: str
    details: dict[str, str | int | float]

    def add(self, ts_ns: int, frame: int, n: int = 1) -> None:
        self.first_ns = min(self.first_ns, ts_ns)
        self.last_ns = max(self.last_ns, ts_ns)
        self.count += n
        if len(self.frames) < _MAX_FRAMES and frame not in self.frames:
            self.frames.append(frame)

    def freeze(self) -> SecurityFinding:
        return SecurityFinding(
            self.rule,
            self.severity,
            self.src,
            self.first_ns,
            self.last_ns,
            self.count,
            tuple(sorted(self.frames)),
            self.summary,
            self.hint,
            tuple(self.details.items()),
        )


# -- small readers ------------------------------------------------------------------------------


def scanner_tool(msg: SipMessage, low_raw: bytes | None = None) -> tuple[str, str] | None:
    """``(tool, evidence)`` when a request carries the mark of a known attack tool.
    ``low_raw``: the message's bytes lower-cased, when the caller has them."""
    # The marks, and the name User-Agent, looked for in the lower-cased bytes: a tool that writes
    # them in odd case is still seen, and most requests are passed over without a header lookup.
    # bytes.find, not "in": Python 3.11 first tries a bytes needle as an integer (a TypeError
    # raised and cleared at each test), 0.1 µs of the 0.4 a test costs.
    if low_raw is None:
        low_raw = msg.raw.lower()
    if low_raw.find(b"user-agent") >= 0:
        agent = msg.headers.get("user-agent") or ""
        low = agent.lower()
        name = next((s for s in SCANNERS if s in low), None)
        if name is not None:
            return name, f"User-Agent {agent!r}"
    if low_raw.find(b"nm@nm") < 0 and low_raw.find(b"1.1.1.1") < 0 and low_raw.find(b"sipvicious") < 0:
        return None  # no From mark anywhere: skip the From lookup
    # Only the matched mark is quoted from From: it may be a header the user redacts.
    low = (msg.headers.get("from") or "").lower()
    if "sipvicious" in low:  # SIPVicious puts its name in the From display name
        return "sipvicious", "From names sipvicious"
    for uri, tool in SCANNER_FROM_URIS:
        if uri in low:
            return tool, f"From {uri}"
    return None


def international_number(uri_or_user: str, min_digits: int = 7) -> str:
    """The dialled number when it is international (``+``, ``00``, ``011``), else ``""``.

    Takes a Request-URI (``sip:``, ``sips:``, ``tel:``) or a bare user part. ``000`` is an
    emergency number in places, not an international prefix.
    """
    text = uri_or_user.strip()
    parsed = fields.parse_uri(text) if ":" in text else None
    user = parsed.user if parsed is not None else text
    number = user.split(";", 1)[0].translate(_NUMBER_PUNCTUATION)
    if number.startswith("000"):
        return ""
    prefix = next((p for p in _INTL_PREFIXES if number.startswith(p)), None)
    if prefix is None:
        return ""
    digits = number[len(prefix) :]
    return number if digits.isdigit() and digits.isascii() and len(digits) >= min_digits else ""


def _host(addr: str) -> str:
    """The IP of an ``ip:port`` / ``[v6]:port`` text."""
    if addr.startswith("["):
        return addr[1:].split("]", 1)[0]
    return addr.rsplit(":", 1)[0] if addr.count(":") == 1 else addr


def _damaged(msg: SipMessage) -> bool:
    """A message whose Call-ID or framing is broken (a damaged or fuzzed capture).

    RFC 3261 §25.1: callid = word [ "@" word ], words of printable ASCII without spaces,
    commas or semicolons. String methods, not a regex: this runs on every request."""
    cid = msg.call_id
    if msg.defects or not cid or not cid.isascii() or not cid.isprintable():
        return True
    return " " in cid or "," in cid or ";" in cid or cid.count("@") > 1


def _credentials(msg: SipMessage, low_raw: bytes) -> fields.AuthInfo | None:
    """``low_raw``: the message's bytes lower-cased (:meth:`SipMessage.may_carry`)."""
    if low_raw.find(b"authorization") < 0:  # any case: Authorization, Proxy-Authorization
        return None  # most requests carry none: skip two header lookups
    for name in ("authorization", "proxy-authorization"):
        value = msg.headers.get(name)
        if value is not None:
            info = fields.auth(name, value)
            return info if info.has_response else None
    return None


def _user_of(value: str | None) -> str:
    na = fields.name_addr(value)
    return na.parsed.user if na is not None and na.parsed is not None else ""


# -- the watch ----------------------------------------------------------------------------------


class ReportNote(NamedTuple):
    """The little the watch reads of a call report: kept for the calls it cares about only."""

    src: str
    outcome: Outcome
    start_ns: int
    frame: int
    number: str
    """The international number dialled, or empty."""


def report_note(r: CallReport, config: SecurityConfig) -> ReportNote | None:
    """What :meth:`SecurityWatch.report` needs of ``r``; None when it would not look at it
    (not a call, still in progress, neither unanswered nor international)."""
    if r.kind is not Kind.CALL or not r.caller_addr or r.outcome is Outcome.IN_PROGRESS:
        return None
    number = international_number(r.request_user, config.toll_min_digits)
    if r.outcome is not Outcome.TIMEOUT and not number:
        return None
    return ReportNote(_host(r.caller_addr), r.outcome, r.start_ns, r.frames[0] if r.frames else 0, number)


class SecurityWatch:
    """Feed every message (:meth:`message`) and every finished report (:meth:`report`);
    read :meth:`findings` whenever you like."""

    def __init__(self, config: SecurityConfig | None = None) -> None:
        c = self.config = config or SecurityConfig()
        self._sources: _Lru[str, _Source] = _Lru(c.max_sources)
        self._pending: _Lru[tuple[str, int, str], _Pending] = _Lru(c.max_pending)
        self._calls: _Lru[str, _Call] = _Lru(c.max_calls)
        self._paths: _Lru[tuple[str, str], bool] = _Lru(c.max_sources)
        """(from ip, to ip) of requests seen → whether one of them was damaged (then the path proves nothing)."""
        self._candidates: OrderedDict[str, _Candidate] = OrderedDict()
        self._tallies: dict[tuple[str, str, str], _Tally] = {}
        self._first_ns: int | None = None
        self._now_ns = 0
        self.overflow: dict[str, int] = {"findings": 0, "candidates": 0}
        """Evidence dropped because a cap was reached (the LRU tables count their own)."""

    # -- public ----------------------------------------------------------------------------
    def message(self, msg: SipMessage) -> None:
        self.tick(msg.origin.ts_ns)
        if msg.status == 0:
            self._request(msg)
        elif msg.status >= 200:
            self._response(msg)

    def tick(self, ts_ns: int) -> None:
        """The capture's time has reached ``ts_ns``: all a provisional response tells the
        watch (:meth:`message` of one does no more)."""
        if self._first_ns is None:
            self._first_ns = ts_ns
        if ts_ns > self._now_ns:
            self._now_ns = ts_ns
        if self._candidates:
            self._confirm_candidates()

    def report(self, r: CallReport) -> None:
        """A finished conversation: unanswered calls and international attempts."""
        note = report_note(r, self.config)
        if note is not None:
            self.replay(note)

    def replay(self, note: ReportNote) -> None:
        """What :meth:`report` reads of a report, kept by :func:`report_note`."""
        if note.outcome is Outcome.TIMEOUT:
            self._unanswered(note.src, note.start_ns, note.frame)
        if note.number:
            self._international(note.src, note, note.number, note.frame)

    def settled(self) -> SecurityWatch:
        """This watch once every message is in, without what only messages read: the open
        transactions, the Call-IDs and paths seen, the responses waiting to be called spoofed.
        :meth:`replay`, :meth:`findings` and :attr:`evicted` give what they gave; no message
        may follow. A process of the calls hands this on, not the whole watch (all-SIP: its
        20,000 Call-IDs took 45 ms to pickle and 16 ms to unpickle, at the end of the run)."""
        for table in (self._pending, self._calls, self._paths):
            table.items.clear()
            table.last_evicted = None
        self._candidates.clear()
        return self

    def findings(self) -> list[SecurityFinding]:
        """Everything found so far: most severe first, then by time."""
        out = [t.freeze() for t in self._tallies.values()]
        rank = {s: i for i, s in enumerate(SEVERITIES)}
        return sorted(out, key=lambda f: (-rank.get(f.severity, 0), f.first_ns, f.rule, f.src))

    @property
    def evicted(self) -> dict[str, int]:
        """Entries each bounded table forgot to stay within its cap."""
        return {
            "sources": self._sources.evicted,
            "pending": self._pending.evicted,
            "calls": self._calls.evicted,
            "paths": self._paths.evicted,
            **self.overflow,
        }

    # -- plumbing --------------------------------------------------------------------------
    def _source(self, ip: str) -> _Source:
        return self._sources.get(ip) or self._sources.put(ip, _Source())

    def _tally(
        self, key: tuple[str, str, str], severity: str, ts_ns: int, frame: int, summary: str, hint: str
    ) -> _Tally | None:
        """The open finding for ``key``, opened now if it is not (None when the cap is reached)."""
        tally = self._tallies.get(key)
        if tally is not None:
            return tally
        if len(self._tallies) >= self.config.max_findings:
            self.overflow["findings"] += 1
            return None
        tally = _Tally(key[0], severity, key[1], ts_ns, ts_ns, 0, [], summary, hint, {})
        self._tallies[key] = tally
        return tally

    # -- requests ----------------------------------------------------------------------------
    def _request(self, msg: SipMessage) -> None:
        o = msg.origin
        method = msg.method.upper()
        low_raw = msg.raw.lower()  # for the scanner's marks and the credentials
        self._scanner(msg, low_raw)
        new_call = self._remember_call(msg, method)
        path = (o.src_ip, o.dst_ip)
        seen = self._paths.get(path)  # True once a damaged request took the path
        if not seen:
            damaged = _damaged(msg)
            if seen is None or damaged:
                self._paths.put(path, damaged)
        if method not in ("REGISTER", "INVITE"):
            return  # the rules below read only these (each header lookup costs microseconds)
        creds = _credentials(msg, low_raw)
        if method == "REGISTER" or creds is not None:
            user = creds.username if creds is not None and creds.username else _user_of(msg.headers.get("to"))
            key = (msg.call_id, msg.cseq, top_branch(msg))
            self._pending.put(key, _Pending(o.src_ip, method, user, creds is not None))
        if method == "INVITE" and new_call:  # a re-INVITE or a retransmission reuses its Call-ID
            self._flood(msg)

    def _remember_call(self, msg: SipMessage, method: str) -> bool:
        """Note the Call-ID (and an INVITE's branch); True when no request carried it before."""
        if self._candidates:
            self._candidates.pop(msg.call_id, None)  # a request uses the Call-ID: the response was real
        call = self._calls.get(msg.call_id)
        new = call is None
        if call is None:
            call = self._calls.put(msg.call_id, _Call(msg.origin.ts_ns))
        call.last_ns = max(call.last_ns, msg.origin.ts_ns)
        if method == "INVITE" and len(call.branches) < 64:
            call.branches.add(top_branch(msg))
        return new

    def _scanner(self, msg: SipMessage, low_raw: bytes) -> None:
        found = scanner_tool(msg, low_raw)
        if found is None:
            return
        tool, evidence = found
        o = msg.origin
        tally = self._tally(
            ("scanner", o.src_ip, ""),
            "medium",
            o.ts_ns,
            o.frame,
            "",
            "Someone is mapping SIP servers and extensions: block the source at the edge, and make sure "
            "unknown users get the same answer as wrong passwords (Asterisk alwaysauthreject).",
        )
        if tally is None:
            return
        tally.add(o.ts_ns, o.frame)
        tally.details.setdefault("tool", tool)
        tally.details.setdefault("evidence", evidence)
        methods = set(str(tally.details.get("methods", "")).split(",")) - {""}
        tally.details["methods"] = ",".join(sorted(methods | {msg.method.upper()}))
        tally.summary = (
            f"{o.src_ip} sent {tally.count} request(s) ({tally.details['methods']}) marked as the SIP scanner "
            f"{tally.details['tool']} ({tally.details['evidence']})"
        )

    def _flood(self, msg: SipMessage) -> None:
        c, o = self.config, msg.origin
        src = self._source(o.src_ip)
        if src.invites is None:
            src.invites = _Buckets(c.flood_window_s)
        n = src.invites.add(o.ts_ns)
        limit = c.flood_per_s * c.flood_window_s
        key = ("invite_flood", o.src_ip, "rate")
        opened = key not in self._tallies
        if opened and n < limit:
            return
        tally = self._tally(
            key,
            "medium",
            o.ts_ns,
            o.frame,
            "",
            "An INVITE flood (denial of service, or a dialler run wild); a busy trunk can look the same: "
            "compare with its usual rate, rate-limit the source (pike, fail2ban).",
        )
        if tally is None:
            return
        tally.add(o.ts_ns, o.frame, n if opened else 1)  # once flooding, every new call counts
        peak = max(int(tally.details.get("peak_per_window", 0)), n)
        tally.details["peak_per_window"] = peak
        tally.details["window_s"] = c.flood_window_s
        tally.summary = (
            f"{o.src_ip} started {tally.count} calls (new Call-IDs), up to {peak} in {c.flood_window_s} s "
            f"(the limit is {c.flood_per_s} a second)"
        )

    # -- responses ---------------------------------------------------------------------------
    def _response(self, msg: SipMessage) -> None:
        if self._pending.items:  # none waits for an answer (no REGISTER yet): no Via to read
            pending = self._pending.pop((msg.call_id, msg.cseq, top_branch(msg)))
            if pending is not None:
                self._answered(msg, pending)
        self._spoof_check(msg)

    def _answered(self, msg: SipMessage, p: _Pending) -> None:
        """A final response to a REGISTER or a credentialed request."""
        status = msg.status
        challenge = msg.auth
        stale = challenge is not None and challenge.stale  # RFC 3261 §22.4: retry with the new nonce
        refused_creds = p.credentials and ((status in (401, 407) and not stale) or status == 403)
        src = self._source(p.src)
        if refused_creds and (p.method != "INVITE" or status != 403):
            src.refused += 1  # a 403 to an INVITE is as often a barred number as a wrong password
        if p.method != "REGISTER":
            return
        if 200 <= status < 300:
            src.registered = True
            if p.credentials:
                self._register_ok(msg, p, src)
        elif refused_creds or (not p.credentials and status in (403, 404)):
            self._register_refused(msg, p, src)

    def _register_refused(self, msg: SipMessage, p: _Pending, src: _Source) -> None:
        c = self.config
        ts, frame = msg.origin.ts_ns, msg.origin.frame
        src.failures.append((ts, p.username, frame))
        start = ts - int(c.brute_window_s * _NS)
        recent = [f for f in src.failures if f[0] > start]
        users = {f[1] for f in recent}
        key = ("register_bruteforce", p.src, "")
        tally = self._tallies.get(key)
        if tally is None and len(recent) < c.brute_min_failures and len(users) < c.brute_min_users:
            return
        tally = self._tally(key, "medium", ts, frame, "", "")
        if tally is None:
            return
        if tally.count == 0:  # opened now: the refusals in the window count
            for t, _, f in recent[:-1]:
                tally.add(t, f)
            src.failed_users.update(users)
        if len(src.failed_users) < 64:
            src.failed_users.add(p.username)
        tally.add(ts, frame)
        names = sorted(src.failed_users)
        tally.details["usernames"] = len(names)
        tally.details["examples"] = ", ".join(names[:5])
        if tally.severity != "high":
            tally.summary = (
                f"{p.src}: {tally.count} REGISTER attempts refused ({len(names)} username(s): "
                f"{', '.join(names[:3])}{' …' if len(names) > 3 else ''}), password guessing or extension probing"
            )
            tally.hint = (
                "Block or rate-limit the source (fail2ban, pike); check that the registrar answers unknown "
                "users like wrong passwords. One username retried fast can also be a device with a stale password."
            )

    def _register_ok(self, msg: SipMessage, p: _Pending, src: _Source) -> None:
        tally = self._tallies.get(("register_bruteforce", p.src, ""))
        if tally is None or tally.severity == "high" or p.username not in src.failed_users:
            return
        tally.severity = "high"
        tally.details["guessed_user"] = p.username
        tally.details["success_frame"] = msg.origin.frame
        tally.add(msg.origin.ts_ns, msg.origin.frame, 0)
        tally.summary = (
            f"{p.src}: {tally.count} REGISTER attempts refused, then the REGISTER of {p.username!r} "
            f"succeeded (frame {msg.origin.frame}): likely guessed password"
        )
        tally.hint = (
            f"Change the password of {p.username!r} now, unregister its contacts, block {p.src}, "
            "and look for calls it placed after the registration."
        )

    # -- spoofed responses -------------------------------------------------------------------
    def _spoof_check(self, msg: SipMessage) -> None:
        o = msg.origin
        assert self._first_ns is not None
        # Anything sent before the capture began is over 64·T1 later, except an INVITE still
        # ringing: its final response is followed by an ACK, which clears the candidate.
        if o.ts_ns - self._first_ns < _TRANSACTION_S * _NS or _damaged(msg):
            return
        call = self._calls.get(msg.call_id)
        if call is None:
            self._unknown_call_id(msg)
        elif 200 <= msg.status < 300 and msg.cseq_method.upper() == "INVITE":
            self._unknown_branch(msg, call)

    def _unknown_call_id(self, msg: SipMessage) -> None:
        o = msg.origin
        damaged = self._paths.get((o.dst_ip, o.src_ip))
        if damaged is None or damaged:
            return  # no requests seen that way (the capture may see one direction), or damaged ones
        evicted = self._calls.last_evicted
        if evicted is not None and evicted.last_ns > o.ts_ns - 3600 * _NS:
            return  # the Call-ID may have been forgotten to stay within the cap
        if msg.call_id in self._candidates:
            return  # a retransmission of the same response
        if len(self._candidates) >= self.config.max_candidates:
            self.overflow["candidates"] += 1
            return
        self._candidates[msg.call_id] = _Candidate(o.src_ip, o.dst_ip, o.ts_ns, o.frame, msg.label)

    def _confirm_candidates(self) -> None:
        horizon = self._now_ns - int(self.config.spoof_grace_s * _NS)
        while self._candidates:
            call_id, cand = next(iter(self._candidates.items()))
            if cand.ts_ns > horizon:
                return
            del self._candidates[call_id]
            self._spoofed(cand)

    def _spoofed(self, cand: _Candidate) -> None:
        tally = self._tally(
            ("spoofed_response", cand.src, "call-id"),
            "low",
            cand.ts_ns,
            cand.frame,
            "",
            "Responses to requests that were never sent: backscatter of requests forged with this address, "
            "or injected responses. Lost packets (capture drops, missing fragments) can look the same.",
        )
        if tally is None:
            return
        tally.add(cand.ts_ns, cand.frame)
        tally.details.setdefault("example_response", cand.label)
        tally.summary = (
            f"{cand.src} sent {tally.count} final response(s) to {cand.dst} for Call-IDs no request carried, "
            f"though the capture saw {cand.dst} send requests to {cand.src} before"
        )

    def _unknown_branch(self, msg: SipMessage, call: _Call) -> None:
        branch = top_branch(msg)
        if not branch.startswith(fields.MAGIC_COOKIE) or branch in call.branches or len(call.branches) >= 64:
            return  # RFC 2543 peers' branches cannot be matched; 64 branches: stopped recording
        o = msg.origin
        tally = self._tally(
            ("spoofed_response", o.src_ip, "branch"),
            "medium",
            o.ts_ns,
            o.frame,
            "",
            "A 2xx that answers no INVITE sent (RFC 3261 §17.1.3 matches on the branch): an injected "
            "answer, or an INVITE the capture lost. Check the source is the peer the call was sent to.",
        )
        if tally is None:
            return
        tally.add(o.ts_ns, o.frame)
        tally.details.setdefault("example_branch", branch)
        tally.summary = (
            f"{o.src_ip} sent {tally.count} 2xx answer(s) to INVITEs whose Via branch no INVITE of that call carried"
        )

    # -- from call reports -------------------------------------------------------------------
    def _unanswered(self, src_ip: str, start_ns: int, frame: int) -> None:
        c = self.config
        src = self._source(src_ip)
        if src.unanswered is None:
            src.unanswered = _Buckets(c.unanswered_window_s)
        n = src.unanswered.add(start_ns)
        if n < c.unanswered_min:
            return
        key = ("invite_flood", src_ip, "unanswered")
        opened = key not in self._tallies
        if opened and n < c.unanswered_min:
            return
        tally = self._tally(
            key,
            "medium",
            start_ns,
            frame,
            "",
            "A surge of unanswered INVITEs: a flood the next hop drops, or a next hop that is down. "
            "Check the next hop's health first, then rate-limit the source.",
        )
        if tally is None:
            return
        tally.add(start_ns, frame, n if opened else 1)
        peak = max(int(tally.details.get("peak_per_window", 0)), n)
        tally.details["peak_per_window"] = peak
        tally.details["window_s"] = c.unanswered_window_s
        tally.summary = (
            f"{tally.count} calls from {src_ip} got no final answer, up to {peak} started within "
            f"{c.unanswered_window_s} s"
        )

    def _international(self, src_ip: str, r: ReportNote, number: str, frame: int) -> None:
        c = self.config
        src = self._source(src_ip)
        src.intl_calls += 1
        src.intl.append((r.start_ns, number, r.outcome in _ANSWERED, r.outcome in _REFUSED, frame))
        start = r.start_ns - int(c.toll_window_s * _NS)
        recent = [e for e in src.intl if e[0] > start]
        numbers = {e[1] for e in recent}
        refused = sum(1 for e in recent if e[3])
        probing = len(numbers) >= c.toll_min_numbers and refused >= c.toll_min_refused * len(recent)
        unauthorised = src.refused > 0 and not src.registered
        key = ("toll_fraud", src_ip, "")
        tally = self._tallies.get(key)
        if tally is None and not (probing or unauthorised):
            return
        tally = self._tally(key, "medium", r.start_ns, frame, "", "")
        if tally is None:
            return
        if tally.count == 0:
            for e in recent[:-1]:
                tally.add(e[0], e[4])
        tally.add(r.start_ns, frame)
        answered = [e[1] for e in recent if e[2]]
        if probing and answered:
            tally.severity = "high"
        tally.details["numbers"] = max(int(tally.details.get("numbers", 0)), len(numbers))
        tally.details["refused"] = refused
        tally.details["examples"] = ", ".join(sorted(numbers)[:5])
        if answered:
            tally.details["answered_example"] = answered[0]
        tally.summary = _toll_summary(
            src_ip, len(numbers), refused, len(recent), answered, unauthorised and not probing
        )
        tally.hint = (
            "International Revenue Share Fraud follows this pattern: bar international destinations for "
            "this source and account, check its credentials, and look at the answered calls first."
        )


def _toll_summary(src: str, numbers: int, refused: int, calls: int, answered: list[str], unauthorised: bool) -> str:
    if unauthorised:
        return (
            f"{src} called {numbers} international number(s) although its credentials were refused "
            "and it never registered in this capture"
        )
    text = f"{src} tried {numbers} international numbers ({refused} of {calls} calls refused or unanswered)"
    if answered:
        return f"{text}, and a call to {answered[0]} was answered: dial-plan probing found a way out"
    return f"{text}: dial-plan probing for a route abroad"
