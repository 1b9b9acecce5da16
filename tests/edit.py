"""Changes made to real captures for tests: what a damaged or unusual file would hold."""

from __future__ import annotations

import struct


def with_interface_options(data: bytes, options: dict[int, bytes]) -> bytes:
    """A little-endian pcapng whose first Interface Description Block (which has no options)
    gets these options (code: value), e.g. ``{9: b"\\xc0"}`` for if_tsresol 2^-64."""
    at = struct.unpack_from("<I", data, 4)[0]  # after the Section Header Block
    btype, blen = struct.unpack_from("<II", data, at)
    assert (btype, blen) == (1, 20), "an Interface Description Block without options"
    body = b"".join(struct.pack("<HH", code, len(v)) + v + bytes(-len(v) % 4) for code, v in options.items())
    body += b"\0\0\0\0"  # opt_endofopt
    size = 20 + len(body)
    idb = struct.pack("<II", 1, size) + data[at + 8 : at + 16] + body + struct.pack("<I", size)
    return data[:at] + idb + data[at + blen :]
