"""Read the SIP messages of a capture file: the capture source wired to the decoder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from analyzer.capture.source import open_stream, read_frames
from analyzer.capture.stats import CaptureStats
from analyzer.decode.pipeline import Decoder
from analyzer.sip.message import SipMessage


class MessageReader:
    """Iterate over the SIP messages of one capture, in the order they were completed.

    ``capture`` (file facts, truncation warning) and ``decoder.stats`` (frames by
    reason, malformed messages) fill in while iterating and are final afterwards.
    Raises :class:`analyzer.errors.CaptureError` when the file is not a capture.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self.capture = CaptureStats(self.path)
        self.decoder = Decoder()

    def __iter__(self) -> Iterator[SipMessage]:
        feed = self.decoder.feed
        with open_stream(self.path) as stream:
            for number, (ts_ns, linktype, data, _orig) in enumerate(read_frames(stream, self.capture), 1):
                out = feed(number, ts_ns, linktype, data)
                if out:
                    yield from out
        yield from self.decoder.finish()


def read_messages(path: str | Path) -> Iterator[SipMessage]:
    """Every SIP message in the capture at ``path`` (``-`` for standard input)."""
    return iter(MessageReader(path))
