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
"""Nor below this many SIP messages per process, for ``messages``: each process walks the
whole file, so what another saves is its share of the SIP datagrams, against about 0.15 s
to start it and merge its rows (RTP-heavy benchmark, 6,000 SIP messages in 242,000 frames:
no faster with two)."""
MIN_SIP_PER_CALLS_JOB = 2_000
"""For ``analyze``: only the process that reads the capture reads it, so another process for
the calls saves its share of their correlation and diagnosis, against about 0.1 s to start
them all and merge their results (RTP-heavy: 0.83–0.98 s with one process, 0.64–0.73 s with
two for the calls, three runs each in turn)."""
SAMPLE_BYTES = 4 << 20
"""How much of the first capture is looked at to tell how dense its SIP is."""


def jobs_for(paths: Sequence[str], jobs: int, sip_per_job: int | None = None, *, read_alone: bool = False) -> int:
    """How many processes to use: at most ``jobs``, one per :data:`MIN_BYTES_PER_JOB` of input
    and per ``sip_per_job`` SIP messages in it (:data:`MIN_SIP_PER_JOB` when None), as far as
    its start tells. Standard input (or a pipe) can be read only once, and its size is not
    known: one process, or ``jobs`` when one process reads for all (``read_alone``)."""
    if jobs <= 1:
        return 1
    if any(read_once(p) for p in paths):
        return jobs if read_alone else 1
    size = sum(os.path.getsize(p) for p in paths if os.path.isfile(p))
    by_size = max(1, min(jobs, size // MIN_BYTES_PER_JOB))
    if by_size == 1:
        return 1
    sip = sip_messages_guess(paths[0], size)
    per_job = MIN_SIP_PER_JOB if sip_per_job is None else sip_per_job
    if sip is None or sip >= per_job * by_size:
        return by_size
    return max(1, sip // per_job)


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
