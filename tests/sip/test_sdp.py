"""The SDP summary parser, on bodies written by real SIP software and on broken ones."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.sip.sdp import Media, Sdp, codec_names, parse_sdp

PCAPS = Path("/work/shared/pcaps")


def sdp_body(capture: str, frame: int, *, by_length: bool = True) -> bytes:
    """The SDP body of the SIP message in ``frame`` (numbered from 1, as Wireshark does).

    A test helper only: the message must sit whole in that one frame, and its body must be
    as long as its Content-Length says (``by_length=False``: the rest of the frame, for
    fuzzed messages whose Content-Length header is garbled).
    """
    from scapy.all import Raw
    from scapy.utils import PcapReader

    path = PCAPS / capture
    if not path.exists():
        pytest.skip(f"capture not available: {path}")
    with PcapReader(str(path)) as reader:
        for number, packet in enumerate(reader, 1):
            if number == frame:
                payload = bytes(packet[Raw].load)
                break
        else:
            raise AssertionError(f"{capture} has no frame {frame}")
    head, _, body = payload.partition(b"\r\n\r\n")
    if not by_length:
        return body
    length = re.search(rb"\r\n(?:Content-Length|l)[ \t]*:[ \t]*(\d+)", head, re.IGNORECASE)
    assert length is not None, "no Content-Length"
    assert len(body) >= int(length.group(1)), "body cut short: message spans several frames"
    return body[: int(length.group(1))]


# -- real captures ---------------------------------------------------------------------------


def test_g729_offer_and_answer() -> None:
    # FreeSWITCH answering a G.729-only offer; wireshark-samplecaptures/sip-rtp-g729a.pcap.
    offer = parse_sdp(sdp_body("wireshark-samplecaptures/sip-rtp-g729a.pcap", 1))
    answer = parse_sdp(sdp_body("wireshark-samplecaptures/sip-rtp-g729a.pcap", 4))
    assert offer == Sdp(
        origin_address="10.0.2.20",
        connection="10.0.2.20",
        media=(
            Media(
                kind="audio",
                port=6000,
                proto="RTP/AVP",
                formats=("18",),
                codecs=("G729/8000",),
                connection="10.0.2.20",
                direction="recvonly",
                rtcp_mux=False,
                crypto=False,
            ),
        ),
        direction="sendrecv",
        defects=(),
    )
    assert answer.media == (
        Media(
            kind="audio",
            port=28120,
            proto="RTP/AVP",
            formats=("18", "101"),
            codecs=("G729/8000", "telephone-event/8000"),
            connection="10.0.2.15",
            direction="sendonly",
            rtcp_mux=False,
            crypto=False,
        ),
    )
    assert answer.origin_address == "10.0.2.15"
    assert (codec_names(offer), codec_names(answer)) == (["G729"], ["G729"])
    assert codec_names(answer, include_aux=True) == ["G729", "telephone-event"]


def test_rejected_stream_with_null_address() -> None:
    # Linphone re-offering with port 0 and c=0.0.0.0, answered by 488;
    # goffinet-sip_captures/sip-488-Not-Acceptable-Here-codec-null.pcapng.
    sdp = parse_sdp(sdp_body("goffinet-sip_captures/sip-488-Not-Acceptable-Here-codec-null.pcapng", 7))
    assert sdp == Sdp(
        origin_address="192.168.8.183",
        connection="0.0.0.0",
        media=(
            Media(
                kind="audio",
                port=0,
                proto="RTP/AVP",
                formats=("0",),
                codecs=("PCMU/8000",),
                connection="0.0.0.0",
                direction="inactive",
                rtcp_mux=False,
                crypto=False,
            ),
        ),
        direction="sendrecv",
        defects=(),
    )
    assert sdp.media[0].rejected
    assert codec_names(sdp) == []


def test_pjmedia_answer_with_many_codecs() -> None:
    sdp = parse_sdp(sdp_body("goffinet-sip_captures/sip-488-Not-Acceptable-Here-codec-null.pcapng", 4))
    (audio,) = sdp.media
    assert audio.formats == ("98", "97", "99", "104", "3", "0", "8", "9", "96")
    assert audio.codecs == (
        "speex/16000",
        "speex/8000",
        "speex/32000",
        "iLBC/8000",
        "GSM/8000",
        "PCMU/8000",
        "PCMA/8000",
        "G722/8000",
        "telephone-event/8000",
    )
    assert codec_names(sdp) == ["speex", "iLBC", "GSM", "PCMU", "PCMA", "G722"]
    assert (audio.direction, sdp.defects) == ("sendrecv", ())


def test_audio_and_t38_fax() -> None:
    # A gateway offering audio plus T.38; goffinet-sip_captures/SIP-SDP-Example.pcap.
    sdp = parse_sdp(sdp_body("goffinet-sip_captures/SIP-SDP-Example.pcap", 1))
    audio, image = sdp.media
    assert audio.codecs == ("PCMA/8000", "G729/8000", "G723/8000", "telephone-event/8000")
    assert image == Media(
        kind="image",
        port=6022,
        proto="udptl",
        formats=("t38",),
        codecs=("t38",),
        connection="10.33.6.101",
        direction="sendrecv",
        rtcp_mux=False,
        crypto=False,
    )
    assert codec_names(sdp) == ["PCMA", "G729", "G723"]
    assert sdp.defects == ()


def test_webrtc_offer() -> None:
    # SIP.js over WebSocket: DTLS-SRTP, rtcp-mux, no session-level c=;
    # heplify/sip_tcp_websocket.pcap.
    sdp = parse_sdp(sdp_body("heplify/sip_tcp_websocket.pcap", 20))
    assert (sdp.origin_address, sdp.connection, sdp.defects) == ("10.243.17.55", "", ())
    (audio,) = sdp.media
    assert (audio.port, audio.proto, audio.connection) == (55695, "UDP/TLS/RTP/SAVPF", "10.243.17.55")
    assert (audio.rtcp_mux, audio.crypto, audio.direction) == (True, True, "sendrecv")
    assert audio.codecs[:6] == (
        "opus/48000/2",
        "ISAC/16000",
        "ISAC/32000",
        "G722/8000",
        "PCMU/8000",
        "PCMA/8000",
    )
    assert codec_names(sdp) == ["opus", "ISAC", "G722", "PCMU", "PCMA"]


def test_asterisk_answer_with_rtcp_mux() -> None:
    sdp = parse_sdp(sdp_body("eim-lab09/sip.pcap", 17))
    (audio,) = sdp.media
    assert (audio.rtcp_mux, audio.crypto) == (True, False)
    assert audio.codecs == ("PCMU/8000", "PCMA/8000", "telephone-event/8000")
    assert sdp.origin_address == "199.7.173.72"


def test_ipv6_and_channel_count_of_one() -> None:
    sdp = parse_sdp(sdp_body("heplify/sip_ipv6_udp.pcap", 1))
    assert sdp.connection == "fe80:0:0:0:21a:a0ff:fe07:32e0"
    # "a=rtpmap:0 pcmu/8000/1": the default channel count is dropped, case kept.
    assert sdp.media[0].codecs == ("pcmu/8000",)
    assert sdp.defects == ()


def test_rejected_video_without_formats() -> None:
    # pjmedia declines Linphone's video with "m=video 0 RTP/AVP" and no format at all;
    # goffinet-sip_captures/sip-phone-to-phone.pcapng.
    offer = parse_sdp(sdp_body("goffinet-sip_captures/sip-phone-to-phone.pcapng", 1))
    answer = parse_sdp(sdp_body("goffinet-sip_captures/sip-phone-to-phone.pcapng", 4))
    assert [m.kind for m in offer.media] == ["audio", "video"]
    assert offer.media[1].codecs == ("VP8/90000", "H264/90000")
    assert codec_names(offer) == ["opus", "SILK", "speex", "PCMU", "PCMA"]
    assert answer.media[1] == Media(
        kind="video",
        port=0,
        proto="RTP/AVP",
        formats=(),
        codecs=(),
        connection="192.168.1.8",
        direction="sendrecv",
        rtcp_mux=False,
        crypto=False,
    )
    assert answer.defects == ("media-without-format",)
    assert codec_names(answer) == ["PCMU"]


def test_fuzzed_bodies_from_ndpi() -> None:
    # ndpi/fuzz-2006-06-26-2594.pcap: aaa.pcap with random bytes flipped.
    cr = parse_sdp(sdp_body("ndpi/fuzz-2006-06-26-2594.pcap", 225, by_length=False))
    # "...g726-32/8000\rsa=rtpmap:3 GSM/8000": a bare CR splits the line in two.
    assert cr.defects == ("not-crlf", "bad-line")
    assert cr.media[0].codecs == ("pcmu/8000", "pcma/8000", "iLBC/8000", "g726-32/8000", "GSM/8000")
    garbled = parse_sdp(sdp_body("ndpi/fuzz-2006-06-26-2594.pcap", 325, by_length=False))
    assert garbled.defects == ("non-utf8", "bad-connection-address", "bad-rtpmap", "bad-port", "no-rtpmap")
    assert garbled.media[0].port == -1
    assert garbled.media[0].codecs == ("PCMU/8000", "pcma/8000", "PT97", "G726-d2/8000", "GSM/8000")


# -- hand-made bodies: one rule each ---------------------------------------------------------

BASIC = (
    b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
    b"m=audio 49170 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n"
)


def test_lf_only_line_ends() -> None:
    sdp = parse_sdp(BASIC.replace(b"\r\n", b"\n"))
    assert sdp.defects == ("not-crlf",)
    assert sdp.media[0].codecs == ("PCMU/8000", "PCMA/8000", "telephone-event/8000")
    assert parse_sdp(BASIC).defects == ()


def test_non_utf8_bytes() -> None:
    sdp = parse_sdp(BASIC.replace(b"s=-", b"s=caf\xe9"))
    assert sdp.defects == ("non-utf8",)
    assert sdp.media[0].port == 49170


def test_session_direction_is_inherited() -> None:
    body = BASIC + b"m=video 49172 RTP/AVP 31\r\na=sendrecv\r\n"
    sdp = parse_sdp(body.replace(b"t=0 0\r\n", b"t=0 0\r\na=sendonly\r\n"))
    assert sdp.direction == "sendonly"
    assert [m.direction for m in sdp.media] == ["sendonly", "sendrecv"]
    assert sdp.media[1].codecs == ("H261/90000",)


def test_media_connection_overrides_session() -> None:
    body = BASIC + b"c=IN IP4 198.51.100.7/127\r\n"
    assert parse_sdp(body).media[0].connection == "198.51.100.7"
    assert parse_sdp(body).connection == "192.0.2.1"


def test_session_fingerprint_applies_to_every_stream() -> None:
    body = BASIC.replace(b"t=0 0\r\n", b"t=0 0\r\na=fingerprint:sha-256 AB:CD\r\n")
    assert parse_sdp(body).media[0].crypto is True
    sdes = BASIC + b"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:abc\r\n"
    assert parse_sdp(sdes).media[0].crypto is True


@pytest.mark.parametrize(
    ("body", "defects"),
    [
        (b"", ("empty",)),
        (b"\r\n \r\n", ("empty",)),
        (BASIC.replace(b"v=0", b"v=1"), ("bad-version",)),
        (BASIC.replace(b"v=0\r\n", b""), ("no-version",)),
        (BASIC.replace(b"o=- 1 1 IN IP4 192.0.2.1\r\n", b""), ("no-origin",)),
        (BASIC.replace(b"o=- 1 1 IN IP4", b"o=- 1 IN IP4"), ("bad-origin",)),
        (BASIC.replace(b"c=IN IP4 192.0.2.1\r\n", b""), ("no-connection",)),
        (BASIC.replace(b"c=IN IP4 192.0.2.1", b"c=IN IP4"), ("bad-connection", "no-connection")),
        (BASIC.replace(b"c=IN IP4 192.0.2.1", b"c=IN IP6 192.0.2.1"), ("bad-connection-address",)),
        (BASIC.replace(b"49170", b"70000"), ("bad-port",)),
        (BASIC.replace(b"49170", "١".encode()), ("bad-port",)),
        (BASIC.replace(b"49170", "²".encode()), ("bad-port",)),
        (BASIC.replace(b"telephone-event/8000", b"telephone-event"), ("bad-rtpmap", "no-rtpmap")),
        (BASIC + b"a=sendonly\r\na=inactive\r\n", ("multiple-directions",)),
        (BASIC + b"x=unknown\r\n", ("unknown-line-type",)),
        (BASIC + b"a = spaced\r\n", ("bad-line",)),
        (BASIC + b"m=audio\r\n", ("bad-media", "media-without-format", "bad-port")),
    ],
)
def test_defects(body: bytes, defects: tuple[str, ...]) -> None:
    assert parse_sdp(body).defects == defects


def test_port_with_count_and_unbound_dynamic_type() -> None:
    sdp = parse_sdp(BASIC.replace(b"49170 RTP/AVP 0 8 101", b"49170/2 RTP/AVP 0 96"))
    assert (sdp.media[0].port, sdp.media[0].codecs) == (49170, ("PCMU/8000", "PT96"))
    assert sdp.defects == ("no-rtpmap",)


def test_codec_names_dedups_across_streams() -> None:
    body = BASIC + b"m=audio 49180 RTP/SAVP 8 0 13\r\nm=audio 0 RTP/AVP 18\r\n"
    assert codec_names(parse_sdp(body)) == ["PCMU", "PCMA"]
    assert codec_names(parse_sdp(body), include_aux=True) == ["PCMU", "PCMA", "telephone-event", "CN"]


# -- the contract: any bytes give an Sdp -------------------------------------------------------

_SDP_LINES = st.sampled_from(
    [
        "v=0",
        "o=- 1 1 IN IP4 10.0.0.1",
        "c=IN IP4 10.0.0.1",
        "c=IN IP6 ::1",
        "m=audio 4000 RTP/AVP 0 8 96",
        "m=image 4002 udptl t38",
        "a=rtpmap:96 opus/48000/2",
        "a=sendonly",
        "a=rtcp-mux",
        "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:x",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_any_bytes_give_an_sdp(body: bytes) -> None:
    assert isinstance(parse_sdp(body), Sdp)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_SDP_LINES, st.text(max_size=40)), max_size=30), st.sampled_from(["\r\n", "\n", "\r"]))
def test_sdp_like_text_gives_an_sdp(lines: list[str], eol: str) -> None:
    sdp = parse_sdp(eol.join(lines).encode("utf-8", errors="surrogatepass"))
    assert isinstance(sdp, Sdp)
    assert all(isinstance(m, Media) for m in sdp.media)
    assert len(set(sdp.defects)) == len(sdp.defects)
