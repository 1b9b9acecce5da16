"""Work shared out over forked processes, their results merged back in order (``--jobs``).

Each process runs the same ``work`` with its own number. It hands over its items, already
in order, and they come back here through a pipe, a batch at a time, to be merged by
``key`` (worked out by the process) as they arrive, so the first items are out before the
last are made; batches sent ahead of the merge wait here, pickled, so that no process waits
for the others to catch up. Keys are unique across processes. What ``work``
returns comes last, and is read once every item is out (:attr:`Sharded.ends`). A
:class:`analyzer.errors.SipflowError` in a process is raised here; anything else is
wrapped in one that names the process. Processes are forked: ``work`` need not pickle,
but its items and its result must.
"""

from __future__ import annotations

import gc
import heapq
import multiprocessing
import pickle
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any, Generic, TypeVar

from analyzer.errors import SipflowError

T = TypeVar("T")
E = TypeVar("E")

BATCH = 256
"""Items a process sends at a time."""

Work = Callable[[int, Callable[[T], None], Callable[[int], None]], E]
"""``work(number, put, tick)``: hand each item to ``put``; the first process calls ``tick``
with the bytes read so far, for a progress bar. Returns what the process found besides."""


@dataclass(slots=True)
class _End:
    """A process's last message: what ``work`` returned, or the error it raised."""

    value: Any
    error: BaseException | None = None


AHEAD_BYTES = 16 << 20
"""How much a process may send ahead of the merge (pickled), before it has to wait: about
90,000 call reports or 100,000 message rows; so memory stays bounded however long the capture."""


class Sharded(Generic[T, E]):
    """Iterate to run ``work`` in ``shards`` processes and get their items merged by ``key``."""

    def __init__(
        self,
        shards: int,
        work: Work[T, E],
        key: Callable[[T], Any],
        progress: Callable[[int], None] | None = None,
        started: Callable[[], None] | None = None,
        ahead: int | None = AHEAD_BYTES,
        quiet: int = 0,
    ) -> None:
        self.shards = shards
        self.work = work
        self.key = key
        self.progress = progress
        self.started = started
        """Called here once every process is started (to close what they alone use)."""
        self.ahead = ahead
        """How much a process may send ahead of the merge (:data:`AHEAD_BYTES`); None: no
        bound, for processes that wait on each other (one feeds another), which a bound
        here could leave all waiting."""
        self.quiet = quiet
        """The first ``quiet`` processes send no items, only what ``work`` returns: the merge
        does not wait for their next item."""
        self.ends: list[E] = []
        """What each process's ``work`` returned, in process order (once iteration is over)."""

    def __iter__(self) -> Iterator[T]:
        ctx = multiprocessing.get_context("fork")
        done = ctx.Value("q", 0, lock=False)
        pipes = [ctx.Pipe(duplex=False) for _ in range(self.shards)]
        procs = [
            ctx.Process(target=_run, args=(self.work, self.key, k, send, done), daemon=True)
            for k, (_, send) in enumerate(pipes)
        ]
        try:
            for proc in procs:
                try:
                    proc.start()
                except OSError as exc:  # out of processes or memory
                    raise SipflowError(
                        f"cannot start a process for --jobs ({exc.strerror or exc}): try fewer, or --jobs 1"
                    ) from None
            for _, send in pipes:
                send.close()  # the processes hold the sending ends now
            if self.started is not None:
                self.started()
            yield from self._merged([recv for recv, _ in pipes], done)
        finally:
            for proc in procs:
                if proc.pid is None:
                    continue  # never started
                if proc.is_alive():
                    proc.terminate()
                proc.join()
            for recv, send in pipes:
                recv.close()
                send.close()

    def _merged(self, recvs: list[Connection], done: Any) -> Iterator[T]:
        """The processes' items in key order. Whatever any process has sent is taken in as it
        comes, still pickled, while the merge waits for another's next item: a process that
        runs ahead is not held back until the others catch up, up to :attr:`ahead` bytes of
        batches waiting. The :attr:`quiet` processes are waited for at the end only."""
        inbox = [_Inbox(k, recv) for k, recv in enumerate(recvs)]
        heads: list[tuple[Any, int, T]] = []
        """The next item of each process that has one out (key, process, item): tuples compare
        in C, and never as far as the items (no two processes send the same key)."""
        waiting = inbox[self.quiet :]  # processes without a head in ``heads``, their End not met
        out = 0
        while True:
            still = []
            for box in waiting:
                head = box.next_item()
                if head is not None:
                    heapq.heappush(heads, head)
                elif box.end is None:
                    still.append(box)
            waiting = still
            if not waiting:
                if not heads:
                    break
                _, shard, item = heapq.heappop(heads)
                waiting.append(inbox[shard])
                yield item
                out += 1
                if out % BATCH == 0:
                    self._take_in(inbox, done, 0)  # keep the processes going while busy here
                continue
            # Some process's next item has not come: take in what has, from every process
            # not too far ahead, until it does.
            self._take_in(inbox, done, None)
        while any(b.end is None for b in inbox[: self.quiet]):
            self._take_in(inbox, done, None)
        self.ends = [b.end.value for b in inbox if b.end is not None]

    def _take_in(self, inbox: list[_Inbox], done: Any, timeout: float | None) -> None:
        """Receive what the processes have sent (waiting up to ``timeout`` for something)."""
        ahead = self.ahead
        ready = [b.recv for b in inbox if b.end is None and (ahead is None or b.pending < ahead)]
        got = wait(ready, timeout) if ready else []
        for box in inbox:
            if box.recv in got:
                box.take()
        if got and self.progress is not None:
            self.progress(done.value)


