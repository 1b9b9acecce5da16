"""How ``analyze --jobs`` shares a capture's messages out between processes.

One process reads the captures: it decodes every frame and parses every message, once.
It hands each message on packed (:func:`analyzer.sip.message.packed`), in batches through
a pipe to each process that correlates and diagnoses the Call-IDs of a share
(:func:`analyzer.shards.shard_of`), with every ICMP error in its place among them (any
call may cite one), and last the time the capture ends (:func:`follow`). A batch holds
each share's messages pickled apart: a process unpickles its own share only, except the
first, which also keeps the security watch and so takes every message, in the order read.
No frame is decoded and no message parsed twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import pickle
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.connection import Connection
from typing import Protocol, cast

from analyzer.decode.pipeline import Unreachable
from analyzer.sip.message import PACKED_STATUS, PACKED_TS, Packed, SipMessage, packed, unpacked

BATCH = 256
"""Messages sent at a time."""
_END = b"E"
"""The first byte of the last message on a pipe (a batch is a pickle: it starts with 0x80)."""

PIPE_BYTES = 1 << 20
"""What a pipe holds before its writer waits: the reader may run this far ahead of the
processes it feeds (a batch is about 130 KiB: with Linux's default of 64 KiB the reader
waited for each batch to be taken, 1 s of 6 on the all-SIP benchmark)."""

_Item = Packed | Unreachable | int
"""A message, an ICMP error, or a sweep (the time it sweeps by)."""


class Watch(Protocol):
    """What watches every message (:class:`analyzer.diagnose.security.SecurityWatch`)."""

    def message(self, msg: SipMessage) -> None:
        """A message, in the order read."""

    def tick(self, ts_ns: int) -> None:
        """What :meth:`message` of a provisional response does: the time it was read at."""


class Relay:
    """The reading process's side: :meth:`hand` each message on, :meth:`close` at the end."""

    def __init__(
        self, sends: Sequence[Connection], owner: Callable[[str], int], icmp: list[Unreachable], sweep_every: int
    ) -> None:
        """``sends[k]``: the pipe to the process of share ``k`` (the first one watches);
        ``owner``: the share of a Call-ID; ``icmp``: the decoder's list of ICMP errors, which
        grows as frames are read; ``sweep_every``: after how many messages (of all) every
        process sweeps its store, with the newest time read then, as one process would."""
        self._sends: list[Connection | None] = list(sends)
        self._owner = owner
        self._icmp = icmp
        self._icmp_sent = 0
        self._sweep_every = sweep_every
        self._handed = 0
        self._now_ns = 0
        self._owners: list[int] = []
        """The share of each message of the batch, in the order read."""
        self._shares: list[list[_Item]] = [[] for _ in sends]

    def hand(self, msg: SipMessage) -> None:
        """Hand ``msg`` on, after the ICMP errors read before it."""
        if len(self._icmp) > self._icmp_sent:
            self._take_icmp()
        k = self._owner(msg.call_id)
        self._owners.append(k)
        self._shares[k].append(packed(msg))
        self._now_ns = max(self._now_ns, msg.origin.ts_ns)
        self._handed += 1
        if not self._handed % self._sweep_every:
            for share in self._shares:  # a sweep, in its place: the time it sweeps by
                share.append(self._now_ns)
        if len(self._owners) >= BATCH:
            self._send()

    def close(self, end_ns: int) -> None:
        """Hand on what is left, then the time the capture ends, and close the pipes."""
        self._take_icmp()
        self._send()
        end = _END + pickle.dumps(end_ns, pickle.HIGHEST_PROTOCOL)
        for k in range(len(self._sends)):
            self._post(k, end)
            send = self._sends[k]
            if send is not None:
                send.close()

    def _take_icmp(self) -> None:
        new = self._icmp[self._icmp_sent :]
        self._icmp_sent = len(self._icmp)
        for share in self._shares:
            share.extend(new)

    def _send(self) -> None:
        if not any(self._shares):
            return
        blobs = [pickle.dumps(share, pickle.HIGHEST_PROTOCOL) for share in self._shares]
        self._post(0, pickle.dumps((self._owners, blobs), pickle.HIGHEST_PROTOCOL))
        for k in range(1, len(blobs)):
            self._post(k, blobs[k])
        self._owners = []
        self._shares = [[] for _ in self._shares]

    def _post(self, k: int, data: bytes) -> None:
        send = self._sends[k]
        if send is None:
            return
        try:
            send.send_bytes(data)
        except OSError:  # that process is gone (its own error says why): stop feeding it
            self._sends[k] = None
            send.close()


def roomy(conn: Connection) -> None:
    """Let the pipe behind ``conn`` hold :data:`PIPE_BYTES` (or as much as the system allows:
    ``/proc/sys/fs/pipe-max-size``, 1 MiB by default); as it was where that cannot be set."""
    setsize = getattr(fcntl, "F_SETPIPE_SZ", None)  # Linux only
    if setsize is None:
        return
    with contextlib.suppress(OSError):
        fcntl.fcntl(conn.fileno(), setsize, PIPE_BYTES)


def follow(
    recv: Connection,
    me: int,
    feed: Callable[[SipMessage], None],
    icmp: list[Unreachable],
    sweep: Callable[[int], None],
    watch: Watch | None = None,
) -> int | None:
    """The side of the process of share ``me``: each of its messages to ``feed``, each ICMP
    error onto ``icmp``, each sweep to ``sweep``, in the order they were read; with ``watch``
    (share 0 only) every message to it first, in the order read. Returns the time the
    capture ends, or None when the reader stopped before the end (its error says why)."""
    take = _Take(feed, icmp, sweep)
    while True:
        try:
            data = recv.recv_bytes()
        except EOFError:
            return None
        if data[:1] == _END:
            end: int = pickle.loads(data[1:])
            return end
        if watch is None:
            for item in pickle.loads(data):
                take(item)
        else:
            owners, blobs = pickle.loads(data)
            _take_all(owners, [iter(pickle.loads(b)) for b in blobs], me, take, watch)


class _Take:
    """What a process does with an item of its share."""

    def __init__(
        self, feed: Callable[[SipMessage], None], icmp: list[Unreachable], sweep: Callable[[int], None]
    ) -> None:
        self.feed, self.icmp, self.sweep = feed, icmp, sweep

    def __call__(self, item: _Item) -> None:
        kind = type(item)
        if kind is tuple:
            self.feed(unpacked(cast(Packed, item)))
        elif kind is int:
            self.sweep(cast(int, item))
        else:
            self.icmp.append(cast(Unreachable, item))


def _take_all(
    owners: list[int],
    shares: list[Iterator[_Item]],
    me: int,
    take: _Take,
    watch: Watch,
) -> None:
    """Every message of a batch to ``watch`` in the order read (``owners``: the share of
    each), and share ``me``'s items to ``take``, in their place. Another share's provisional
    responses are not made messages again: the watch needs only their time."""
    for k in owners:
        share = shares[k]
        item = next(share)
        while type(item) is not tuple:  # ICMP errors and sweeps before the message (in every share)
            if k == me:
                take(item)
            item = next(share)
        if k == me:
            msg = unpacked(item)
            watch.message(msg)
            take.feed(msg)
        elif 100 <= item[PACKED_STATUS] < 200:
            watch.tick(item[PACKED_TS])
        else:
            watch.message(unpacked(item))
    for rest in shares[me]:  # ICMP errors and sweeps after the batch's last message
        take(rest)
