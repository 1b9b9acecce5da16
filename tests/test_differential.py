"""Differential test: sipflow's capture reader against tshark, capture by capture.

For every public capture in ``../shared/pcaps`` and every file in ``sample_pcaps``, the
multiset of ``(frame, call_id, method, status, cseq, cseq_method)`` that
``analyzer.read_messages`` yields must equal what tshark's SIP dissector sees
(:mod:`tests.oracle`). Where tshark is wrong about a capture, ``KNOWN_DIFFERENCES``
says why and derives the expected list another way.
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.oracle import (
    SAMPLE_PCAPS,
    SHARED_PCAPS,
    OracleMessage,
    Tshark,
    summary_rows,
    tshark_messages,
)

pytestmark = pytest.mark.tools

Key = tuple[int, str, str, int, int, str]
"""(frame, call_id, method, status, cseq, cseq_method)."""

CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap", ".libpcap", ".gz")
NOT_CAPTURES = ("MANIFEST", "SUMMARY", "README")
MAX_FRAMES_REPORTED = 40


# -- which captures ---------------------------------------------------------------------------


def capture_files(root: Path) -> list[Path]:
    """Capture files under ``root``, recursively, in a stable order."""
    if not root.is_dir():
        return []
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and p.name.endswith(CAPTURE_SUFFIXES) and not p.name.startswith(NOT_CAPTURES)
    )


def capture_id(path: Path) -> str:
    """``hep-wireshark/hep.pcap`` for shared captures, ``sample_pcaps/x.pcap`` for ours."""
    if path.is_relative_to(SHARED_PCAPS):
        return path.relative_to(SHARED_PCAPS).as_posix()
    return path.relative_to(SAMPLE_PCAPS.parent).as_posix()


CAPTURES = (*capture_files(SHARED_PCAPS), *capture_files(SAMPLE_PCAPS))
SUMMARY = summary_rows(SHARED_PCAPS / "SUMMARY.tsv") if (SHARED_PCAPS / "SUMMARY.tsv").is_file() else {}


# -- where tshark is wrong --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OracleRun:
    """What an adjustment needs to ask tshark something else."""

    tshark: Tshark
    cache_dir: Path
    scratch: Path


@dataclass(frozen=True, slots=True)
class KnownDifference:
    reason: str
    """Why tshark's view of this capture is not the truth (verified by hand)."""
    adjustment: str
    """How the expected messages are derived instead."""
    expected: Callable[[Path, OracleRun], list[OracleMessage]]


HEP3_MAGIC = b"HEP3"
HEP_CHUNK_PROTO = 0x000B  # protocol type, 1 byte; 1 = SIP (HEP3 spec, "Chunk types")
HEP_CHUNK_PAYLOAD = 0x000F  # the captured packet payload
HEP_PROTO_SIP = 1


def hep3_sip_payload(datagram: bytes) -> bytes:
    """The SIP payload chunk of one HEP3 packet, or b"" (HEP3: 6-byte header, then TLV chunks)."""
    if datagram[:4] != HEP3_MAGIC or len(datagram) < 6:
        return b""
    (total,) = struct.unpack_from("!H", datagram, 4)
    chunks: dict[int, bytes] = {}
    offset = 6
    # Each chunk: vendor (2), type (2), length including this 6-byte header (2), value.
    while offset + 6 <= min(total, len(datagram)):
        _vendor, kind, length = struct.unpack_from("!HHH", datagram, offset)
        if length < 6:
            break
        chunks.setdefault(kind, datagram[offset + 6 : offset + length])
        offset += length
    if chunks.get(HEP_CHUNK_PROTO, b"") != bytes([HEP_PROTO_SIP]):
        return b""
    return chunks.get(HEP_CHUNK_PAYLOAD, b"")


def tshark_on_hep_payloads(capture: Path, run: OracleRun) -> list[OracleMessage]:
    """tshark on the SIP payloads of the HEP3 packets, re-sent as UDP 5060, one per frame.

    Frame numbers are kept: frame N of the rewrapped capture carries frame N's payload
    (empty when frame N holds no HEP3 SIP chunk), so the list compares frame by frame.
    """
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    from scapy.utils import wrpcap

    payloads = udp_payloads(capture, run.tshark)
    frames = [
        Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
        / IP(src="127.0.0.1", dst="127.0.0.2")
        / UDP(sport=5060, dport=5060)
        / hep3_sip_payload(payloads.get(n, b""))
        for n in range(1, max(payloads, default=0) + 1)
    ]
    rewrapped = run.scratch / f"{capture.stem}-hep-payloads.pcap"
    wrpcap(str(rewrapped), frames)
    return tshark_messages(rewrapped, tshark=run.tshark, cache_dir=run.cache_dir)