class _Inbox:
    """What one process sent and the merge has not used yet: pickled batches, and the batch
    being used."""

    def __init__(self, shard: int, recv: Connection) -> None:
        self.shard = shard
        self.recv = recv
        self.end: _End | None = None
        """The process's last message, once it has come."""
        self.batches: deque[bytes] = deque()
        self.pending = 0
        """Bytes in :attr:`batches`."""
        self.current: Iterator[Any] = iter(())

    def take(self) -> None:
        """Receive one message (the process has sent one): a batch is kept pickled; the End
        is read at once (an error raised)."""
        try:
            data = self.recv.recv_bytes()
        except EOFError:
            raise SipflowError(f"sipflow: worker {self.shard} ended without its results") from None
        if data[:1] == _END_TAG:
            end: _End = pickle.loads(data[1:])
            if end.error is not None:
                raise end.error
            self.end = end
            return
        self.batches.append(data)
        self.pending += len(data)

    def next_item(self) -> Any:
        """The next item, or None when none is here yet (or ever, once the End is in)."""
        item = next(self.current, None)
        while item is None and self.batches:
            data = self.batches.popleft()
            self.pending -= len(data)
            self.current = iter(pickle.loads(data))
            item = next(self.current, None)
        return item


_END_TAG = b"E"
"""The first byte of a process's last message (a batch is a pickle: it starts with 0x80)."""


def _run(work: Work[T, E], key: Callable[[T], Any], shard: int, send: Connection, done: Any) -> None:
    gc.disable()  # a short-lived process that makes no reference cycles (see analysis.no_gc_pauses)
    batch: list[tuple[Any, int, T]] = []

    def put(item: T) -> None:
        batch.append((key(item), shard, item))
        if len(batch) >= BATCH:
            send.send_bytes(pickle.dumps(batch, pickle.HIGHEST_PROTOCOL))
            batch.clear()

    def tick(nbytes: int) -> None:
        done.value = nbytes

    try:
        value = work(shard, put, tick)
        if batch:
            send.send_bytes(pickle.dumps(batch, pickle.HIGHEST_PROTOCOL))
        end = _End(value)
    except BaseException as exc:
        error = exc if isinstance(exc, SipflowError) else SipflowError(f"worker {shard}: {exc!r}")
        end = _End(None, error)
    try:
        send.send_bytes(_END_TAG + pickle.dumps(end, pickle.HIGHEST_PROTOCOL))
    finally:
        send.close()
