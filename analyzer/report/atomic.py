"""Output files written whole or not at all, and never over a capture being read.

A regular file is written through a temporary file in its directory, then renamed over it:
a failed or interrupted run leaves the old file (or none), never half a new one. A named
pipe or a device (``-o /dev/stdout``, a FIFO another program reads) cannot be replaced: it
is written into as it is. A symbolic link is followed: the file it names is replaced, the
link stays.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

from analyzer.errors import UsageError

NEW_FILE_MODE = 0o666
"""A new file's permissions before the umask, as a plain ``open()`` gives them."""


def atomic_write(path: Path, write: Callable[[Any], object], *, binary: bool = False) -> None:
    """Write ``path`` with ``write(file)`` (a text file, or binary with ``binary``); a replaced
    file keeps its permissions. Raises OSError as ``open`` would (a missing directory, no
    permission, a full disk)."""
    target = Path(os.path.realpath(path))
    try:
        mode = target.stat().st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None and not stat.S_ISREG(mode):
        special: IO[Any] = open(target, "wb") if binary else open(target, "w", encoding="utf-8", newline="")  # noqa: SIM115
        with special:
            write(special)
        return
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        if mode is None:
            umask = os.umask(0)
            os.umask(umask)
            os.fchmod(fd, NEW_FILE_MODE & ~umask)  # mkstemp makes 0600
        else:
            os.fchmod(fd, stat.S_IMODE(mode))
        f: IO[Any] = os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8", newline="")
        with f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether two paths name one file (through links too); False when either does not exist."""
    if Path(a).resolve() == Path(b).resolve():
        return True
    with contextlib.suppress(OSError):
        return os.path.samefile(a, b)
    return False


def refuse_inputs(out: str | Path, inputs: Iterable[str | Path]) -> None:
    """A one-line error when ``out`` is one of the ``inputs`` (``-`` is standard input):
    writing it would destroy the capture being read."""
    if any(str(p) != "-" and same_file(p, out) for p in inputs):
        raise UsageError(f"{out}: refusing to overwrite an input capture; choose another output file")
