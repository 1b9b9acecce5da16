"""The whole sipflow exception tree, turned into messages and exit codes once, in the CLI.

    SipflowError                      base; ``exit_code`` is what the CLI returns
    ├── CaptureError                  the input cannot be read as a capture (exit 2)
    │   ├── CaptureFormatError        not pcap/pcapng (bad magic, bad section header)
    │   └── CaptureOpenError          missing file, permission denied, directory, …
    ├── DecodeError                   a frame/segment/chunk that cannot be decoded at one layer
    │                                 (``reason`` token; counted by the decoder, never fatal)
    ├── SipParseError                 bytes that look like SIP but are not a SIP message
    │                                 (raised by ``analyzer.sip.parser`` only; counted, never fatal)
    └── UsageError                    a bad option value reaching the library (exit 2)

A truncated capture is *not* an error: the reader stops at the cut, keeps everything
before it and reports one warning (see ``analyzer.capture.source.CaptureStats``).
"""

from __future__ import annotations


class SipflowError(Exception):
    """Base of every error sipflow raises on purpose."""

    exit_code = 1


class CaptureError(SipflowError):
    """The input could not be read as a packet capture."""

    exit_code = 2


class CaptureFormatError(CaptureError):
    """The file is not a pcap or pcapng capture (or its header is broken)."""


class CaptureCutError(CaptureFormatError):
    """The file ends before its capture header does: an empty file (the newest of a rotation,
    still being written), a header cut short. It holds no frame."""


class CaptureOpenError(CaptureError):
    """The file could not be opened at all."""


class DecodeError(SipflowError, ValueError):
    """A frame, packet or chunk that cannot be decoded at one protocol layer.

    ``reason`` is a short, stable token used for counting (e.g. ``hep-truncated``).
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class SipParseError(SipflowError, ValueError):
    """Bytes that start like SIP but cannot be read as a SIP message.

    ``reason`` is a short, stable token used for counting (e.g. ``bad-start-line``).
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class UsageError(SipflowError):
    """A bad argument given to the library or the CLI."""

    exit_code = 2
