"""Open a capture from a path or standard input, plain or gzip-compressed, pcap or pcapng.

The only place that opens capture files. Everything is streamed: a capture of any
size is read in fixed-size chunks.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import stat
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, cast

from analyzer.capture.pcap import MAGICS, read_pcap
from analyzer.capture.pcapng import read_pcapng
from analyzer.capture.stats import CaptureStats, RawFrame
from analyzer.errors import CaptureCutError, CaptureFormatError, CaptureOpenError

GZIP_MAGIC = b"\x1f\x8b"
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
# What gzip raises on a damaged or cut-short member: a bad header (BadGzipFile), a bad
# deflate stream (zlib.error, which is not an OSError), or the end of the input (EOFError).
GZIP_ERRORS = (EOFError, gzip.BadGzipFile, zlib.error, OSError)


def read_once(path: str | Path) -> bool:
    """Whether ``path`` can be read only once: standard input (``-``), or a pipe or device
    given by name (``<(zcat x.pcap.gz)`` is ``/dev/fd/63``). Such a capture is not opened
    ahead to check its header, nor read by several processes or twice."""
    if str(path) == "-":
        return True
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


@contextlib.contextmanager
def open_stream(path: str | Path) -> Iterator[BinaryIO]:
    """A binary stream for ``path`` (``-`` is standard input); errors become CaptureOpenError."""
    if str(path) == "-":
        if sys.stdin is None:  # started with <&-
            raise CaptureOpenError("-: standard input is closed: give a capture file")
        yield sys.stdin.buffer
        return
    p = Path(path)
    if p.is_dir():
        raise CaptureOpenError(f"{p}: is a directory, expected a pcap or pcapng file")
    try:
        f = p.open("rb")
    except OSError as exc:
        raise CaptureOpenError(f"{p}: {exc.strerror or exc}") from None
    with f:
        yield f


def read_frames(stream: BinaryIO, stats: CaptureStats) -> Iterator[RawFrame]:
    """Frames of a capture stream; detects gzip, pcap and pcapng by their magic numbers."""
    head = stream.read(4)
    if head[:2] != GZIP_MAGIC:
        return _by_magic(stream, head, stats)
    stream = _gunzip(stream, head)
    stats.format = "+gzip"
    try:
        # The capture's own header is read here, before any frame: damage this early
        # leaves nothing to keep, so it is a format error rather than a warning.
        return _by_magic(stream, stream.read(4), stats)
    except EOFError as exc:
        raise CaptureCutError(f"{stats.path}: compressed data is cut short ({exc})") from None
    except GZIP_ERRORS as exc:
        raise CaptureFormatError(f"{stats.path}: compressed data is damaged or cut short ({exc})") from None


def _by_magic(stream: BinaryIO, head: bytes, stats: CaptureStats) -> Iterator[RawFrame]:
    if head in MAGICS:
        stats.format = ("pcap-ns" if MAGICS[head][1] == 1 else "pcap") + stats.format
        return Guarded(read_pcap(stream, head, stats), stats)
    if head == PCAPNG_MAGIC:
        stats.format = "pcapng" + stats.format
        return Guarded(read_pcapng(stream, head, stats), stats)
    if not head:
        raise CaptureCutError(f"{stats.path}: not a pcap or pcapng capture (an empty file)")
    raise CaptureFormatError(f"{stats.path}: not a pcap or pcapng capture (first bytes {head.hex()})")


def _gunzip(stream: BinaryIO, head: bytes) -> BinaryIO:
    fileobj = cast(Any, _Prefixed(head, stream))
    return cast(BinaryIO, gzip.GzipFile(fileobj=fileobj, mode="rb"))


class Guarded:
    """Frames whose reading turns a damaged compressed stream into a warning: what was read
    before the damage is kept. ``source`` is the format reader underneath."""

    def __init__(self, source: Iterator[RawFrame], stats: CaptureStats) -> None:
        self.source = source
        self.stats = stats
        self._frames = self._guarded()

    def __iter__(self) -> Iterator[RawFrame]:
        return self._frames

    def __next__(self) -> RawFrame:
        return next(self._frames)

    def _guarded(self) -> Iterator[RawFrame]:
        try:
            yield from self.source
        except GZIP_ERRORS as exc:
            self.stats.stop(f"compressed data is damaged or cut short ({exc})")


class _Prefixed:
    """A read-only stream that first returns ``head``, then the rest of ``stream``."""

    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        self.head = head
        self.stream = stream

    def read(self, n: int = -1) -> bytes:
        if self.head:
            if n < 0:
                out, self.head = self.head + self.stream.read(), b""
                return out
            out, self.head = self.head[:n], self.head[n:]
            if len(out) < n:
                out += self.stream.read(n - len(out))
            return out
        return self.stream.read(n)
