"""Coverage-guided fuzzing of every layer that reads outside input, for a fixed time budget.

Each target runs in a child process under atheris (libFuzzer for Python), starting from a
seed corpus cut from the real captures (``sample_pcaps/`` and ``../shared/pcaps``). The
contract checked on every input is the one each layer documents:

============  ======================================================  ==================
target        what it runs                                             allowed error
============  ======================================================  ==================
pcap, pcapng  ``capture.source.read_frames`` over the bytes as a file  CaptureFormatError
decode        ``Decoder.feed`` of framed records, each link type       DecodeError
tcpstream     ``TcpTable.segment`` of one direction, then close        DecodeError
sctp          ``parse_sctp`` + ``SctpReassembler.feed``                DecodeError
websocket     ``WebSocketStream.feed`` in chunks                       DecodeError
hep           ``decode.hep.parse_hep``                                  DecodeError
sip           ``parse_message`` + every lazy property, and framing     SipParseError
sdp           ``sip.sdp.parse_sdp`` + ``codec_names``                  none
============  ======================================================  ==================

Any other exception, a broken invariant (frames not all counted, a buffer past its
bound), an input slower than ``--timeout`` seconds or a process past ``--rss-mb`` is a
finding. A finding's input is kept in ``tests/fuzz_corpus/<target>/`` (named after the
exception and where it was raised) and replayed by ``tests/test_fuzz_regressions.py``.

    .venv/bin/python benchmarks/fuzz.py                        # every target, 10 s each
    .venv/bin/python benchmarks/fuzz.py --seconds 60 sip sdp   # some targets, 60 s each
    .venv/bin/python benchmarks/fuzz.py --replay               # only replay the kept inputs

It prints one row per target: inputs tried, coverage, findings (new and already kept),
hangs, out-of-memory runs. Nothing here asserts: it prints figures (STYLE.md habit 10).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import hashlib
import io
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from analyzer.capture.source import read_frames
from analyzer.capture.stats import CaptureStats
from analyzer.decode import ip as ip_mod
from analyzer.decode import sctp as sctp_mod
from analyzer.decode import tcp as tcp_mod
from analyzer.decode.hep import is_hep, parse_hep
from analyzer.decode.link import LINK_DECODERS
from analyzer.decode.pipeline import Decoder
from analyzer.decode.websocket import WebSocketStream
from analyzer.errors import CaptureFormatError, DecodeError, SipParseError
from analyzer.sip import framing
from analyzer.sip.message import Origin, SipMessage
from analyzer.sip.parser import parse_message
from analyzer.sip.sdp import codec_names, parse_sdp

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SAMPLE_PCAPS = ROOT / "sample_pcaps"
SHARED_PCAPS = ROOT.parent / "shared" / "pcaps"
CORPUS_OUT = ROOT / "tests" / "fuzz_corpus"

# The link types a decode record can pick (its first byte, modulo); the last is unknown.
LINKTYPES: tuple[int, ...] = (*sorted(LINK_DECODERS), 9999)
ORIGIN = Origin(1, (1,), 0, "192.0.2.1", 5060, "192.0.2.2", 5060, "udp")
# Small limits in the stream targets so that their bounds are reached by small inputs.
WS_MAX_MESSAGE = 512
SCTP_MAX_MESSAGE = 2048
SCTP_MAX_PENDING = 16
FLOW = (b"\xc0\x00\x02\x01", 5060, b"\xc0\x00\x02\x02", 5060)


class Violation(Exception):
    """An invariant of a layer does not hold (a finding, like an unexpected exception)."""


# -- input framing shared by the multi-record targets ---------------------------------------
def records(data: bytes, head: int) -> Iterator[tuple[bytes, bytes]]:
    """Split ``data`` into (header of ``head`` bytes, body) records: header, u16 length, body."""
    pos = 0
    while pos + head + 2 <= len(data):
        hdr = data[pos : pos + head]
        (n,) = struct.unpack_from("!H", data, pos + head)
        pos += head + 2
        yield hdr, data[pos : pos + n]
        pos += n


def record(hdr: bytes, body: bytes) -> bytes:
    return hdr + struct.pack("!H", len(body)) + body


# -- targets ----------------------------------------------------------------------------------
def run_capture(data: bytes) -> None:
    stats = CaptureStats("fuzz")
    try:
        frames = read_frames(io.BytesIO(data), stats)
        for n, (ts_ns, linktype, frame, orig) in enumerate(frames, 1):
            if not (isinstance(ts_ns, int) and isinstance(linktype, int) and isinstance(orig, int)):
                raise Violation(f"frame {n} has a field of the wrong type")
            if len(frame) > len(data):
                raise Violation(f"frame {n} is longer than the file")
    except CaptureFormatError:
        return


def run_decode(data: bytes) -> None:
    decoder = Decoder()
    n = 0
    for hdr, frame in records(data, 1):
        n += 1
        with contextlib.suppress(DecodeError):
            decoder.feed(n, n * 1_000_000, LINKTYPES[hdr[0] % len(LINKTYPES)], frame)
    decoder.finish()
    st = decoder.stats
    # Every frame is counted once under a reason (pipeline docstring).
    if st.frames != n or sum(st.frames_by_reason.values()) != n:
        raise Violation(f"{n} frames fed, {st.frames} counted, {sum(st.frames_by_reason.values())} by reason")


def run_tcpstream(data: bytes) -> None:
    """Records: flags byte, then a u16 sequence step (signed) and the segment's payload."""
    table = tcp_mod.TcpTable()
    seq = 1000
    for frame, (hdr, body) in enumerate(records(data, 3), 1):
        flags, step = hdr[0], struct.unpack("!h", hdr[1:3])[0]
        seq = (seq + step) & 0xFFFFFFFF
        table.segment(FLOW, seq, flags & 0x05, body, frame)
        stream = table.streams.get(FLOW)
        if stream is not None:
            if len(stream.buf) > tcp_mod.MAX_BUFFER + 65_535:
                raise Violation(f"stream buffer at {len(stream.buf)} bytes")
            if len(stream.pending) > tcp_mod.MAX_PENDING_SEGMENTS + 1:
                raise Violation(f"{len(stream.pending)} segments held out of order")
        seq = (seq + len(body)) & 0xFFFFFFFF
    table.close_all()


