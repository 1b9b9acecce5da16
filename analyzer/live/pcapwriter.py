"""``--write-pcap DIR``: the captured frames kept in rotating pcap files.

Files are ``sipflow-<UTC start>-<n>.pcap``, nanosecond pcap (magic a1b23c4d, written in
native order as libpcap does; see pcap-savefile(5)). A file is closed when the next frame
would take it past ``max_bytes`` (or the link type changes); beyond ``max_files`` the
oldest files this run wrote are deleted. Files from other runs are never touched. Each
file is complete on its own: a reader never needs the previous one.
"""

from __future__ import annotations

import struct
import time
from collections import deque
from pathlib import Path
from typing import BinaryIO

from analyzer.errors import UsageError

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
