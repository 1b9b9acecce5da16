"""``--engine tshark``: SIP that only Wireshark can decode, SIP over TLS with a key log above all.

tshark does what the native decoder cannot (decrypt TLS with ``tls.keylog_file``, then
reassemble SIP across TLS records and TCP segments); sipflow takes only the bytes of each
SIP message from it and builds the message with its own parser
(:func:`analyzer.sip.parser.parse_message`), so the call store, the diagnosis and every
report are the same as with the native engine.

How the bytes come out: ``tshark -T ek -x`` writes one JSON object per packet per line
(the Elasticsearch bulk format pyshark's ``use_ek`` mode reads), and ``-x`` adds a
``<field>_raw`` hex string for every item, so ``sip_raw`` holds the exact bytes of each
SIP message as tshark reassembled (and decrypted) them: one string per message, a list
when a frame completes several. tshark is run directly rather than through pyshark's
``LiveCapture`` because a run of days needs the child's pid (to stop it in order and reap
it) and a reader that a stop can interrupt; pyshark's sync iterator offers neither.

:class:`TsharkMessages` is the sans-I/O part (packets in, messages out); the two
sources are :func:`analyze_with_tshark` (a file) and :class:`TsharkCapture` (an interface,
for ``sipflow live --engine tshark``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NamedTuple, cast

from analyzer.correlate.store import CallStore
from analyzer.decode.pipeline import DecodeStats, Malformed
from analyzer.diagnose.security import SecurityWatch
from analyzer.diagnose.verdict import diagnose
from analyzer.errors import CaptureOpenError, SipParseError, UsageError
from analyzer.live.events import Done, put_blocking
from analyzer.live.tcpdump import TcpdumpCapture
from analyzer.sip.message import Origin, SipMessage
from analyzer.sip.parser import parse_message

if TYPE_CHECKING:
    from analyzer.analysis import Analysis

ENGINES = ("native", "tshark")
# Every SIP message, and every TLS frame: the TLS frames without SIP say that something
# was encrypted (the note without a key log) and where a TLS record's TCP reassembly
# ended (the frames of a message split over records).
DISPLAY_FILTER = "sip || tls"
# SIP on any port, as in the project's tshark reference runs (tests/oracle.py).
HEURISTICS = ("sip_udp", "sip_tcp", "sip_sctp")
KEYLOG_PREF = "tls.keylog_file"
# Frames whose TCP reassembly completed a TLS record but no SIP message, remembered so a
# message completed later can name them; a message spans a handful of records at most.
SEGMENT_MEMORY = 4096
# Frames without SIP counted by reason: TLS application data tshark could not turn into SIP.
TLS_NO_SIP = "tls-without-sip"
_NS = 1_000_000_000
_TRANSPORTS = ("tcp", "udp", "sctp")


class TsharkPacket(NamedTuple):
    """What sipflow needs of one packet tshark wrote (also the live queue's event)."""

    frame: int
    ts_ns: int
    length: int
    src_ip: str
    src_port: int
    dst_ip: str
    dst_port: int
    transport: str
    """``tls`` when tshark decrypted it (or saw TLS), ``ws``, else ``tcp``/``udp``/``sctp``."""
    sips: tuple[bytes, ...]
    """The bytes of each SIP message the packet completed, in order."""
    tcp_segments: tuple[int, ...]
    """Frames of the TCP reassembly that completed in this packet (``tcp.segment``)."""
    tls_segments: tuple[int, ...]
    """Frames whose TLS records were joined into the message (``tls.segment``)."""


# -- finding tshark, checking options ------------------------------------------------------


def find_tshark(command: str = "tshark") -> str:
    path = shutil.which(command)
    if path is None:
        raise UsageError(f"--engine tshark: {command!r} not found (install tshark, Wireshark 3.6 or later)")
    return path


def check_keylog(path: Path) -> Path:
    """``path`` if it can be read; tshark would ignore an unreadable key log without a word."""
    try:
        with path.open("rb") as f:
            f.read(1)
    except OSError as exc:
        raise UsageError(f"--tls-keylog {path}: cannot read it: {exc.strerror or exc}") from None
    return path.resolve()


def tshark_argv(
    tshark: str,
    *,
    read: str | None = None,
    iface: str | None = None,
    bpf: str | None = None,
    keylog: Path | None = None,
) -> list[str]:
    """``tshark -n -T ek -x -Y 'sip || tls' … (-r FILE | -l -i IFACE [-f BPF])``."""
    argv = [tshark, "-n", "-T", "ek", "-x", "-Y", DISPLAY_FILTER]
    for name in HEURISTICS:
        argv += ["--enable-heuristic", name]
    if keylog is not None:
        argv += ["-o", f"{KEYLOG_PREF}:{keylog}"]
    if read is not None:
        return [*argv, "-r", read]
    assert iface is not None
    # -l: flush after each packet, so a call is reported when it ends, not when a buffer fills.
    argv = [*argv, "-l", "-i", iface]
    return [*argv, "-f", bpf] if bpf else argv


# -- one EK line → TsharkPacket ----------------------------------------------------------------


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, list) and value else value


