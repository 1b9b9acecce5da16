"""Work shared out over forked processes, their results merged back in order (``--jobs``).

Each process runs the same ``work`` with its own number. It hands over its items, already
in order, and they come back here through a pipe, a batch at a time, to be merged by
``key`` (worked out by the process) as they arrive, so the first items are out before the
last are made. Keys are unique across processes. What ``work``
returns comes last, and is read once every item is out (:attr:`Sharded.ends`). A
:class:`analyzer.errors.SipflowError` in a process is raised here; anything else is
wrapped in one that names the process. Processes are forked: ``work`` need not pickle,
but its items and its result must.
"""

from __future__ import annotations

import gc
import heapq
import multiprocessing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
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


class Sharded(Generic[T, E]):
    """Iterate to run ``work`` in ``shards`` processes and get their items merged by ``key``."""

    def __init__(
        self,
        shards: int,
        work: Work[T, E],
        key: Callable[[T], Any],
        progress: Callable[[int], None] | None = None,
    ) -> None:
        self.shards = shards
        self.work = work
        self.key = key
        self.progress = progress
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
        ends: list[_End | None] = [None] * self.shards
        try:
            for proc in procs:
                proc.start()
            for _, send in pipes:
                send.close()  # the processes hold the sending ends now
            streams = [self._received(recv, k, ends, done) for k, (recv, _) in enumerate(pipes)]
            # The processes send (key, process, item): tuples compare in C, and never get as far
            # as the items (no two processes send the same key with the same number).
            for _, _, item in heapq.merge(*streams):
                yield item
        finally:
            for proc in procs:
                if proc.is_alive():
                    proc.terminate()
                proc.join()
            for recv, _ in pipes:
                recv.close()
        self.ends = [e.value for e in ends if e is not None]

    def _received(
        self, recv: Connection, shard: int, ends: list[_End | None], done: Any
    ) -> Iterator[tuple[Any, int, T]]:
        progress = self.progress if shard == 0 else None
        while True:
            try:
                item = recv.recv()
            except EOFError:
                raise SipflowError(f"sipflow: worker {shard} ended without its results") from None
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                ends[shard] = item
                return
            if progress is not None:
                progress(done.value)
            yield from item


def _run(work: Work[T, E], key: Callable[[T], Any], shard: int, send: Connection, done: Any) -> None:
    gc.disable()  # a short-lived process that makes no reference cycles (see analysis.no_gc_pauses)
    batch: list[tuple[Any, int, T]] = []

    def put(item: T) -> None:
        batch.append((key(item), shard, item))
        if len(batch) >= BATCH:
            send.send(batch)
            batch.clear()

    def tick(nbytes: int) -> None:
        done.value = nbytes

    try:
        value = work(shard, put, tick)
        if batch:
            send.send(batch)
        send.send(_End(value))
    except BaseException as exc:
        error = exc if isinstance(exc, SipflowError) else SipflowError(f"worker {shard}: {exc!r}")
        send.send(_End(None, error))
    finally:
        send.close()
