"""What the capture readers tell about a file besides its frames."""

from __future__ import annotations

from dataclasses import dataclass, field

RawFrame = tuple[int, int, bytes, int]
"""(timestamp in ns since the epoch, link type, captured bytes, original length)."""

NO_RECORD = 1 << 80
"""A time later than any frame's (in ns, or in any interface's units): the first time of a
capture that has no frame."""


@dataclass(slots=True)
class CaptureStats:
    """Filled in by a reader while it streams a capture."""

    path: str
    format: str = ""
    """``pcap``, ``pcap-ns``, ``pcapng`` (``+gzip`` when compressed)."""
    linktypes: set[int] = field(default_factory=set)
    warning: str = ""
    """Why reading stopped before the end of the file (truncated or corrupt), else empty."""
    skipped_blocks: int = 0
    """pcapng blocks of unknown or unused types that were skipped."""
    cut_frames: int = 0
    """Frames captured shorter than they were on the wire (the capture's snap length):
    what they carried is incomplete."""

    def stop(self, why: str) -> None:
        self.warning = why