def run_sctp(data: bytes) -> None:
    reassembler = sctp_mod.SctpReassembler(SCTP_MAX_MESSAGE, SCTP_MAX_PENDING)
    for _hdr, packet in records(data, 0):
        try:
            parsed = sctp_mod.parse_sctp(packet)
        except DecodeError:
            continue
        if parsed is None:
            continue
        for chunk in parsed.chunks:
            with contextlib.suppress(DecodeError):
                reassembler.feed(FLOW, chunk)
            if reassembler.pending_fragments > SCTP_MAX_PENDING:
                raise Violation(f"{reassembler.pending_fragments} SCTP fragments held")


def run_websocket(data: bytes) -> None:
    """First byte: the size of the pieces the rest is fed in (TCP segments)."""
    if not data:
        return
    size = data[0] + 1
    ws = WebSocketStream(WS_MAX_MESSAGE)
    rest = data[1:]
    pieces = [rest[i : i + size] for i in range(0, len(rest), size)] + [b""]
    for piece in pieces:
        try:
            out = ws.feed(piece)
        except DecodeError:
            continue
        for message in out:
            if len(message) > WS_MAX_MESSAGE:
                raise Violation(f"WebSocket message of {len(message)} bytes")


def run_hep(data: bytes) -> None:
    is_hep(data)
    try:
        parse_hep(data)
    except DecodeError:
        return


def touch(msg: SipMessage) -> None:
    """Read every lazily parsed part of a message, as correlation and reports do."""
    repr(msg)
    _ = (msg.label, msg.is_request, msg.frame, msg.ts_ns, msg.user_agent, msg.content_type)
    msg.headers.items()
    len(msg.headers)
    _ = "via" in msg.headers
    _ = (msg.from_, msg.to, msg.vias, msg.contact, msg.reasons, msg.auth, msg.warnings)
    for name in ("expires", "min-expires", "max-forwards", "retry-after"):
        msg.int_header(name)
    sdp = msg.sdp
    if sdp is not None:
        codec_names(sdp)


def run_sip(data: bytes) -> None:
    try:
        msg = parse_message(data, ORIGIN)
    except SipParseError:
        pass
    else:
        if msg.raw != data or len(msg.body) > len(data):
            raise Violation("message does not hold its own bytes")
        touch(msg)
    frame_all(data)


