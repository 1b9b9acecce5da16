"""``--write-pcap DIR``: the captured frames kept in rotating pcap files.

Files are ``sipflow-<UTC start>-<n>.pcap``, nanosecond pcap (magic a1b23c4d, written in
native order as libpcap does; see pcap-savefile(5)). A file is closed when the next frame
would take it past ``max_bytes`` (or the link type changes); beyond ``max_files`` the
oldest files this run wrote are deleted. Files from other runs are never touched. Each
file is complete on its own: a reader never needs the previous one. With ``--redact`` the
frames pass through :class:`RedactingPcap` first.
"""

from __future__ import annotations

import struct
import time
from collections import deque
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from analyzer.errors import UsageError
from analyzer.sip.message import SipMessage
from analyzer.sip.redact import Redaction, changed_runs, mask_copies, mask_frames

_HEADER = struct.Struct("=IHHiIII")
_RECORD = struct.Struct("=IIII")
_MAGIC_NS = 0xA1B23C4D
SNAPLEN = 262_144


class RotatingPcap:
    def __init__(self, directory: Path, max_bytes: int, max_files: int) -> None:
        if max_bytes < _HEADER.size + _RECORD.size or max_files < 1:
            raise UsageError("--write-pcap needs a size of at least 1 KiB and at least 1 file")
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"{directory}: cannot create: {exc.strerror or exc}") from None
        self.directory = directory
        self.max_bytes = max_bytes
        self.max_files = max_files
        self.files: deque[Path] = deque()
        self.frames = 0
        self._f: BinaryIO | None = None
        self._size = 0
        self._linktype = -1
        self._serial = 0

    def write(self, ts_ns: int, linktype: int, data: bytes) -> None:
        need = _RECORD.size + len(data)
        if self._f is None or linktype != self._linktype or self._size + need > self.max_bytes:
            self._rotate(linktype, ts_ns)
        assert self._f is not None
        sec, nsec = divmod(ts_ns, 1_000_000_000)
        self._f.write(_RECORD.pack(sec, nsec, len(data), len(data)))
        self._f.write(data)
        self._size += need
        self.frames += 1

    def _rotate(self, linktype: int, ts_ns: int) -> None:
        self.close()
        self._serial += 1
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(ts_ns // 1_000_000_000))
        path = self.directory / f"sipflow-{stamp}-{self._serial:04d}.pcap"
        try:
            f = path.open("xb")
        except OSError as exc:
            raise UsageError(f"{path}: cannot create: {exc.strerror or exc}") from None
        f.write(_HEADER.pack(_MAGIC_NS, 2, 4, 0, 0, SNAPLEN, linktype))
        self._f, self._size, self._linktype = f, _HEADER.size, linktype
        self.files.append(path)
        while len(self.files) > self.max_files:
            self.files.popleft().unlink(missing_ok=True)

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


HOLD_FRAMES = 4096
HOLD_BYTES = 64 * 1024 * 1024


class RedactingPcap:
    """``--write-pcap`` with ``--redact``: frames wait in a bounded queue until the messages
    they carry are read, are masked in place (:func:`analyzer.sip.redact.mask_frames`, same
    length), then go to ``pcap``.

    A message's first segments are written before it is read only when it spans more than
    :data:`HOLD_FRAMES` frames or :data:`HOLD_BYTES`; every frame no message claimed (an
    ICMP error quoting one, an unparsable message, such a long message's early segments)
    has its header-like lines masked (:meth:`Redaction.loose`) and loses every copy of a
    recently masked value. A frame whose message cannot be masked in place is not written.
    """

    def __init__(self, pcap: RotatingPcap, redaction: Redaction) -> None:
        self.pcap = pcap
        self.redaction = redaction
        self.held: dict[int, tuple[int, int, bytes]] = {}
        self.claimed: set[int] = set()
        self.dropped = 0
        self._bytes = 0
        self._secrets: deque[bytes] = deque(maxlen=256)

    @property
    def files(self) -> deque[Path]:
        return self.pcap.files

    @property
    def frames(self) -> int:
        return self.pcap.frames

    def write(self, number: int, ts_ns: int, linktype: int, data: bytes) -> None:
        """Hold frame ``number``; the oldest held frames go out past the limits."""
        self.held[number] = (ts_ns, linktype, data)
        self._bytes += len(data)
        while self.held and (len(self.held) > HOLD_FRAMES or self._bytes > HOLD_BYTES):
            self._release(next(iter(self.held)))

    def messages(self, msgs: Iterable[SipMessage]) -> None:
        """Messages just read: mask them in the held frames that carried them."""
        for msg in msgs:
            numbers = [n for n in msg.origin.frames if n in self.held]
            if not numbers:
                continue  # a HEP message, or frames already gone
            self.claimed.update(numbers)
            masked = self.redaction.raw(msg.raw)
            if masked == msg.raw:
                continue
            self._secrets.extend(changed_runs(msg.raw, masked))
            result = mask_frames(msg.raw, masked, [self.held[n][2] for n in numbers])
            if result is None:
                for n in numbers:
                    self._bytes -= len(self.held.pop(n)[2])
                    self.claimed.discard(n)
                    self.dropped += 1
                continue
            for n, data in zip(numbers, result, strict=True):
                ts, lt, _ = self.held[n]
                self.held[n] = (ts, lt, data)

    def _release(self, number: int) -> None:
        ts, lt, data = self.held.pop(number)
        self._bytes -= len(data)
        if number in self.claimed:
            self.claimed.discard(number)
        else:
            data = mask_copies(self.redaction.loose(data), self._secrets)
        self.pcap.write(ts, lt, data)

    def close(self) -> None:
        while self.held:
            self._release(next(iter(self.held)))
        self.pcap.close()
