"""How ``analyze --jobs`` shares a capture's messages out between processes.

One process reads the captures: it decodes every frame and parses every message, once.
It hands each message on packed (:func:`analyzer.sip.message.packed`), in batches through
a pipe to every other process, with every ICMP error in its place among them (any call
may cite one), and last the time the capture ends. The watcher unpacks every message for
the security watch; each of the others unpacks the messages of the Call-IDs it takes
(:func:`analyzer.shards.shard_of`) to correlate and diagnose them (:func:`follow`). So no
frame is decoded and no message parsed twice, and the security watch, which must see every
message in order, runs beside the calls rather than in front of them.
"""

from __future__ import annotations

import contextlib
import fcntl
import pickle
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection

from analyzer.decode.pipeline import Unreachable
from analyzer.sip.message import Packed, SipMessage, packed, unpacked

BATCH = 256
"""Messages (and ICMP errors) sent at a time."""
ICMP = -1
"""The owner of an ICMP error in a batch: it is every process's."""
_END = b"E"
"""The first byte of the last message on a pipe (a batch is a pickle: it starts with 0x80)."""

PIPE_BYTES = 1 << 20
"""What a pipe holds before its writer waits: the reader may run this far ahead of the
processes it feeds (a batch is about 130 KiB: with Linux's default of 64 KiB the reader
waited for each batch to be taken, 1 s of 6 on the all-SIP benchmark)."""


class Relay:
    """The reading process's side: :meth:`hand` each message on, :meth:`close` at the end."""

    def __init__(self, sends: Sequence[Connection], owner: Callable[[str], int], icmp: list[Unreachable]) -> None:
        """``sends``: a pipe to each other process; ``owner``: the number of the process that
        takes a Call-ID; ``icmp``: the decoder's list of ICMP errors, which grows as frames
        are read."""
        self._sends: list[Connection | None] = list(sends)
        self._owner = owner
        self._icmp = icmp
        self._icmp_sent = 0
        self._owners: list[int] = []
        self._items: list[Packed | Unreachable] = []

    def hand(self, msg: SipMessage) -> None:
        """Hand ``msg`` on, after the ICMP errors read before it."""
        if len(self._icmp) > self._icmp_sent:
            self._take_icmp()
        self._owners.append(self._owner(msg.call_id))
        self._items.append(packed(msg))
        if len(self._items) >= BATCH:
            self._send()

    def close(self, end_ns: int) -> None:
        """Hand on what is left, then the time the capture ends, and close the pipes."""
        self._take_icmp()
        self._send()
        self._post(_END + pickle.dumps(end_ns, pickle.HIGHEST_PROTOCOL))
        for send in self._sends:
            if send is not None:
                send.close()

    def _take_icmp(self) -> None:
        new = self._icmp[self._icmp_sent :]
        self._icmp_sent = len(self._icmp)
        self._owners.extend([ICMP] * len(new))
        self._items.extend(new)

    def _send(self) -> None:
        if self._items:
            self._post(pickle.dumps((self._owners, self._items), pickle.HIGHEST_PROTOCOL))
            self._owners, self._items = [], []

    def _post(self, data: bytes) -> None:
        for k, send in enumerate(self._sends):
            if send is None:
                continue
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


def follow(recv: Connection, me: int | None, feed: Callable[[SipMessage], None], icmp: list[Unreachable]) -> int | None:
    """A process fed by the reader: each message of process ``me`` (every message when None)
    to ``feed``, each ICMP error onto ``icmp``, in the order they were read. Returns the time
    the capture ends, or None when the reader stopped before the end (its error says why)."""
    while True:
        try:
            data = recv.recv_bytes()
        except EOFError:
            return None
        if data[:1] == _END:
            end: int = pickle.loads(data[1:])
            return end
        owners, items = pickle.loads(data)
        for owner, item in zip(owners, items, strict=True):
            if owner == me or (me is None and owner != ICMP):
                feed(unpacked(item))
            elif owner == ICMP:
                icmp.append(item)
