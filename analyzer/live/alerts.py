"""Alerts (sans-I/O): SIP messages and finished call reports in, :class:`Alert` values out.

| kind | raised when | keyed by |
|---|---|---|
| ``scanner`` | a request whose User-Agent names a known SIP scanner | source ip |
| ``register_flood`` | more than ``register_limit`` REGISTER requests in ``register_window_s`` | source ip |
| ``auth_storm`` | more than ``auth_limit`` 401/403 responses in ``auth_window_s`` | the client ip they go to |
| ``peer_503`` | a peer whose last call was answered (2xx) answers the next one 503 | peer (callee_addr) |
| ``failure_spike`` | the share of failed calls over the last ``spike_window_s`` is well above the baseline | — |

Each key alerts at most once per ``cooldown_s``; every table is bounded (least recently
used keys forgotten first), so a scan from a million addresses costs a fixed amount of
memory. Time is capture time (ns), from the messages and reports themselves.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from analyzer.correlate.model import Kind, Outcome
from analyzer.diagnose.security import SCANNERS  # one list of attack tools, shared with the offline findings
from analyzer.diagnose.verdict import CallReport
from analyzer.sip.message import SipMessage

_NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Alert:
    kind: str
    time_ns: int
    subject: str
    """What it is about: an ip, a peer, or ``all calls``."""
    message: str
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AlertConfig:
    cooldown_s: float = 300.0
    register_limit: int = 100
    register_window_s: float = 10.0
    auth_limit: int = 20
    auth_window_s: float = 60.0
    spike_window_s: float = 60.0
    baseline_window_s: float = 900.0
    spike_min_calls: int = 10
    spike_min_rate: float = 0.3
    """A spike needs at least this share of failures …"""
    spike_factor: float = 2.0
    """… and this many times the baseline share (or the baseline + 0.25 when it is low)."""
    max_keys: int = 10_000


@dataclass(slots=True)
class _Bounded:
    """A dict of at most ``limit`` keys; the least recently touched goes first."""

    limit: int
    items: OrderedDict[str, Any] = field(default_factory=OrderedDict)

    def touch(self, key: str, default: Any) -> Any:
        value = self.items.pop(key, default)
        self.items[key] = value
        if len(self.items) > self.limit:
            self.items.popitem(last=False)
        return value


@dataclass(slots=True)
class _Cooldown:
    """Lets one alert per key through per ``period_ns``."""

    period_ns: int
    last: _Bounded

    def ready(self, key: str, now: int) -> bool:
        last = self.last.items.get(key)
        if last is not None and now - last < self.period_ns:
            return False
        self.last.touch(key, now)
        self.last.items[key] = now
        return True


@dataclass(slots=True)
class _Window:
    """Event times per key inside a sliding window; holds at most ``limit + 1`` per key."""

    window_ns: int
    limit: int
    keys: _Bounded

    def add(self, key: str, now: int) -> int:
        times: deque[int] = self.keys.touch(key, None) or deque(maxlen=self.limit + 1)
        self.keys.items[key] = times
        times.append(now)
        while times and times[0] <= now - self.window_ns:
            times.popleft()
        return len(times)


class Alerts:
    """Feed every message (:meth:`message`) and every finished report (:meth:`report`)."""

    def __init__(self, config: AlertConfig | None = None) -> None:
        c = self.config = config or AlertConfig()
        cool = int(c.cooldown_s * _NS)
        self._cooldowns = {k: _Cooldown(cool, _Bounded(c.max_keys)) for k in _KINDS}
        self._registers = _Window(int(c.register_window_s * _NS), c.register_limit, _Bounded(c.max_keys))
        self._auth = _Window(int(c.auth_window_s * _NS), c.auth_limit, _Bounded(c.max_keys))
        self._peer_last = _Bounded(c.max_keys)
        # Calls per second of end time: (second, attempts, failed), over the baseline window.
        self._seconds: deque[list[int]] = deque()
        self.raised: dict[str, int] = dict.fromkeys(_KINDS, 0)

    def _raise(self, kind: str, key: str, now: int, message: str, **details: Any) -> list[Alert]:
        if not self._cooldowns[kind].ready(key, now):
            return []
        self.raised[kind] += 1
        return [Alert(kind, now, key, message, details)]

    # -- per message -------------------------------------------------------------------
    def message(self, msg: SipMessage) -> list[Alert]:
        o = msg.origin
        if msg.status == 0:
            out = self._scanner(msg)
            if msg.method.upper() == "REGISTER":
                out += self._register(msg)
            return out
        if msg.status in (401, 403):
            n = self._auth.add(o.dst_ip, o.ts_ns)
            if n > self.config.auth_limit:
                return self._raise(
                    "auth_storm",
                    o.dst_ip,
                    o.ts_ns,
                    f"{o.dst_ip} got more than {self.config.auth_limit} 401/403 answers "
                    f"in {self.config.auth_window_s:g} s (password guessing?)",
                    limit=self.config.auth_limit,
                    window_s=self.config.auth_window_s,
                    last_code=msg.status,
                    src=o.src_ip,
                )
        return []

    def _scanner(self, msg: SipMessage) -> list[Alert]:
        agent = msg.headers.get("user-agent")
        if not agent:
            return []
        low = agent.lower()
        name = next((s for s in SCANNERS if s in low), None)
        if name is None:
            return []
        o = msg.origin
        return self._raise(
            "scanner",
            o.src_ip,
            o.ts_ns,
            f"{o.src_ip} sends {msg.method} with the User-Agent of a SIP scanner: {agent!r}",
            user_agent=agent,
            method=msg.method,
            uri=msg.uri,
        )

    def _register(self, msg: SipMessage) -> list[Alert]:
        o = msg.origin
        if self._registers.add(o.src_ip, o.ts_ns) <= self.config.register_limit:
            return []
        return self._raise(
            "register_flood",
            o.src_ip,
            o.ts_ns,
            f"{o.src_ip} sent more than {self.config.register_limit} REGISTER requests "
            f"in {self.config.register_window_s:g} s",
            limit=self.config.register_limit,
            window_s=self.config.register_window_s,
        )

    # -- per finished call -------------------------------------------------------------
    def report(self, r: CallReport) -> list[Alert]:
        if r.kind is not Kind.CALL or r.outcome is Outcome.IN_PROGRESS:
            return []
        return self._peer(r) + self._spike(r)

    def _peer(self, r: CallReport) -> list[Alert]:
        peer, code = r.callee_addr, r.final_code
        if not peer or code is None:
            return []
        last = self._peer_last.touch(peer, None)
        self._peer_last.items[peer] = code
        if code != 503 or last is None or not 200 <= last < 300:
            return []
        return self._raise(
            "peer_503",
            peer,
            r.end_ns,
            f"peer {peer} answered a call with 2xx, now with 503 {r.final_reason}".rstrip(),
            call_id=r.call_id,
            previous_code=last,
            code=code,
        )

    def _spike(self, r: CallReport) -> list[Alert]:
        c = self.config
        sec = r.end_ns // _NS
        seconds = self._seconds
        if seconds and seconds[-1][0] >= sec:
            bucket = seconds[-1]  # reports come roughly in end order: a late one joins the newest second
        else:
            bucket = [sec, 0, 0]
            seconds.append(bucket)
        bucket[1] += 1
        bucket[2] += r.breaking is not None
        newest = seconds[-1][0]
        while seconds and seconds[0][0] <= newest - c.baseline_window_s - c.spike_window_s:
            seconds.popleft()
        recent = [b for b in seconds if b[0] > newest - c.spike_window_s]
        base = [b for b in seconds if b[0] <= newest - c.spike_window_s]
        calls, failed = sum(b[1] for b in recent), sum(b[2] for b in recent)
        if calls < c.spike_min_calls:
            return []
        rate = failed / calls
        base_calls = sum(b[1] for b in base)
        base_rate = sum(b[2] for b in base) / base_calls if base_calls else 0.0
        if rate < c.spike_min_rate or rate < min(base_rate * c.spike_factor, base_rate + 0.25):
            return []
        return self._raise(
            "failure_spike",
            "all calls",
            r.end_ns,
            f"{failed} of the last {calls} calls failed ({rate:.0%}) in {c.spike_window_s:g} s; "
            f"baseline {base_rate:.0%} over {base_calls} calls",
            calls=calls,
            failed=failed,
            rate=round(rate, 4),
            baseline_rate=round(base_rate, 4),
            baseline_calls=base_calls,
        )


_KINDS = ("scanner", "register_flood", "auth_storm", "peer_503", "failure_spike")
