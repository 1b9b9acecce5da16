"""What the input threads hand the main loop: one queue, three kinds of event.

The decoder, the call store and every report run on the main thread only; the input
threads (tcpdump's pipe, the HEP sockets) just read and queue. The queue is bounded:
tcpdump's reader waits when it is full (the kernel buffers, then counts its drops), the
HEP listener drops and counts.
"""

from __future__ import annotations

import queue
import threading
from typing import NamedTuple


class Frame(NamedTuple):
    """A frame from tcpdump's pcap stream."""

    ts_ns: int
    linktype: int
    data: bytes


class HepIn(NamedTuple):
    """A HEP packet received at ``ts_ns`` (wall clock) from ``source`` (ip)."""

    ts_ns: int
    data: bytes
    source: str


class Done(NamedTuple):
    """An input has ended; ``error`` says why when it was not asked to."""

    source: str
    error: str


Event = Frame | HepIn | Done

QUEUE_SIZE = 65_536


def put_blocking(q: queue.Queue[Event], item: Event, abandon: threading.Event) -> bool:
    """Wait for room (a reader must not lose frames it already took), unless the consumer
    has gone (``abandon``): then drop it and return False."""
    while not abandon.is_set():
        try:
            q.put(item, timeout=0.25)
            return True
        except queue.Full:
            continue
    return False
