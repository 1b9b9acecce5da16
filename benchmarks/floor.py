"""How fast can pure Python list SIP at all? A floor to read the `messages` figures against.

The least a lister can do per message, with none of sipflow's checks: a classic little-endian
pcap read whole, each record taken as Ethernet / IPv4 without options / UDP at fixed offsets,
three regular expressions (start line, Call-ID, CSeq), one CSV row joined. No VLANs, no IPv6,
no fragments, no TCP, no HEP, no validation of the start line, no compact header forms, no
Content-Length, no defects, no CSV quoting or defusing, no message objects. Its output is not
sipflow's and it is right only on captures such as the all-SIP benchmark's; it is the speed
that any listing in Python would have to beat, printed beside `sipflow messages` on the same
file, in the same run:

    .venv/bin/python benchmarks/floor.py benchmarks/data/all_sip.pcap --repeat 5
"""

from __future__ import annotations

import argparse
import gc
import re
import resource
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path

_RECORD = struct.Struct("<IIII").unpack_from
_START = re.compile(rb"([^ \r\n]+) ([^ \r\n]+) ([^\r\n]*)\r\n")
_CALL_ID = re.compile(rb"\nCall-ID:[ \t]*([^\r\n]*)", re.IGNORECASE)
_CSEQ = re.compile(rb"\nCSeq:[ \t]*([^\r\n]*)", re.IGNORECASE)


def bare_rows(data: bytes) -> list[str]:
    """One CSV row per SIP message over Ethernet/IPv4/UDP in the pcap ``data``."""
    rows: list[str] = []
    pos, end, frame = 24, len(data), 0
    while pos + 16 <= end:
        sec, usec, incl, _ = _RECORD(data, pos)
        pos += 16
        frame += 1
        p = data[pos : pos + incl]
        pos += incl
        if len(p) < 43 or p[12:14] != b"\x08\x00" or p[23] != 17:
            continue
        sip = p[42:]
        start = _START.match(sip)
        if start is None:
            continue
        call_id = _CALL_ID.search(sip)
        cseq = _CSEQ.search(sip)
        src = f"{p[26]}.{p[27]}.{p[28]}.{p[29]}:{p[34] << 8 | p[35]}"
        dst = f"{p[30]}.{p[31]}.{p[32]}.{p[33]}:{p[36] << 8 | p[37]}"
        rows.append(
            ",".join(
                (
                    str(frame),
                    f"{sec}.{usec:06d}",
                    src,
                    dst,
                    "udp",
                    start.group(1).decode(errors="replace"),
                    start.group(2).decode(errors="replace"),
                    call_id.group(1).decode(errors="replace") if call_id else "",
                    cseq.group(1).decode(errors="replace") if cseq else "",
                )
            )
        )
    return rows


def _floor_run(path: Path) -> tuple[float, float, int]:
    """(wall s, CPU s, rows) of one run of the floor lister in this process, reading included."""
    gc.disable()
    cpu, wall = time.process_time(), time.perf_counter()
    rows = bare_rows(path.read_bytes())
    return time.perf_counter() - wall, time.process_time() - cpu, len(rows)


def _sipflow_run(path: Path, jobs: int) -> float:
    """Wall seconds of ``sipflow messages --format csv -j JOBS`` to /dev/null, start-up included."""
    sipflow = Path(sys.executable).with_name("sipflow")
    start = time.perf_counter()
    subprocess.run(
        [str(sipflow), "messages", "--format", "csv", "-j", str(jobs), "-o", "/dev/null", str(path)], check=True
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("capture", type=Path, help="a classic little-endian pcap of Ethernet (all_sip.pcap)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each, taken in turn (default 3)")
    args = parser.parse_args()
    floor: list[float] = []
    cpu: list[float] = []
    one: list[float] = []
    two: list[float] = []
    rows = 0
    for _ in range(args.repeat):
        wall, used, rows = _floor_run(args.capture)
        floor.append(wall)
        cpu.append(used)
        one.append(_sipflow_run(args.capture, 1))
        two.append(_sipflow_run(args.capture, 2))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{args.capture}: {rows:,} SIP messages over Ethernet/IPv4/UDP; best (median) of {args.repeat}")
    for name, times in (
        ("floor lister, in-process", floor),
        ("sipflow messages -j1 (start-up included)", one),
        ("sipflow messages -j2 (start-up included)", two),
    ):
        best, median = min(times), statistics.median(times)
        print(f"  {name:42} {best:6.2f} s ({median:.2f})  {rows / best:>9,.0f} msg/s")
    print(f"  floor CPU {min(cpu):.2f} s: {min(cpu) / rows * 1e6:.1f} µs a message; peak RSS {peak:.0f} MiB")


if __name__ == "__main__":
    main()