def _last(value: Any) -> Any:
    """The innermost of a repeated layer (IP in IP, GRE …): the addresses SIP was sent with."""
    return value[-1] if isinstance(value, list) and value else value


def _ints(value: Any) -> tuple[int, ...]:
    items = value if isinstance(value, list) else [] if value is None else [value]
    return tuple(int(v) for v in items)


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else [value]


def epoch_ns(text: str) -> int:
    """``1795297619.028322000`` → nanoseconds, without a float's rounding."""
    whole, _, frac = text.partition(".")
    return int(whole) * _NS + int((frac + "000000000")[:9])


def _address(layers: Mapping[str, Any]) -> tuple[str, str]:
    for name in ("ipv6", "ip"):
        layer = _last(layers.get(name))
        if isinstance(layer, dict):
            return str(_first(layer.get(f"{name}_{name}_src", ""))), str(_first(layer.get(f"{name}_{name}_dst", "")))
    return "", ""


def _ports(layers: Mapping[str, Any]) -> tuple[str, int, int]:
    for name in _TRANSPORTS:
        layer = _last(layers.get(name))
        if isinstance(layer, dict):
            src = _first(layer.get(f"{name}_{name}_srcport", 0))
            dst = _first(layer.get(f"{name}_{name}_dstport", 0))
            return name, int(src), int(dst)
    return "", 0, 0


def packet_from_ek(line: str | bytes) -> TsharkPacket | None:
    """One line of ``tshark -T ek -x``; None for the bulk-index lines between packets."""
    doc = json.loads(line)
    layers = doc.get("layers") if isinstance(doc, dict) else None
    if not isinstance(layers, dict):
        return None
    frame = layers.get("frame", {})
    transport, sport, dport = _ports(layers)
    src, dst = _address(layers)
    if "tls" in layers:
        transport = "tls"
    elif "websocket" in layers:
        transport = "ws"
    raw = layers.get("sip_raw")
    sips = tuple(bytes.fromhex(h) for h in _strings(raw)) if raw is not None else ()
    return TsharkPacket(
        frame=int(frame.get("frame_frame_number", 0)),
        ts_ns=epoch_ns(str(frame.get("frame_frame_time_epoch", "0"))),
        length=int(frame.get("frame_frame_len", 0)),
        src_ip=src,
        src_port=sport,
        dst_ip=dst,
        dst_port=dport,
        transport=transport,
        sips=sips,
        tcp_segments=_ints(layers.get("tcp_tcp_segment")),
        tls_segments=_ints(layers.get("tls_tls_segment")),
    )


# -- packets → messages (sans-I/O) --------------------------------------------------------------


class TsharkMessages:
    """tshark's packets in, :class:`SipMessage` objects out; counts go to ``stats``."""

    def __init__(self, stats: DecodeStats | None = None) -> None:
        self.stats = stats if stats is not None else DecodeStats()
        self._segments: OrderedDict[int, tuple[int, ...]] = OrderedDict()

    def feed(self, pkt: TsharkPacket) -> list[SipMessage]:
        st = self.stats
        st.frames += 1
        st.bytes += pkt.length
        if st.first_ts_ns is None:
            st.first_ts_ns = pkt.ts_ns
        st.last_ts_ns = pkt.ts_ns
        if not pkt.sips:
            self._remember(pkt)
            st.frames_by_reason[TLS_NO_SIP if pkt.transport == "tls" else "no-sip"] += 1
            return []
        st.frames_by_reason["sip"] += 1
        out: list[SipMessage] = []
        for i, data in enumerate(pkt.sips):
            # The segment lists belong to the first message the frame completed; any later
            # one started and ended inside this frame's data.
            frames = self._frames(pkt) if i == 0 else (pkt.frame,)
            origin = Origin(
                pkt.frame, frames, pkt.ts_ns, pkt.src_ip, pkt.src_port, pkt.dst_ip, pkt.dst_port, pkt.transport
            )
            try:
                out.append(parse_message(data, origin))
            except SipParseError as exc:
                st.malformed.append(Malformed(pkt.frame, frames, exc.reason, exc.detail))
        st.sip_messages += len(out)
        return out

    def _remember(self, pkt: TsharkPacket) -> None:
        if len(pkt.tcp_segments) > 1:
            self._segments[pkt.frame] = pkt.tcp_segments
            while len(self._segments) > SEGMENT_MEMORY:
                self._segments.popitem(last=False)

    def _frames(self, pkt: TsharkPacket) -> tuple[int, ...]:
        """Every frame that carried a part: each TLS record's TCP segments, then this frame's."""
        frames = {pkt.frame, *pkt.tcp_segments}
        for f in pkt.tls_segments:
            frames.update(self._segments.get(f, (f,)))
        return tuple(sorted(frames))


