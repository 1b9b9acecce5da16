"""tshark as the test oracle: the SIP messages Wireshark's dissector finds in a capture.

One :class:`OracleMessage` per SIP message, not per frame: a TCP segment can complete
several messages, and each gets its own ``sip`` tree in tshark's JSON output (with
``--no-duplicate-keys`` they arrive as a list under one ``"sip"`` key).

What is deliberately *not* a message:

* SIP quoted inside an ICMP/ICMPv6 error (RFC 792 / RFC 4443 quote the offending
  datagram): it was never delivered, so the display filter drops such frames.

Mapped to sipflow's conventions (``SipMessage``): method "" for a response, status 0 for
a request, call_id "" and cseq_method "" when missing, cseq -1 when missing *or* when the
CSeq value does not start with digits (tshark reports 0 there).

tshark runs with name resolution off, the SIP heuristic dissectors on for every
transport that has one (so SIP on non-standard ports is found, as sipflow finds it),
and with the per-file ``tshark_extra_opts`` from the ``SUMMARY.tsv`` that sits next to
the capture (if any). Results are cached on disk, keyed by the capture's sha256, the
tshark binary and the command line, so a test session runs tshark once per file.

Usage: ``python -m tests.oracle FILE`` prints the list.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# Bumped whenever the parsing below changes what a cached entry would contain.
ORACLE_FORMAT = 2

# Frames with SIP, minus SIP quoted in ICMP errors (never delivered, RFC 792 / RFC 4443).
DISPLAY_FILTER = "sip && !icmp && !icmpv6"

# Heuristic tables on which tshark 4.0 registers a SIP heuristic, keyed to the short
# name ``--enable-heuristic`` takes (packet-sip.c registers sip_udp/sip_tcp/sip_sctp/sip_stun).
SIP_HEURISTICS = (("udp", "sip_udp"), ("tcp", "sip_tcp"), ("sctp", "sip_sctp"), ("stun", "sip_stun"))

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_PCAPS = REPO_ROOT.parent / "shared" / "pcaps"
"""Public captures shared by the team (with MANIFEST.tsv and SUMMARY.tsv); never copied in."""
SAMPLE_PCAPS = REPO_ROOT / "sample_pcaps"

SUMMARY_NAME = "SUMMARY.tsv"
EXTRA_OPTS_COLUMN = "tshark_extra_opts"


class OracleError(RuntimeError):
    """tshark failed on a capture, or its output could not be read."""


@dataclass(frozen=True, slots=True, order=True)
class OracleMessage:
    """What tshark says about one SIP message (same conventions as ``SipMessage``)."""

    frame: int
    call_id: str
    """Empty when the header is missing."""
    method: str
    """Empty for a response."""
    status: int
    """0 for a request."""
    cseq: int
    """-1 when the header or its number is missing."""
    cseq_method: str


@dataclass(frozen=True, slots=True)
class Tshark:
    """A tshark executable and the options that make it an oracle for sipflow."""

    executable: str
    heuristics: tuple[str, ...]
    identity: str
    """Changes when the binary changes; part of the cache key."""

    @classmethod
    def find(cls) -> Tshark | None:
        executable = shutil.which("tshark")
        if executable is None:
            return None
        return cls(executable, _sip_heuristics(executable), _binary_identity(executable))

    def command(self, path: Path, extra: tuple[str, ...]) -> list[str]:
        enable = [arg for name in self.heuristics for arg in ("--enable-heuristic", name)]
        return [
            self.executable,
            "-n",  # no name resolution: addresses and ports stay numeric
            *enable,
            *extra,
            "-r",
            str(path),
            "-Y",
            DISPLAY_FILTER,
            "-T",
            "json",
            "--no-duplicate-keys",  # several SIP messages in a frame become a list
            "-J",
            "frame sip",
        ]


def _sip_heuristics(executable: str) -> tuple[str, ...]:
    """Short names of the SIP heuristics this tshark has (``-G heuristic-decodes`` rows)."""
    out = _run([executable, "-G", "heuristic-decodes"]).stdout
    tables = {line.split("\t")[0] for line in out.splitlines() if line.split("\t")[1:2] == ["sip"]}
    return tuple(name for table, name in SIP_HEURISTICS if table in tables)


def _binary_identity(executable: str) -> str:
    # Stat, not `tshark -v`: a version run costs half a second per cache hit.
    real = os.path.realpath(executable)
    st = os.stat(real)
    return f"{real}:{st.st_size}:{st.st_mtime_ns}"


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=600)


# -- per-file options from SUMMARY.tsv -------------------------------------------------------


def extra_options(path: Path) -> tuple[str, ...]:
    """``tshark_extra_opts`` for ``path`` from the nearest ``SUMMARY.tsv`` above it."""
    path = path.resolve()
    for parent in path.parents:
        summary = parent / SUMMARY_NAME
        if summary.is_file():
            row = summary_rows(summary).get(path.relative_to(parent).as_posix())
            return tuple(shlex.split(row[EXTRA_OPTS_COLUMN])) if row else ()
    return ()


def summary_rows(summary: Path) -> dict[str, dict[str, str]]:
    """SUMMARY.tsv rows keyed by the ``file`` column (a path relative to its directory)."""
    with summary.open(newline="", encoding="utf-8") as fh:
        return {row["file"]: row for row in csv.DictReader(fh, delimiter="\t")}


# -- running and parsing ---------------------------------------------------------------------


def tshark_messages(path: Path, *, tshark: Tshark | None = None, cache_dir: Path | None = None) -> list[OracleMessage]:
    """Every SIP message tshark sees in ``path``, in frame order.

    ``tshark`` defaults to the one on PATH (raises :class:`OracleError` if none);
    ``cache_dir`` defaults to a per-user directory under the system temp dir.
    """
    tshark = tshark or Tshark.find()
    if tshark is None:
        raise OracleError("tshark not found on PATH")
    extra = extra_options(path)
    cache = (cache_dir or _default_cache_dir()) / f"{_cache_key(path, tshark, extra)}.json"
    if cache.is_file():
        return _load(cache)
    messages = _dissect(path, tshark, extra)
    _store(cache, messages)
    return messages


def _dissect(path: Path, tshark: Tshark, extra: tuple[str, ...]) -> list[OracleMessage]:
    proc = _run(tshark.command(path, extra))
    try:
        packets = json.loads(proc.stdout) if proc.stdout.strip() else []
    except json.JSONDecodeError as exc:
        # A cut-short capture still yields valid JSON for the frames before the cut
        # (and a non-zero exit); only output we cannot read is an error.
        raise OracleError(f"tshark on {path} (exit {proc.returncode}): {proc.stderr.strip()}") from exc
    return [message for packet in packets for message in _packet_messages(packet)]


def _packet_messages(packet: Mapping[str, Any]) -> Iterator[OracleMessage]:
    layers = packet["_source"]["layers"]
    frame = int(_first(layers["frame"]["frame.number"]))
    sips = layers.get("sip", [])
    for sip in sips if isinstance(sips, list) else [sips]:
        yield _message(frame, sip)


def _message(frame: int, sip: Mapping[str, Any]) -> OracleMessage:
    request = _first(sip.get("sip.Request-Line_tree")) or {}
    status_line = _first(sip.get("sip.Status-Line_tree")) or {}
    headers = _first(sip.get("sip.msg_hdr_tree")) or {}
    cseq = _first(headers.get("sip.CSeq_tree")) or {}
    return OracleMessage(
        frame=frame,
        call_id=_first(headers.get("sip.Call-ID")) or "",
        method=_first(request.get("sip.Method")) or "",
        status=int(_first(status_line.get("sip.Status-Code")) or 0),
        cseq=_cseq_number(_first(headers.get("sip.CSeq")), _first(cseq.get("sip.CSeq.seq"))),
        cseq_method=_first(cseq.get("sip.CSeq.method")) or "",
    )


def _cseq_number(header: str | None, seq: str | None) -> int:
    """tshark's CSeq number, or -1 when the header's first token is not ``1*DIGIT``.

    RFC 3261 §20.16: ``CSeq = "CSeq" HCOLON 1*DIGIT LWS Method``. tshark reports 0 for
    ``CSeq: %s REGISTER`` or ``CSeq: \x11 INVITE`` (ndpi fuzz capture); sipflow's
    convention for "not a number" is -1.
    """
    token = (header or "").split(maxsplit=1)[:1]
    if seq is None or not token or not (token[0].isascii() and token[0].isdigit()):
        return -1
    return int(seq)


def _first(value: Any) -> Any:
    """The first occurrence: ``--no-duplicate-keys`` turns a repeated field into a list."""
    return value[0] if isinstance(value, list) else value


# -- cache -----------------------------------------------------------------------------------


def _default_cache_dir() -> Path:
    return Path(tempfile.gettempdir()) / f"sipflow-tshark-oracle-{os.getuid()}"


def _cache_key(path: Path, tshark: Tshark, extra: tuple[str, ...]) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    recipe = json.dumps([ORACLE_FORMAT, tshark.identity, tshark.heuristics, extra, DISPLAY_FILTER])
    return f"{digest.hexdigest()}-{hashlib.sha256(recipe.encode()).hexdigest()[:16]}"


def _load(cache: Path) -> list[OracleMessage]:
    return [OracleMessage(**row) for row in json.loads(cache.read_text(encoding="utf-8"))]


def _store(cache: Path, messages: list[OracleMessage]) -> None:
    cache.parent.mkdir(parents=True, exist_ok=True)
    # Write then rename, so a parallel session never reads a half-written entry.
    tmp = cache.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps([asdict(m) for m in messages]), encoding="utf-8")
    tmp.replace(cache)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m tests.oracle FILE", file=sys.stderr)
        return 2
    for message in tshark_messages(Path(argv[0])):
        print(message)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