def udp_payloads(capture: Path, tshark: Tshark) -> dict[int, bytes]:
    """Frame number → UDP payload, as tshark decodes the capture (every frame listed)."""
    import subprocess

    argv = [tshark.executable, "-n", "-r", str(capture), "-T", "fields", "-e", "frame.number"]
    out = subprocess.run([*argv, "-e", "udp.payload"], capture_output=True, text=True, check=True, timeout=600).stdout
    payloads: dict[int, bytes] = {}
    for line in out.splitlines():
        number, _, hexdata = line.partition("\t")
        payloads[int(number)] = bytes.fromhex(hexdata.split(",")[0])
    return payloads


@dataclass(frozen=True, slots=True)
class FramePatch:
    """One message tshark reports wrongly, and what the bytes on the wire say instead."""

    tshark_says: OracleMessage
    wire_says: OracleMessage


def tshark_patched(*patches: FramePatch) -> Callable[[Path, OracleRun], list[OracleMessage]]:
    """tshark's list with the given messages replaced; fails if tshark stops saying them."""

    def expected(capture: Path, run: OracleRun) -> list[OracleMessage]:
        messages = tshark_messages(capture, tshark=run.tshark, cache_dir=run.cache_dir)
        for patch in patches:
            assert patch.tshark_says in messages, f"tshark no longer says {patch.tshark_says}: re-check"
            messages[messages.index(patch.tshark_says)] = patch.wire_says
        return messages

    return expected


FUZZ_CALL_ID = "578222729-4665d775@578222732-4665d772"

KNOWN_DIFFERENCES: dict[str, KnownDifference] = {
    "ndpi/fuzz-2006-06-26-2594.pcap": KnownDifference(
        reason=(
            "three tshark artefacts on fuzzed headers (raw UDP payloads read by hand). "
            "(1) A string field is shown only up to its first NUL byte: frame 155 "
            "'CSeq:%s\\x00 REGISTER' (tshark takes the method from the first letter: 's'), "
            "frame 182 'Call-ID: 578222%s\\x00-4665d775@…' (tshark: '578222%s'), frame 247 "
            "'Call-ID: …192.168.%s\\x00' (tshark drops the NUL). "
            "(2) packet-sip.c copies the CSeq method into a 16-byte buffer (MAX_CSEQ_METHOD_SIZE) "
            "and throws when it is longer: frame 527 'CSeq: 2 /EGIS' + 306 bytes 0xaa (to the end "
            "of the datagram) gets no method. "
            "(3) tvb_find_line_end ends a line at a bare CR, RFC 3261 §7 only at CRLF: frame 266 "
            "'CSeq: 1 CANCEL\\r\\x0bContent-Length: 0' is one header line on the wire"
        ),
        adjustment=(
            "those five messages take the values read from the raw payload (non-UTF-8 bytes "
            "decoded with U+FFFD, as both tools do)"
        ),
        expected=tshark_patched(
            FramePatch(
                OracleMessage(155, FUZZ_CALL_ID, "", 401, -1, "s"),
                OracleMessage(155, FUZZ_CALL_ID, "", 401, -1, "REGISTER"),
            ),
            FramePatch(
                OracleMessage(182, "578222%s", "", 200, 75, "REGISTER"),
                OracleMessage(182, "578222%s\x00-4665d775@578222732-4665d772", "", 200, 75, "REGISTER"),
            ),
            FramePatch(
                OracleMessage(247, "105090259-446faf7a@192.168.%s", "CANCEL", 0, 1, "CANCEL"),
                OracleMessage(247, "105090259-446faf7a@192.168.%s\x00", "CANCEL", 0, 1, "CANCEL"),
            ),
            FramePatch(
                OracleMessage(266, '105090259-446faf7a@19".168.1.2', "CANCEL", 0, 1, "CANCEL"),
                OracleMessage(266, '105090259-446faf7a@19".168.1.2', "CANCEL", 0, 1, "CANCEL\r\x0bContent-Length: 0"),
            ),
            FramePatch(
                OracleMessage(527, "H9858147-465b0772@29858051-465b07b2", "", 200, 2, ""),
                OracleMessage(527, "H9858147-465b0772@29858051-465b07b2", "", 200, 2, "/EGIS" + "\ufffd" * 306),
            ),
        ),
    ),
    "hep-wireshark/hep.pcap": KnownDifference(
        reason=(
            "HEP3 (EEP) on UDP 9060: tshark 4.0 has no HEP dissector and sees 0 SIP messages, "
            "while 6 of the 8 HEP packets carry SIP (protocol type 1; the other two are a "
            "syslog line, type 100, and RTCP-as-JSON, type 5)"
        ),
        adjustment=(
            "unwrap each HEP3 packet's payload chunk (type 0x000f, when the protocol-type "
            "chunk 0x000b says SIP) into a UDP 5060 datagram at the same frame number and "
            "run the tshark oracle on that; gives 6 messages = SUMMARY raw_sip_startlines"
        ),
        expected=tshark_on_hep_payloads,
    ),
}