def frame_all(data: bytes) -> None:
    """Frame ``data`` as a stream would: every step must make progress or ask for more."""
    pos = 0
    while pos < len(data):
        pos = framing.skip_keepalives(data, pos)
        if pos >= len(data):
            return
        verdict, end = framing.frame_message(data, pos)
        if verdict == framing.NEED:
            return
        if end <= pos or end > len(data):
            raise Violation(f"framing at {pos} returned {verdict} ending at {end}")
        pos = end


def run_sdp(data: bytes) -> None:
    codec_names(parse_sdp(data), include_aux=True)


# -- seeds from real captures ------------------------------------------------------------------
def capture_files(suffixes: tuple[str, ...]) -> list[Path]:
    out = [p for p in sorted(SAMPLE_PCAPS.glob("*")) if p.name.endswith(suffixes)]
    if SHARED_PCAPS.is_dir():
        out += [p for p in sorted(SHARED_PCAPS.rglob("*")) if p.name.endswith(suffixes)]
    return [p for p in out if p.is_file()]


def frames_of(path: Path, limit: int) -> list[tuple[int, bytes]]:
    """(link type, bytes) of the first ``limit`` frames of a capture (nothing if unreadable)."""
    out: list[tuple[int, bytes]] = []
    try:
        with path.open("rb") as f:
            for _ts, linktype, frame, _orig in read_frames(f, CaptureStats(str(path))):
                out.append((linktype, frame))
                if len(out) >= limit:
                    break
    except CaptureFormatError:
        pass
    return out


def messages_of(path: Path) -> list[SipMessage]:
    decoder = Decoder()
    msgs: list[SipMessage] = []
    try:
        with path.open("rb") as f:
            for n, (ts, linktype, frame, _orig) in enumerate(read_frames(f, CaptureStats(str(path))), 1):
                msgs += decoder.feed(n, ts, linktype, frame)
    except CaptureFormatError:
        pass
    return msgs + decoder.finish()


def udp_payloads(path: Path) -> Iterator[bytes]:
    for linktype, frame in frames_of(path, 200):
        if linktype not in LINK_DECODERS:
            continue
        etype, off, _ = LINK_DECODERS[linktype](frame)
        try:
            pkt = ip_mod.ipv4(frame, off) if etype == 0x0800 else ip_mod.ipv6(frame, off)
        except DecodeError:
            continue
        if pkt.proto == ip_mod.PROTO_UDP and len(pkt.payload) > 8:
            yield pkt.payload[8:]


def seeds_capture(suffix: str, max_len: int) -> Iterator[bytes]:
    for path in capture_files((suffix,))[:40]:
        yield path.read_bytes()[:max_len]


def seeds_decode(max_len: int) -> Iterator[bytes]:
    for path in capture_files((".pcap", ".pcapng"))[:60]:
        out = b""
        for linktype, frame in frames_of(path, 40):
            rec = record(bytes([LINKTYPES.index(linktype) if linktype in LINKTYPES else 255]), frame)
            if len(out) + len(rec) > max_len:
                break
            out += rec
        if out:
            yield out


def seeds_sip(max_len: int) -> Iterator[bytes]:
    for path in capture_files((".pcap", ".pcapng"))[:60]:
        for msg in messages_of(path)[:6]:
            yield msg.raw[:max_len]


def seeds_tcpstream(max_len: int) -> Iterator[bytes]:
    for raw in seeds_sip(max_len):
        out = b""
        for i in range(0, len(raw), 500):
            out += record(b"\x00\x00\x00", raw[i : i + 500])
        yield out[:max_len]


def seeds_sdp(max_len: int) -> Iterator[bytes]:
    for raw in seeds_sip(max_len):
        msg = parse_message(raw, ORIGIN)
        if msg.body and "sdp" in msg.content_type:
            yield msg.body


def seeds_hep(max_len: int) -> Iterator[bytes]:
    for path in capture_files((".pcap", ".pcapng")):
        if "hep" in path.name or "hep" in path.parent.name:
            yield from (p[:max_len] for p in udp_payloads(path) if is_hep(p))


