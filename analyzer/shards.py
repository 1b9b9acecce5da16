"""How ``--jobs`` shares the work out: how many processes, and which takes which Call-ID.

Every process reads the whole capture; each correlates, diagnoses (``analyze``) or lists
(``messages``) the calls of its share. The first process also parses every message (for
the security watch and the capture's decode stats), so it takes a smaller share.
"""

from __future__ import annotations

import functools
import os
import zlib
from collections.abc import Callable, Sequence

from analyzer.sip.parser import call_id_of

MIN_BYTES_PER_JOB = 8 << 20
"""Below this much capture per process, another process costs more than it saves."""


def jobs_for(paths: Sequence[str], jobs: int) -> int:
    """How many processes to use: at most ``jobs``, one per :data:`MIN_BYTES_PER_JOB` of input
    (standard input is read by one process only: it cannot be read twice)."""
    if jobs <= 1 or "-" in paths:
        return 1
    size = sum(os.path.getsize(p) for p in paths if os.path.isfile(p))
    return max(1, min(jobs, size // MIN_BYTES_PER_JOB))


# What a SIP message costs each process, in µs of CPU (all-SIP benchmark, one core): the
# first process parses every message (the security watch reads them all) and watches it;
# the others read every message only as far as its Call-ID. Each process correlates and
# diagnoses its own share.
_PARSE_US = 20.0
_WATCH_US = 5.0
_CALL_ID_US = 4.0
_CALL_US = 58.0
SLOTS = 1024
"""Call-IDs are spread over this many slots (by CRC-32), and the slots over the processes."""


def first_share(shards: int) -> float:
    """The share of the Call-IDs the first of ``shards`` processes takes, so that all end
    together: less than the others', since it also parses and watches every message."""
    if shards <= 1:
        return 1.0
    other = (_PARSE_US + _CALL_US) / (shards - 1)  # a process's cost per message for all the rest's calls
    share = (_CALL_ID_US + other - _PARSE_US - _WATCH_US) / (_CALL_US + other)
    return min(1.0 / shards, max(0.0, share))


@functools.cache
def _slot_owners(shards: int) -> tuple[int, ...]:
    first = round(SLOTS * first_share(shards))
    return (0,) * first + tuple(1 + i % (shards - 1) for i in range(SLOTS - first))


def shard_of(call_id: str, shards: int) -> int:
    """Which process analyses a Call-ID (stable across runs and machines, unlike ``hash``)."""
    crc = zlib.crc32(call_id.encode("utf-8", "surrogatepass"))
    return 0 if shards <= 1 else _slot_owners(shards)[crc % SLOTS]


def takes(shard: int, shards: int) -> Callable[[str], bool]:
    """Whether process ``shard`` of ``shards`` takes a Call-ID (:func:`shard_of`, remembered
    for the last 65,536 Call-IDs: a call's messages ask again and again)."""
    cache: dict[str, bool] = {}

    def mine(call_id: str) -> bool:
        hit = cache.get(call_id)
        if hit is None:
            if len(cache) > 65536:
                cache.clear()
            hit = cache[call_id] = shard_of(call_id, shards) == shard
        return hit

    return mine


def owner(mine: Callable[[str], bool]) -> Callable[[bytes], bool]:
    """Whether a process parses a framed message: its Call-ID is one it takes (``mine``, from
    :func:`takes`), or it has no start line (then parsing says what it is)."""

    def owns(data: bytes) -> bool:
        call_id = call_id_of(data)
        return call_id is None or mine(call_id)

    return owns
