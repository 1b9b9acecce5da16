"""The live core (sans-I/O): frames and HEP packets in, finished call reports out.

The same :class:`~analyzer.decode.pipeline.Decoder` and
:class:`~analyzer.correlate.store.CallStore` as ``sipflow analyze``, fed one frame at a
time; :meth:`LiveEngine.tick` hands over the conversations the store says are over and
diagnoses them, :meth:`LiveEngine.finish` flushes everything still open at the end.

Time is capture time. Between packets it is estimated from the newest capture timestamp
plus the monotonic time elapsed since it arrived (:class:`CaptureClock`), so idle calls
still end when traffic stops, and a capture agent whose clock is off by minutes does not
end calls early or late.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from analyzer.correlate.model import Conversation
from analyzer.correlate.store import SETUP_IDLE_NS, CallStore
from analyzer.decode.pipeline import Decoder, Unreachable
from analyzer.diagnose.verdict import CallReport, diagnose
from analyzer.limits import DEFAULT_LIMITS, Limits
from analyzer.sip.message import SipMessage

# ICMP errors are evidence for requests that got no answer; such a request is diagnosed
# at the latest when its conversation expires (SETUP_IDLE_NS after it), so older errors
# cannot matter any more.
UNREACHABLE_KEEP_NS = SETUP_IDLE_NS + 60_000_000_000
# A Call-ID that never goes quiet for the store's linger time (a REGISTER refreshed every
# 20 s on one Call-ID, OPTIONS pings reusing theirs) would stay open for ever, its
# messages piling up: past this many it is reported as it stands and started afresh.
MAX_CONVERSATION_MESSAGES = 2_000


@dataclass(slots=True)
class CaptureClock:
    """Capture time now: the newest capture timestamp plus monotonic time since it came."""

    last_ts_ns: int = 0
    last_mono_ns: int = 0

    def seen(self, ts_ns: int, mono_ns: int) -> None:
        if ts_ns >= self.last_ts_ns:
            self.last_ts_ns = ts_ns
            self.last_mono_ns = mono_ns

    def now(self, mono_ns: int) -> int:
        if not self.last_ts_ns:
            return 0
        return self.last_ts_ns + max(0, mono_ns - self.last_mono_ns)


@dataclass(slots=True)
class EngineCounters:
    frames: int = 0
    hep_packets: int = 0
    malformed: int = 0
    """SIP-looking bytes that were not a SIP message (the decoder's list, counted and dropped)."""
    reported: int = 0
    split: int = 0
    """Conversations reported early because they grew past MAX_CONVERSATION_MESSAGES."""


@dataclass(slots=True)
class LiveEngine:
    """Decoder + call store + diagnosis, bounded for a run of days.

    ``on_message`` sees every SIP message before the store does (for alerts); ``limits``
    bound what the decoder holds (``live --limit``).
    """

    max_open: int = 200_000
    on_message: Callable[[SipMessage], None] | None = None
    limits: Limits = DEFAULT_LIMITS
    decoder: Decoder = field(init=False)
    store: CallStore = field(init=False)
    clock: CaptureClock = field(default_factory=CaptureClock)
    counters: EngineCounters = field(default_factory=EngineCounters)

    def __post_init__(self) -> None:
        self.decoder = Decoder(self.limits)
        self.store = CallStore(max_open=self.max_open)

    # -- input -----------------------------------------------------------------------
    def frame(self, ts_ns: int, linktype: int, data: bytes, mono_ns: int) -> None:
        """One captured frame (from tcpdump's pcap stream)."""
        self.counters.frames += 1
        self._messages(self.decoder.feed(self.counters.frames, ts_ns, linktype, data), ts_ns, mono_ns)

    def hep(self, ts_ns: int, payload: bytes, mono_ns: int) -> None:
        """One HEP packet received at ``ts_ns`` (wall clock)."""
        self.counters.frames += 1
        self.counters.hep_packets += 1
        # The receive time is on our clock, not the agent's: only the SIP's own time counts.
        self._messages(self.decoder.feed_hep(self.counters.frames, ts_ns, payload), None, mono_ns)

    def _messages(self, msgs: list[SipMessage], frame_ts_ns: int | None, mono_ns: int) -> None:
        clock = self.clock
        if not msgs:
            if frame_ts_ns is not None:  # a frame with no SIP still says what time it is
                clock.seen(frame_ts_ns, mono_ns)
            return
        seen = self.on_message
        feed = self.store.feed
        for msg in msgs:
            if seen is not None:
                seen(msg)
            feed(msg)
            clock.seen(msg.origin.ts_ns, mono_ns)

    # -- output ----------------------------------------------------------------------
    def tick(self, mono_ns: int) -> list[CallReport]:
        """Conversations over by now (linger, idle limits, the ``max_open`` cap), diagnosed."""
        now = self.clock.now(mono_ns)
        self._prune(now)
        if not now:
            return []
        done = self.store.expire(now)
        convs = self.store.conversations
        big = [k for k, c in convs.items() if len(c.messages) > MAX_CONVERSATION_MESSAGES]
        if big:
            self.counters.split += len(big)
            done += [convs.pop(k) for k in big]
        return self._diagnose(done, now)

    def finish(self, mono_ns: int | None = None) -> list[CallReport]:
        """End of input: what the decoder still holds, then every open conversation.

        Judged at capture time now (``mono_ns``): the capture did listen until then, so a
        request unanswered for longer than Timer B has timed out. Without ``mono_ns``, at
        the newest capture timestamp, as ``analyze`` judges the end of a file.
        """
        self._messages(self.decoder.finish(), None, self.clock.last_mono_ns)
        now = self.clock.now(mono_ns) if mono_ns is not None else self.clock.last_ts_ns
        self._prune(now)
        return self._diagnose(self.store.finish(), now)

    def _diagnose(self, conversations: list[Conversation], now: int) -> list[CallReport]:
        icmp: tuple[Unreachable, ...] = tuple(self.decoder.stats.unreachable)
        reports = [diagnose(c, now, icmp) for c in conversations]
        reports.sort(key=lambda r: (r.start_ns, r.call_id))
        self.counters.reported += len(reports)
        return reports

    def _prune(self, now: int) -> None:
        """Keep the decoder's lists bounded: count malformed messages, forget old ICMP errors."""
        st = self.decoder.sync_stats()
        if st.malformed:
            self.counters.malformed += len(st.malformed)
            st.malformed.clear()
        icmp = st.unreachable
        if icmp and icmp[0].ts_ns < now - UNREACHABLE_KEEP_NS:
            st.unreachable = [u for u in icmp if u.ts_ns >= now - UNREACHABLE_KEEP_NS]

    @property
    def open_conversations(self) -> int:
        return len(self.store.conversations)