def seeds_sctp(max_len: int) -> Iterator[bytes]:
    for path in capture_files((".pcap",)):
        if "sctp" not in path.name:
            continue
        out = b""
        for linktype, frame in frames_of(path, 50):
            etype, off, _ = LINK_DECODERS[linktype](frame)
            try:
                pkt = ip_mod.ipv4(frame, off) if etype == 0x0800 else ip_mod.ipv6(frame, off)
            except DecodeError:
                continue
            if pkt.proto == ip_mod.PROTO_SCTP:
                out += record(b"", pkt.payload)
        yield out[:max_len]


def seeds_websocket(max_len: int) -> Iterator[bytes]:
    # Unmasked and masked text frames carrying real SIP messages (RFC 6455 §5.2).
    for raw in list(seeds_sip(max_len))[:30]:
        body = raw[:300]
        yield b"\xff\x81" + bytes([0x7E]) + struct.pack("!H", len(body)) + body
        yield b"\x10\x01" + bytes([0xFE]) + struct.pack("!H", len(body)) + b"abcd" + body


class Target(NamedTuple):
    run: Callable[[bytes], None]
    seeds: Callable[[int], Iterator[bytes]]
    max_len: int


TARGETS: dict[str, Target] = {
    "pcap": Target(run_capture, lambda n: seeds_capture(".pcap", n), 16_384),
    "pcapng": Target(run_capture, lambda n: seeds_capture(".pcapng", n), 16_384),
    "decode": Target(run_decode, seeds_decode, 16_384),
    "tcpstream": Target(run_tcpstream, seeds_tcpstream, 16_384),
    "sctp": Target(run_sctp, seeds_sctp, 8_192),
    "websocket": Target(run_websocket, seeds_websocket, 8_192),
    "hep": Target(run_hep, seeds_hep, 4_096),
    "sip": Target(run_sip, seeds_sip, 8_192),
    "sdp": Target(run_sdp, seeds_sdp, 4_096),
}


# -- the contract ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Finding:
    """An input that broke its layer's contract."""

    key: str
    """Exception type and the innermost sipflow line it came from: the same bug, the same key."""
    text: str


def check(target: str, data: bytes) -> Finding | None:
    """Run one input through a target; a Finding when anything but its documented error escapes."""
    try:
        TARGETS[target].run(data)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # every other exception is what the contract rules out
        return Finding(_key(exc), "".join(traceback.format_exception(exc)))
    return None


def _key(exc: BaseException) -> str:
    where = "unknown"
    for frame in traceback.extract_tb(exc.__traceback__):
        if f"{os.sep}analyzer{os.sep}" in frame.filename or frame.filename == __file__:
            where = f"{Path(frame.filename).stem}-{frame.lineno}"
    return f"{type(exc).__name__}-{where}"


# -- the child: one target under atheris -------------------------------------------------------
class Recorder:
    """Keeps the smallest input of each finding in ``out`` and says on stderr what was found."""

    def __init__(self, target: str, out: Path) -> None:
        self.target = target
        self.out = out
        self.best: dict[str, int] = {}

    def __call__(self, data: bytes) -> None:
        finding = check(self.target, data)
        if finding is None:
            return
        size = self.best.get(finding.key)
        if size is not None and size <= len(data):
            return
        known = size is None and any(self.out.glob(f"{finding.key}-*"))
        self.best[finding.key] = len(data)
        if known:
            print(f"FUZZ-FINDING known {finding.key}", file=sys.stderr, flush=True)
            return
        self.out.mkdir(parents=True, exist_ok=True)
        for old in self.out.glob(f"{finding.key}-*"):
            old.unlink()
        digest = hashlib.sha1(data).hexdigest()[:12]
        (self.out / f"{finding.key}-{digest}").write_bytes(data)
        if size is None:
            last = finding.text.strip().splitlines()[-1]
            print(f"FUZZ-FINDING new {finding.key} {last}", file=sys.stderr, flush=True)
            print(finding.text, file=sys.stderr, flush=True)


def instrument_sipflow() -> None:
    """Coverage instrumentation for sipflow's own functions only (not the standard library)."""
    import atheris  # type: ignore[import-untyped]

    for obj in gc.get_objects():
        module = getattr(obj, "__module__", None)
        if isinstance(obj, type(instrument_sipflow)) and isinstance(module, str) and module.startswith("analyzer"):
            try:
                atheris.instrument_func(obj)
            except Exception as exc:  # a generated function atheris cannot patch: fuzz it blind
                print(f"INFO: not instrumented: {obj.__qualname__}: {exc}", file=sys.stderr)


