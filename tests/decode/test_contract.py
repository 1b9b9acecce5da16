"""Contracts over any input: the decoder and the capture readers never raise on bad bytes."""

from __future__ import annotations

import contextlib
import io
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.capture.source import read_frames
from analyzer.capture.stats import CaptureStats
from analyzer.decode.link import LINK_DECODERS
from analyzer.decode.pipeline import Decoder
from analyzer.errors import CaptureFormatError

ETH_IP_UDP = bytes(12) + b"\x08\x00" + b"\x45\x00\x00\x40" + bytes(5) + b"\x11" + bytes(10) + b"\x13\xc4\x13\xc4"
ETH_IP_TCP = bytes(12) + b"\x08\x00" + b"\x45\x00\x00\x40" + bytes(5) + b"\x06" + bytes(10) + b"\x13\xc4\x13\xc4"

frames = st.lists(
    st.tuples(
        st.sampled_from([*sorted(LINK_DECODERS), 9999]),
        st.one_of(
            st.binary(max_size=300),
            st.builds(lambda b: ETH_IP_UDP + b, st.binary(max_size=200)),
            st.builds(lambda b: ETH_IP_TCP + b, st.binary(max_size=200)),
            st.builds(lambda b: ETH_IP_UDP + bytes(4) + b"SIP/2.0 200 OK\r\n" + b, st.binary(max_size=100)),
        ),
    ),
    max_size=30,
)


@settings(max_examples=400, deadline=None)
@given(frames)
def test_decoder_takes_any_frames(items: list[tuple[int, bytes]]) -> None:
    d = Decoder()
    out = []
    for n, (linktype, data) in enumerate(items, 1):
        out += d.feed(n, n * 1000, linktype, data)
    out += d.finish()
    st_ = d.stats
    assert st_.frames == len(items)
    assert sum(st_.frames_by_reason.values()) == len(items)
    assert all(m.frame <= len(items) for m in out)


PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_pcap_reader_takes_any_records(body: bytes) -> None:
    stats = CaptureStats("x")
    n = sum(1 for _ in read_frames(io.BytesIO(PCAP_HEADER + body), stats))
    assert n >= 0


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_pcapng_reader_raises_only_its_error(body: bytes) -> None:
    shb = b"\x0a\x0d\x0d\x0a" + struct.pack("<IIHHq", 28, 0x1A2B3C4D, 1, 0, -1) + struct.pack("<I", 28)
    with contextlib.suppress(CaptureFormatError):
        sum(1 for _ in read_frames(io.BytesIO(shb + body), CaptureStats("x")))
