"""How ``--jobs`` shares the work out: how many processes, and which takes which Call-ID.

``messages`` shares out frames (:mod:`analyzer.decode.fastpcap`); ``analyze`` shares out
Call-IDs: one process reads and parses the captures and hands each message to the process
whose share its Call-ID is (:mod:`analyzer.relay`).
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable, Sequence

from analyzer.capture.source import read_once

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


def shard_of(call_id: str, shards: int) -> int:
    """Which of ``shards`` processes takes a Call-ID, from 0 (stable across runs and
    machines, unlike ``hash``)."""
    return zlib.crc32(call_id.encode("utf-8", "surrogatepass")) % shards if shards > 1 else 0


def owners(shards: int) -> Callable[[str], int]:
    """:func:`shard_of` for ``shards`` processes, remembered for the last 65,536 Call-IDs (a
    call's messages ask again and again)."""
    cache: dict[str, int] = {}

    def owner(call_id: str) -> int:
        hit = cache.get(call_id)
        if hit is None:
            if len(cache) > 65536:
                cache.clear()
            hit = cache[call_id] = shard_of(call_id, shards)
        return hit

    return owner