def child(target: str, out: Path, libfuzzer_args: list[str]) -> None:
    import atheris

    instrument_sipflow()
    # No "RegEx" hook: its pattern proxy takes no pos/endpos (headers.Headers searches a span
    # of the message with findall(data, pos, endpos)), so every such search was a finding.
    atheris.enabled_hooks.add("str")
    atheris.Setup([sys.argv[0], *libfuzzer_args], Recorder(target, out))
    atheris.Fuzz()


# -- the parent: budget, restarts after hangs, figures ----------------------------------------
@dataclass(slots=True)
class Figures:
    target: str
    inputs: int = 0
    coverage: int = 0
    corpus: int = 0
    new: int = 0
    known: int = 0
    hangs: int = 0
    ooms: int = 0
    crashes: int = 0
    """The child died otherwise (libFuzzer "deadly signal", an error escaping the recorder)."""
    peak_rss_mb: int = 0
    slowest_s: int = 0
    seconds: float = 0.0


_STATUS = re.compile(r"^#(\d+)\s+\w+\s+cov: (\d+) ft: \d+ corp: (\d+)")
_STAT = re.compile(r"^stat::(\w+):\s+(\d+)")


def fuzz_target(target: str, seconds: int, args: argparse.Namespace, work: Path) -> Figures:
    spec = TARGETS[target]
    corpus = work / target / "corpus"
    artifacts = work / target / "artifacts"
    for d in (corpus, artifacts):
        d.mkdir(parents=True, exist_ok=True)
    for i, seed in enumerate(spec.seeds(spec.max_len)):
        (corpus / f"seed-{i:04d}").write_bytes(seed)
    figures = Figures(target)
    out = args.corpus_out / target
    deadline = time.monotonic() + seconds
    started = time.monotonic()
    while (left := int(deadline - time.monotonic())) >= 1:
        libfuzzer = [
            f"-max_total_time={left}",
            f"-timeout={args.timeout}",
            f"-rss_limit_mb={args.rss_mb}",
            f"-max_len={spec.max_len}",
            "-print_final_stats=1",
            f"-artifact_prefix={artifacts}{os.sep}",
            str(corpus),
        ]
        cmd = [sys.executable, __file__, "--child", target, "--corpus-out", str(args.corpus_out), "--", *libfuzzer]
        proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace", check=False)
        log = proc.stderr.splitlines()
        run_inputs = _read_log(log, figures)
        figures.inputs += run_inputs
        if args.verbose:
            print(proc.stderr, file=sys.stderr)
        if not _keep_artifacts(artifacts, out, figures) and proc.returncode != 0:
            figures.crashes += 1
            print(f"[{target}] child exited {proc.returncode}:\n" + "\n".join(log[-30:]), file=sys.stderr)
        if proc.returncode == 0:
            break
    figures.seconds = time.monotonic() - started
    return figures


def _read_log(log: list[str], figures: Figures) -> int:
    """Fold one child's libFuzzer log into ``figures``; returns the inputs it ran."""
    inputs = 0
    for line in log:
        if line.startswith("FUZZ-FINDING "):
            kind = line.split(" ", 2)[1]
            figures.new += kind == "new"
            figures.known += kind == "known"
            if kind == "new":
                print(f"[{figures.target}] new finding: {line.split(' ', 2)[2]}", file=sys.stderr)
        elif m := _STATUS.match(line):
            inputs = max(inputs, int(m.group(1)))
            figures.coverage = max(figures.coverage, int(m.group(2)))
            figures.corpus = max(figures.corpus, int(m.group(3)))
        elif m := _STAT.match(line):
            name, value = m.group(1), int(m.group(2))
            if name == "number_of_executed_units":
                inputs = max(inputs, value)
            elif name == "peak_rss_mb":
                figures.peak_rss_mb = max(figures.peak_rss_mb, value)
            elif name == "slowest_unit_time_sec":
                figures.slowest_s = max(figures.slowest_s, value)
    return inputs


