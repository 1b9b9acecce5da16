"""The reading process hands messages and ICMP errors on; the others take theirs in order."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from analyzer.decode.pipeline import Decoder, Unreachable
from analyzer.reader import MessageReader
from analyzer.relay import Relay, follow, roomy
from analyzer.shards import owners, shard_of
from analyzer.sip.message import SipMessage

SAMPLES = Path(__file__).resolve().parents[1] / "sample_pcaps"


def _pipes(n: int) -> list[tuple[multiprocessing.connection.Connection, multiprocessing.connection.Connection]]:
    return [multiprocessing.Pipe(duplex=False) for _ in range(n)]


def _hand_on(capture: str, sends: list[multiprocessing.connection.Connection]) -> tuple[list[SipMessage], Decoder]:
    decoder = Decoder()
    relay = Relay(sends, owners(2), decoder.stats.unreachable, 5)  # a sweep every 5 messages
    messages = []
    for msg in MessageReader(SAMPLES / capture, decoder=decoder):  # handed on as read, as the reader does
        relay.hand(msg)
        messages.append(msg)
    relay.close(decoder.stats.last_ts_ns or 0)
    return messages, decoder


class _Watched(list[tuple[str, SipMessage | int]]):
    """What a watch was given: ("message", the message) or ("tick", a time)."""

    def message(self, msg: SipMessage) -> None:
        self.append(("message", msg))

    def tick(self, ts_ns: int) -> None:
        self.append(("tick", ts_ns))


def _watched(messages: list[SipMessage], me: int) -> list[tuple[str, SipMessage | int]]:
    """What the process of share ``me`` watches: every message in the order read, of another
    share's provisional responses only the time."""
    return [
        ("tick", m.origin.ts_ns) if shard_of(m.call_id, 2) != me and 100 <= m.status < 200 else ("message", m)
        for m in messages
    ]


def test_each_process_gets_its_messages_and_every_icmp_error() -> None:
    """rule_timeout.pcap: INVITEs to a dead address, ICMP errors between them. The process
    of share 0 also watches every message."""
    pipes = _pipes(2)
    messages, decoder = _hand_on("rule_timeout.pcap", [send for _, send in pipes])
    got: list[list[SipMessage]] = [[], []]
    icmp: list[list[Unreachable]] = [[], []]
    watched = _Watched()
    sweeps: list[list[int]] = [[], []]
    ends = [
        follow(pipes[0][0], 0, got[0].append, icmp[0], sweeps[0].append, watched),
        follow(pipes[1][0], 1, got[1].append, icmp[1], sweeps[1].append),
    ]
    assert ends == [decoder.stats.last_ts_ns] * 2 and len(decoder.stats.unreachable) == 14
    assert watched == _watched(messages, 0)
    for me in (0, 1):
        assert got[me] == [m for m in messages if shard_of(m.call_id, 2) == me]
    assert icmp == [decoder.stats.unreachable] * 2
    assert [len(g) for g in got] == [14, 7]
    # every process sweeps where one process would: after every 5th message, by the newest time then
    every_5th = [max(m.origin.ts_ns for m in messages[:n]) for n in range(5, len(messages) + 1, 5)]
    assert sweeps == [every_5th] * 2 and len(every_5th) == 4


class _Log(list[Unreachable]):
    def __init__(self, log: list[int]) -> None:
        super().__init__()
        self.log = log

    def append(self, item: Unreachable) -> None:
        self.log.append(item.frame)


def test_icmp_errors_come_in_their_place_among_the_messages() -> None:
    """A call swept at a message must see the errors read before it, as with one process."""
    (first, to_first), (second, to_second) = _pipes(2)
    _hand_on("rule_timeout.pcap", [to_first, to_second])
    frames: list[list[int]] = [[], []]
    follow(first, 0, lambda m: frames[0].append(m.frame), _Log(frames[0]), lambda now: None, _Watched())
    follow(second, 1, lambda m: frames[1].append(m.frame), _Log(frames[1]), lambda now: None)
    assert [len(f) for f in frames] == [14 + 14, 7 + 14] and all(f == sorted(f) for f in frames)


def test_a_process_gone_is_no_longer_fed() -> None:
    (gone, to_gone), (recv, send) = _pipes(2)
    gone.close()
    messages, _ = _hand_on("rule_forking.pcap", [to_gone, send])  # no BrokenPipeError
    got: list[SipMessage] = []
    assert follow(recv, 1, got.append, [], lambda now: None) is not None
    assert got == [m for m in messages if shard_of(m.call_id, 2) == 1] and got


def test_a_reader_that_stops_early_ends_the_others_without_a_result() -> None:
    recv, send = multiprocessing.Pipe(duplex=False)
    roomy(recv)
    send.close()
    assert follow(recv, 0, lambda m: None, [], lambda now: None) is None


def test_another_shares_provisional_responses_reach_the_watch_as_their_time() -> None:
    """rule_forking.pcap: a forked call's 180s from several phones, 12 in the other share."""
    pipes = _pipes(2)
    messages, _ = _hand_on("rule_forking.pcap", [send for _, send in pipes])
    watched = _Watched()
    follow(pipes[0][0], 0, lambda m: None, [], lambda now: None, watched)
    follow(pipes[1][0], 1, lambda m: None, [], lambda now: None)
    assert watched == _watched(messages, 0)
    assert [kind for kind, _ in watched].count("tick") == 12