# Where the oracle's count differs from SUMMARY.tsv's sip_msgs, and why (checked by hand).
ORACLE_VS_SUMMARY: dict[str, tuple[int, str]] = {
    "goffinet-sip_captures/private-test-sip.pcapng": (
        276,
        "frames 2, 150, 152 are ICMP port-unreachable errors quoting SIP (RFC 792); "
        "SUMMARY counts the quoted messages, the oracle does not",
    ),
}


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tshark() -> Tshark:
    found = Tshark.find()
    if found is None:
        pytest.skip("tshark not installed")
    return found


@pytest.fixture(scope="session")
def oracle_cache(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tshark results cached across sessions in the pytest cache (keyed by file sha256)."""
    cache = getattr(request.config, "cache", None)  # absent under -p no:cacheprovider
    return cache.mkdir("tshark-oracle") if cache is not None else tmp_path_factory.mktemp("tshark-oracle")


@pytest.fixture()
def oracle_run(tshark: Tshark, oracle_cache: Path, tmp_path: Path) -> OracleRun:
    return OracleRun(tshark, oracle_cache, tmp_path)


def reader() -> Callable[[Path], Iterable[Any]]:
    import analyzer

    read_messages: Callable[[Path], Iterable[Any]] | None = getattr(analyzer, "read_messages", None)
    if read_messages is None:
        pytest.skip("analyzer.read_messages does not exist yet")
    return read_messages


# -- comparing ---------------------------------------------------------------------------------


def sipflow_key(msg: Any) -> Key:
    return (msg.frame, msg.call_id, msg.method, msg.status, msg.cseq, msg.cseq_method)


def oracle_key(msg: OracleMessage) -> Key:
    frame, call_id, method, status, cseq, cseq_method = astuple(msg)
    return (frame, call_id, method, status, cseq, cseq_method)


def describe_difference(tshark_only: Counter[Key], sipflow_only: Counter[Key]) -> str:
    """Frame by frame: what only tshark has and what only sipflow has."""
    frames = sorted({k[0] for k in tshark_only} | {k[0] for k in sipflow_only})
    lines = [
        f"{sum(tshark_only.values())} message(s) only in tshark, "
        f"{sum(sipflow_only.values())} only in sipflow, over {len(frames)} frame(s):"
    ]
    for frame in frames[:MAX_FRAMES_REPORTED]:
        for side, only in (("tshark ", tshark_only), ("sipflow", sipflow_only)):
            for key, count in sorted(only.items()):
                if key[0] == frame:
                    times = f" x{count}" if count > 1 else ""
                    lines.append(f"  frame {frame}: only {side}: {key[1:]}{times}")
    if len(frames) > MAX_FRAMES_REPORTED:
        lines.append(f"  … and {len(frames) - MAX_FRAMES_REPORTED} more frame(s)")
    return "\n".join(lines)


# -- tests -------------------------------------------------------------------------------------


@pytest.mark.parametrize("capture", CAPTURES, ids=capture_id)
def test_reader_matches_tshark(capture: Path, oracle_run: OracleRun) -> None:
    read_messages = reader()
    known = KNOWN_DIFFERENCES.get(capture_id(capture))
    if known is not None:
        expected = known.expected(capture, oracle_run)
    else:
        expected = tshark_messages(capture, tshark=oracle_run.tshark, cache_dir=oracle_run.cache_dir)
    want = Counter(oracle_key(m) for m in expected)
    got = Counter(sipflow_key(m) for m in read_messages(capture))
    if got != want:
        pytest.fail(describe_difference(want - got, got - want), pytrace=False)


@pytest.mark.parametrize("relative", sorted(SUMMARY))
def test_oracle_count_matches_summary(relative: str, tshark: Tshark, oracle_cache: Path) -> None:
    expected = int(SUMMARY[relative]["sip_msgs"])
    if relative in ORACLE_VS_SUMMARY:
        expected = ORACLE_VS_SUMMARY[relative][0]
    messages = tshark_messages(SHARED_PCAPS / relative, tshark=tshark, cache_dir=oracle_cache)
    assert len(messages) == expected


def test_every_summary_capture_is_compared() -> None:
    shared = {capture_id(p) for p in CAPTURES if p.is_relative_to(SHARED_PCAPS)}
    assert shared == set(SUMMARY)


def test_known_differences_name_existing_captures() -> None:
    ids = {capture_id(p) for p in CAPTURES}
    assert set(KNOWN_DIFFERENCES) <= ids
    assert set(ORACLE_VS_SUMMARY) <= set(SUMMARY)


def test_hep_adjustment_finds_the_sip_inside(oracle_run: OracleRun) -> None:
    capture = SHARED_PCAPS / "hep-wireshark" / "hep.pcap"
    if not capture.is_file():
        pytest.skip(f"{capture} not present")
    messages = KNOWN_DIFFERENCES["hep-wireshark/hep.pcap"].expected(capture, oracle_run)
    assert [(m.frame, m.method, m.status, m.cseq, m.cseq_method) for m in messages] == [
        (1, "INVITE", 0, 1, "INVITE"),
        (2, "", 100, 1, "INVITE"),
        (3, "", 407, 1, "INVITE"),
        (4, "OPTIONS", 0, 9999, "OPTIONS"),
        (6, "", 200, 9999, "OPTIONS"),
        (7, "PUBLISH", 0, 1, "PUBLISH"),
    ]
    assert {m.call_id for m in messages} == {"qgf3dm9rudi@127.0.0.1"}


def test_oracle_splits_messages_sharing_a_frame(oracle_run: OracleRun) -> None:
    """No public capture has two SIP messages in one frame; build one to pin the grouping.

    Frame 4: REGISTER + OPTIONS without Call-ID + the start of an INVITE (one TCP segment);
    frame 5: the rest of the INVITE (compact ``i:`` Call-ID); frame 6: a UDP BYE on a
    non-SIP port (heuristics); frame 7: the same BYE quoted in an ICMP error (not a message).
    """
    from scapy.layers.inet import ICMP, IP, TCP, UDP
    from scapy.layers.l2 import Ether
    from scapy.utils import wrpcap

    def sip(start: str, *headers: str, body: str = "") -> bytes:
        head = "".join(f"{h}\r\n" for h in (start, *headers, f"Content-Length: {len(body)}"))
        return f"{head}\r\n{body}".encode()

    via = "Via: SIP/2.0/TCP 10.0.0.1:5060;branch=z9hG4bK1"
    register = sip("REGISTER sip:example.com SIP/2.0", via, "Call-ID: reg-1", "CSeq: 1 REGISTER")
    options = sip("OPTIONS sip:example.com SIP/2.0", via, "CSeq: 7 OPTIONS")
    invite = sip("INVITE sip:bob@example.com SIP/2.0", via, "i: inv-1", "CSeq: 2 INVITE", body="v=0\r\n")
    bye = sip("BYE sip:x@example.com SIP/2.0", "Call-ID: bye-1", "CSeq: 3 BYE")
    first = register + options + invite[:60]
    eth = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    c2s = eth / IP(src="10.0.0.1", dst="10.0.0.2")
    s2c = eth / IP(src="10.0.0.2", dst="10.0.0.1")
    frames = [
        c2s / TCP(sport=40000, dport=5060, flags="S", seq=100),
        s2c / TCP(sport=5060, dport=40000, flags="SA", seq=900, ack=101),
        c2s / TCP(sport=40000, dport=5060, flags="A", seq=101, ack=901),
        c2s / TCP(sport=40000, dport=5060, flags="PA", seq=101, ack=901) / first,
        c2s / TCP(sport=40000, dport=5060, flags="PA", seq=101 + len(first), ack=901) / invite[60:],
        c2s / UDP(sport=5999, dport=5999) / bye,
        s2c / ICMP(type=3, code=3) / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=5999, dport=5999) / bye,
    ]
    capture = oracle_run.scratch / "multi.pcap"
    wrpcap(str(capture), frames)
    assert tshark_messages(capture, tshark=oracle_run.tshark, cache_dir=oracle_run.cache_dir) == [
        OracleMessage(4, "reg-1", "REGISTER", 0, 1, "REGISTER"),
        OracleMessage(4, "", "OPTIONS", 0, 7, "OPTIONS"),
        OracleMessage(5, "inv-1", "INVITE", 0, 2, "INVITE"),
        OracleMessage(6, "bye-1", "BYE", 0, 3, "BYE"),
    ]