def _keep_artifacts(artifacts: Path, out: Path, figures: Figures) -> bool:
    """Move libFuzzer's timeout-/oom-/crash- inputs into the regression corpus; True if any."""
    found = False
    for path in sorted(artifacts.iterdir()):
        kind = path.name.split("-", 1)[0]
        if kind == "timeout":
            figures.hangs += 1
        elif kind == "oom":
            figures.ooms += 1
        elif kind == "crash":
            figures.crashes += 1
        else:
            continue
        out.mkdir(parents=True, exist_ok=True)
        shutil.move(str(path), out / path.name)
        found = True
    return found


def replay(corpus_out: Path, targets: list[str]) -> tuple[int, int]:
    """Replay the kept inputs; (inputs, still failing). Hang inputs are replayed too."""
    total = failing = 0
    for target in targets:
        for path in sorted((corpus_out / target).glob("*")) if (corpus_out / target).is_dir() else []:
            total += 1
            finding = check(target, path.read_bytes())
            if finding is not None:
                failing += 1
                print(f"still failing: {target}/{path.name}: {finding.key}", file=sys.stderr)
    return total, failing


def print_table(rows: list[Figures]) -> None:
    head = ("target", "seconds", "inputs", "inputs/s", "cov", "corpus", "new", "known", "hangs", "oom", "died")
    print(" ".join(f"{h:>9}" for h in head))
    for f in rows:
        rate = f.inputs / f.seconds if f.seconds else 0.0
        cells = (
            f.target,
            f"{f.seconds:.0f}",
            f.inputs,
            f"{rate:.0f}",
            f.coverage,
            f.corpus,
            f.new,
            f.known,
            f.hangs,
            f.ooms,
            f.crashes,
        )
        print(" ".join(f"{c:>9}" for c in cells))
    total = sum(f.inputs for f in rows)
    found = sum(f.new + f.hangs + f.ooms + f.crashes for f in rows)
    print(f"total: {total} inputs, {found} new findings")


def main(argv: list[str]) -> int:
    if "--child" in argv:
        i = argv.index("--child")
        sep = argv.index("--")
        out = Path(argv[argv.index("--corpus-out") + 1]) / argv[i + 1]
        child(argv[i + 1], out, argv[sep + 1 :])
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("targets", nargs="*", metavar="TARGET", help=f"some of {', '.join(TARGETS)} (default: all)")
    parser.add_argument("--seconds", type=int, default=10, help="budget per target (default 10)")
    parser.add_argument("--timeout", type=int, default=5, help="seconds one input may take (default 5)")
    parser.add_argument("--rss-mb", type=int, default=1024, help="memory limit of a fuzzing process (default 1024)")
    parser.add_argument("--corpus-out", type=Path, default=CORPUS_OUT, help="where findings are kept")
    parser.add_argument("--work", type=Path, help="keep the working corpora here (default: a temporary directory)")
    parser.add_argument("--replay", action="store_true", help="only replay the kept findings")
    parser.add_argument("-v", "--verbose", action="store_true", help="show libFuzzer's own output")
    parser.add_argument(
        "--compiled",
        action="store_true",
        help="fuzz the hot modules as compiled by scripts/compile.py (blind: atheris sees no coverage in them)",
    )
    args = parser.parse_args(argv)
    if not args.compiled:
        os.environ["SIPFLOW_PURE"] = "1"  # the fuzzing processes: coverage needs the Python source
    print(f"hot modules fuzzed {'as compiled' if args.compiled else 'from source'} (analyzer/native.py)")
    targets = list(args.targets) or list(TARGETS)
    unknown = sorted(set(targets) - set(TARGETS))
    if unknown:
        parser.error(f"unknown target(s) {', '.join(unknown)}; choose from {', '.join(TARGETS)}")
    kept, failing = replay(args.corpus_out, targets)
    print(f"regression inputs in {args.corpus_out}: {kept}, still failing: {failing}")
    if args.replay:
        return 1 if failing else 0
    try:
        import atheris  # noqa: F401
    except ImportError:
        print("atheris is not installed: .venv/bin/pip install atheris", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="sipflow-fuzz-") as tmp:
        work = args.work or Path(tmp)
        rows = [fuzz_target(target, args.seconds, args, work) for target in targets]
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