def encrypted_note(stats: DecodeStats) -> str:
    """Why a capture gave no SIP although it holds TLS ('' when that is not the case)."""
    tls = stats.frames_by_reason.get(TLS_NO_SIP, 0)
    if stats.sip_messages or not tls:
        return ""
    return (
        f"no SIP message could be read, but {tls} frames carry TLS: give --tls-keylog FILE with the "
        "key log of these sessions (SSLKEYLOGFILE), or the key log given does not match them"
    )


# -- a file ---------------------------------------------------------------------------------


def packets(argv: list[str]) -> Iterator[TsharkPacket]:
    """Run tshark to the end, yielding its packets; its stderr is kept for the error message."""
    with subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        stdout = cast(IO[bytes], proc.stdout)
        try:
            for line in stdout:
                pkt = packet_from_ek(line) if line.strip() else None
                if pkt is not None:
                    yield pkt
        finally:
            if proc.poll() is None:  # the consumer stopped early
                proc.kill()
            _, err = proc.communicate()
        if proc.returncode:
            last = err.decode("utf-8", "replace").strip().splitlines()[-1:] or [f"exit code {proc.returncode}"]
            raise CaptureOpenError(f"tshark: {last[0]}")


def read_with_tshark(
    path: str, keylog: Path | None = None, tshark: str = "tshark", stats: DecodeStats | None = None
) -> Iterator[SipMessage]:
    """The SIP messages of a capture file, as tshark decodes (and decrypts) them."""
    if path != "-" and not Path(path).is_file():
        raise CaptureOpenError(f"{path}: no such file")
    argv = tshark_argv(find_tshark(tshark), read=path, keylog=check_keylog(keylog) if keylog else None)
    conv = TsharkMessages(stats)
    for pkt in packets(argv):
        yield from conv.feed(pkt)


def analyze_with_tshark(path: str, keylog: Path | None = None, tshark: str = "tshark") -> Analysis:
    """:func:`analyzer.analysis.analyze` through tshark: the same :class:`Analysis`, whose
    ``warning`` says when TLS was seen but nothing could be decrypted."""
    from analyzer.analysis import Analysis

    stats = DecodeStats()
    store = CallStore()
    watch = SecurityWatch()
    messages: list[SipMessage] = []
    for msg in read_with_tshark(path, keylog, tshark, stats):
        watch.message(msg)  # in capture order, as the native engine feeds it
        store.feed(msg)
        messages.append(msg)
    conversations = store.finish()
    by_call = {c.key: c.messages for c in conversations}
    end = stats.last_ts_ns or 0
    reports = sorted((diagnose(c, end, ()) for c in conversations), key=lambda r: (r.start_ns, r.call_id, str(r.kind)))
    for r in reports:
        watch.report(r)
    return Analysis(path, stats, encrypted_note(stats), reports, messages, by_call, watch.findings())


# -- an interface -----------------------------------------------------------------------------


class TsharkCapture(TcpdumpCapture):
    """tshark on an interface: :class:`TsharkPacket` events on the live queue, then one
    ``Done("tshark", …)``. Started, stopped (SIGTERM to its group) and reaped like tcpdump."""

    def _read_frames(self) -> None:
        proc = self.proc
        assert proc is not None and proc.stdout is not None
        # The live queue's declared events (analyzer.live.events) predate this one; the main
        # loop accepts it too.
        out = self.out
        put: Callable[[Any, Any, threading.Event], bool] = put_blocking
        error = ""
        try:
            for line in proc.stdout:
                pkt = packet_from_ek(line) if line.strip() else None
                if pkt is not None:
                    put(out, pkt, self.abandon)
        except (OSError, ValueError) as exc:  # the pipe went away, or a line was cut short
            error = f"reading tshark's output: {exc}"
        finally:
            proc.stdout.close()
            rc = proc.wait()
            if self._stderr is not None:
                self._stderr.join(timeout=5.0)
            if not self.stopping and not error:
                why = self.stats.errors[-1] if self.stats.errors else f"exit code {rc}"
                error = f"tshark stopped: {why}"
            put_blocking(out, Done("tshark", error), self.abandon)


def tshark_listening(line: str) -> bool:
    """tshark's stderr line once the interface is open (``Capturing on 'eth0'``)."""
    return line.startswith("Capturing on")
