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

from analyzer.capture.source import read_once
from analyzer.sip.parser import call_id_of

MIN_BYTES_PER_JOB = 8 << 20
"""Below this much capture per process, another process costs more than it saves."""
MIN_SIP_PER_JOB = 10_000
"""Nor below this many SIP messages per process: each process reads every frame, so what
another saves is its share of the calls, against about 0.15 s to start it and merge its
results (RTP-heavy benchmark, 6,000 SIP messages in 242,000 frames: 0.82 s with one
process, 0.91 s with two; four times as long: 3.17 s and 2.82 s)."""
SAMPLE_BYTES = 4 << 20
"""How much of the first capture is looked at to tell how dense its SIP is."""


def jobs_for(paths: Sequence[str], jobs: int) -> int:
    """How many processes to use: at most ``jobs``, one per :data:`MIN_BYTES_PER_JOB` of input
    and per :data:`MIN_SIP_PER_JOB` SIP messages in it, as far as its start tells (standard
    input is read by one process only: it cannot be read twice)."""
    if jobs <= 1 or any(read_once(p) for p in paths):
        return 1
    size = sum(os.path.getsize(p) for p in paths if os.path.isfile(p))
    by_size = max(1, min(jobs, size // MIN_BYTES_PER_JOB))
    if by_size == 1:
        return 1
    sip = sip_messages_guess(paths[0], size)
    if sip is None or sip >= MIN_SIP_PER_JOB * by_size:
        return by_size
    return max(1, sip // MIN_SIP_PER_JOB)


def sip_messages_guess(path: str, size: int) -> int | None:
    """About how many SIP messages ``size`` bytes of captures like the one at ``path`` hold,
    from how often ``SIP/2.0`` comes in its first :data:`SAMPLE_BYTES` (twice a message: the
    start line and a Via). None for a compressed file (its bytes tell nothing) or one that
    cannot be read: then the size alone decides."""
    try:
        with open(path, "rb") as f:
            sample = f.read(SAMPLE_BYTES)
    except OSError:
        return None
    if not sample or sample[:2] == b"\x1f\x8b":
        return None
    return sample.count(b"SIP/2.0") * size // (2 * len(sample))


# What a SIP message costs each process, in µs of CPU: the first process parses every
# message (the security watch reads them all) and watches it; the others read every message
# only as far as its Call-ID. Each process correlates and diagnoses its own share. Measured
# on the all-SIP benchmark (120,000 messages) with two processes and the first one's share
# forced: with none of the calls it took 4.66 s, with all 9.84 s; the second took 1.36 s
# with none and 9.05 s with all. So parsing and watching cost the first 27.5 µs a message
# more than reading Call-IDs costs the second, and a call's message costs 43 µs once
# parsed, 64 µs with the parsing.
_PARSE_US = 21.0
_WATCH_US = 9.5
_CALL_ID_US = 3.0
_CALL_US = 43.0
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
