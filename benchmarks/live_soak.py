"""Soak `sipflow live`: a long SIPp run between two network namespaces, captured by sipflow on
one end of the veth pair; every 30 s it prints the calls reported per second and sipflow's
resident memory, which must stay flat once the first calls have lingered out (32 s).

    sudo .venv/bin/python benchmarks/live_soak.py [--minutes 10] [--cps 50] [--hold-ms 1000]

Needs root (namespaces), ip, sipp, tcpdump. Everything runs inside namespaces it creates
(``sfl-soak-c``, ``sfl-soak-s``) and deletes at the end; SIPp and sipflow have time limits.
Nothing is asserted: it prints figures (STYLE.md, habit 10).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.live.netns import Live, NsPair, can_run, ns_cmd, rss_kib, sipp  # noqa: E402


def scrape(ns: str, port: int) -> dict[str, float]:
    """sipflow's own counters, read from its /metrics inside the namespace."""
    code = (
        "import urllib.request;"
        f"print(urllib.request.urlopen('http://127.0.0.1:{port}/metrics', timeout=5).read().decode())"
    )
    out = subprocess.run(ns_cmd(ns, sys.executable, "-c", code), capture_output=True, text=True, timeout=20).stdout
    values: dict[str, float] = {}
    for line in out.splitlines():
        if line and not line.startswith("#") and "{" not in line:
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far (/proc/PID/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def count_lines(path: Path) -> int:
    if not path.exists():
        return 0
    with path.open("rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0, help="how long SIPp makes calls")
    ap.add_argument("--cps", type=int, default=50, help="calls per second")
    ap.add_argument("--hold-ms", type=int, default=1000, help="how long each call lasts after its ACK")
    ap.add_argument("--every", type=float, default=30.0, help="seconds between samples")
    ap.add_argument(
        "--window",
        default="15m",
        help="sipflow's KPI window: it holds the reports of that long (about 1 KB each), so memory "
        "grows until the window is full; a short one shows a short run flat",
    )
    args = ap.parse_args()
    why = can_run()
    if why:
        print(f"live_soak: {why}", file=sys.stderr)
        return 2
    run_s = int(args.minutes * 60)
    calls = int(run_s * args.cps)
    limit = run_s + 120
    work = Path(tempfile.mkdtemp(prefix="sipflow-soak-"))
    jsonl = work / "calls.jsonl"
    pair = NsPair("soak").up()
    live = None
    procs: list[subprocess.Popen[bytes]] = []
    try:
        live = Live(
            pair.uas_ns,
            *("-i", pair.uas_if, "--jsonl", str(jsonl), "--quiet", "--prometheus", "9999"),
            *("--duration", str(limit), "--window", args.window),
            cwd=work,
        )
        live.wait_for("listening on", 10)
        procs.append(sipp(pair.uas_ns, "uas.xml", "-i", pair.uas_ip, "-p", "5060", cwd=work, limit_s=limit))
        time.sleep(0.5)
        uac_args = ("-i", pair.uac_ip, "-p", "5060", "-m", str(calls), "-r", str(args.cps), "-d", str(args.hold_ms))
        procs.append(sipp(pair.uac_ns, "uac.xml", *uac_args, f"{pair.uas_ip}:5060", cwd=work, limit_s=limit))
        print(
            f"soak: {calls} calls at {args.cps}/s for {run_s} s, {args.hold_ms} ms each, KPI window {args.window}; "
            f"sipflow pid {live.pid}"
        )
        print(
            f"{'t_s':>6} {'reported':>9} {'calls/s':>8} {'open':>6} {'window':>7} {'sip_msgs':>9} {'cpu_%':>6} {'rss_MiB':>8}"
        )
        t0 = time.monotonic()
        last_n, last_t, last_cpu = 0, t0, cpu_s(live.pid)
        rss: list[tuple[float, int]] = []
        while procs[1].poll() is None or time.monotonic() - t0 < run_s + 40:
            time.sleep(args.every - ((time.monotonic() - t0) % args.every))
            now = time.monotonic()
            n = count_lines(jsonl)
            m = scrape(pair.uas_ns, 9999)
            kib = rss_kib(live.pid)
            cpu = cpu_s(live.pid)
            rss.append((now - t0, kib))
            rate = (n - last_n) / (now - last_t)
            print(
                f"{now - t0:6.0f} {n:9d} {rate:8.1f} {m.get('sipflow_conversations_open', -1):6.0f} "
                f"{m.get('sipflow_window_attempts', -1):7.0f} "
                f"{m.get('sipflow_sip_messages_total', -1):9.0f} {100 * (cpu - last_cpu) / (now - last_t):6.1f} "
                f"{kib / 1024:8.1f}",
                flush=True,
            )
            last_n, last_t, last_cpu = n, now, cpu
            if procs[1].poll() is not None and n >= calls:
                break
        rc = live.stop(signal.SIGTERM, limit_s=60)
        total = count_lines(jsonl)
        outcomes: dict[str, int] = {}
        with jsonl.open() as f:
            for line in f:
                d = json.loads(line)
                key = f"alert:{d['alert']}" if "alert" in d else f"{d['kind']}:{d['outcome']}"
                outcomes[key] = outcomes.get(key, 0) + 1
        print(f"soak: sipflow exit {rc}; {total} lines: {outcomes}")
        print("soak: " + next((line for line in reversed(live.lines) if "live:" in line), "(no summary)"))
        steady = [k for t, k in rss if t >= 60]
        if len(steady) >= 2:
            print(
                f"soak: RSS after the first minute {min(steady) / 1024:.1f}-{max(steady) / 1024:.1f} MiB "
                f"(first {steady[0] / 1024:.1f}, last {steady[-1] / 1024:.1f})"
            )
        return 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                p.wait(timeout=10)
        if live is not None:
            live.kill()
        pair.down()


if __name__ == "__main__":
    sys.exit(main())
