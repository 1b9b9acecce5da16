"""Stands in for tcpdump in the tests that need no root: says what tcpdump says on stderr,
writes the capture named by $FAKE_PCAP to stdout, then waits for SIGTERM (or exits at
once with $FAKE_FAIL's message and code 1, as tcpdump does on a bad interface)."""

from __future__ import annotations

import os
import signal
import sys
import time


def main() -> int:
    fail = os.environ.get("FAKE_FAIL")
    if fail:
        print(f"tcpdump: {fail}", file=sys.stderr, flush=True)
        print("(No such device exists)", file=sys.stderr, flush=True)
        return 1
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    print(
        "tcpdump: listening on fake0, link-type EN10MB (Ethernet), snapshot length 262144 bytes",
        file=sys.stderr,
        flush=True,
    )
    with open(os.environ["FAKE_PCAP"], "rb") as f:
        data = f.read()
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()
    deadline = time.monotonic() + float(os.environ.get("FAKE_LIFETIME", "30"))
    while not stop and time.monotonic() < deadline:
        time.sleep(0.05)
    print(f"{os.environ.get('FAKE_FRAMES', '0')} packets captured", file=sys.stderr, flush=True)
    print("0 packets dropped by kernel", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
