"""Time ``sipflow analyze`` on a directory of rotated captures against the same capture whole.

A benchmark capture is cut into files by ``editcap -c`` (as ``tcpdump -C``/``dumpcap -b``
would have rotated it), once as pcap and once as pcapng, in a temporary directory. Each
directory and the whole file are analysed with ``--format json`` (one process, and ``--jobs``
left to its default); tshark's SIP statistics on the files merged by ``mergecap`` stand beside
them, as the peer that needs the files merged first. Prints figures; asserts nothing.

    .venv/bin/python benchmarks/rotated.py [--capture FILE] [--files N] [--repeat N]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench import DATA, Plan, Tool, compile_sipflow, counts_for, found_tshark, measure, warm_page_cache


def cut(capture: Path, files: int, packets: int, fmt: str, into: Path) -> Path:
    """``capture`` cut by editcap into ``files`` files of format ``fmt`` in a new directory."""
    folder = into / fmt
    folder.mkdir()
    per_file = -(-packets // files)
    subprocess.run(["editcap", "-F", fmt, "-c", str(per_file), str(capture), str(folder / f"part.{fmt}")], check=True)
    return folder


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--capture", type=Path, default=DATA / "rtp_heavy.pcap")
    parser.add_argument("--files", type=int, default=4, help="how many files to cut it into (4)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per command; best time kept (3)")
    args = parser.parse_args(argv)
    if not args.capture.is_file() or not shutil.which("editcap"):
        print(f"need {args.capture} (benchmarks/make_captures.sh) and editcap (tshark's package)", file=sys.stderr)
        return 2
    sipflow = str(Path(sys.executable).parent / "sipflow")
    print(f"note: {compile_sipflow()}")
    counts = counts_for(args.capture)
    plan = Plan(repeat=args.repeat, long_s=60, timeout=1800, check=False)
    print(
        f"{args.capture.name}: {counts.packets:,} packets, {counts.sip_messages:,} SIP messages, cut into {args.files}"
    )
    with tempfile.TemporaryDirectory(prefix="sipflow-rotated-") as tmp:
        folders = {fmt: cut(args.capture, args.files, counts.packets, fmt, Path(tmp)) for fmt in ("pcap", "pcapng")}
        inputs = [
            ("whole file", args.capture),
            *((f"{n} {fmt} files", f) for fmt, f in folders.items() for n in [args.files]),
        ]
        print(f"  {'input':<16} {'command':<22} {'seconds':>8} {'peak RSS MiB':>13}  tshark found")
        for label, path in inputs:
            for f in path.iterdir() if path.is_dir() else [path]:
                warm_page_cache(f)
            tools = [
                Tool("sipflow analyze -j1", lambda p: [sipflow, "analyze", str(p), "--format", "json", "-j", "1"]),
                Tool("sipflow analyze", lambda p: [sipflow, "analyze", str(p), "--format", "json"]),
            ]
            if path.is_dir() and shutil.which("mergecap") and shutil.which("tshark"):
                merged = sorted(str(f) for f in path.iterdir())
                line = f"mergecap -w - {' '.join(merged)} | tshark -q -z sip,stat -r -"
                tools.append(
                    Tool("mergecap | tshark", lambda _p, s=line: ["sh", "-c", s], found=found_tshark, keep_stdout=True)
                )
            for tool in tools:
                r = measure(tool, path, plan)
                shown = r.error or r.found or ""
                print(f"  {label:<16} {tool.name:<22} {r.seconds:>8.2f} {r.maxrss_mib:>13.1f}  {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
