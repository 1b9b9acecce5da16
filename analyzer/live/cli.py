"""``sipflow live``: options in, a :class:`~analyzer.live.run.LiveRun`, signals turned into an
orderly stop. (Added to the ``sipflow`` group by ``analyzer.cli``; ``python -m
analyzer.live`` runs it alone.)"""

from __future__ import annotations

import re
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import click

from analyzer.cli import LIMIT_HELP
from analyzer.correlate.model import Kind
from analyzer.correlate.store import MAX_OPEN
from analyzer.errors import SipflowError, UsageError
from analyzer.limits import Limits
from analyzer.live.hep import DEFAULT_MAX_SIZE, DEFAULT_PORT, DEFAULT_RATE, parse_listen
from analyzer.live.run import LiveConfig, LiveRun, Outputs
from analyzer.live.tcpdump import default_filter
from analyzer.sip.redact import Redaction

_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``5m``, ``1.5h``, ``1d`` → seconds."""
    m = _DURATION.match(text.lower())
    if m is None:
        raise UsageError(f"{text!r}: expected a duration such as 30s, 5m, 1h")
    return float(m[1]) * _UNITS[m[2]]


@contextmanager
def _signals(stop: threading.Event, hurry: Callable[[], None]) -> Iterator[None]:
    """SIGINT/SIGTERM: the first stops the run in order, a second one cuts the draining short."""

    def handler(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            hurry()
        stop.set()

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


@click.command(
    name="live",
    short_help="Watch live SIP (an interface or HEP) and report calls as they end.",
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option("-i", "--interface", "iface", help="Capture on this interface (any: all) through tcpdump.")
@click.option("--bpf", help="Capture filter instead of the default (see --print-filter).")
@click.option(
    "--tcpdump",
    "tcpdump_cmd",
    default="tcpdump",
    show_default=True,
    help="How to run tcpdump, e.g. 'sudo -n tcpdump' (see docs/live.md: CAP_NET_RAW).",
)
@click.option("--print-filter", is_flag=True, help="Print the capture filter that -i would use, and exit.")
@click.option(
    "--hep", "hep_addr", help=f"Receive HEP v2/v3 on udp+tcp [ADDR:]PORT (127.0.0.1 unless given; {DEFAULT_PORT})."
)
@click.option("--hep-key", help="Accept only HEP3 packets carrying this auth key.")
@click.option("--hep-max-size", type=click.IntRange(64, 65_535), default=DEFAULT_MAX_SIZE, show_default=True)
@click.option(
    "--hep-rate", type=click.FloatRange(1), default=DEFAULT_RATE, show_default=True, help="Packets/s per source."
)
@click.option(
    "--jsonl", type=click.Path(dir_okay=False, path_type=Path), help="Append one JSON line per finished call."
)
@click.option("--kind", multiple=True, type=click.Choice([k.value for k in Kind]), help="Write only these kinds.")
@click.option("--duration", help="Stop after this long (30s, 5m, 2h).")
@click.option("--count", type=click.IntRange(1), help="Stop after this many frames / HEP packets.")
@click.option("-q", "--quiet", is_flag=True, help="No terminal view, no line per call (alerts and errors still).")
@click.option("--window", default="15m", show_default=True, help="Rolling window of the KPIs.")
@click.option(
    "--max-open", type=click.IntRange(100), default=MAX_OPEN, show_default=True, help="Open conversations kept."
)
@click.option("--no-alerts", is_flag=True, help="Raise no alerts.")
@click.option("--alert-cmd", help="Run this for each alert (JSON on stdin; no shell; 10 s at most).")
@click.option("--prometheus", "prom_addr", help="Serve metrics on [ADDR:]PORT/metrics (127.0.0.1 unless given).")
@click.option(
    "--report",
    "report_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Rewrite report.html, calls.csv and calls.json here (see --every).",
)
@click.option("--every", default="5m", show_default=True, help="How often --report is rewritten.")
@click.option(
    "--write-pcap", "pcap_dir", type=click.Path(file_okay=False, path_type=Path), help="Keep the capture here."
)
@click.option("--pcap-size", type=click.IntRange(1), default=100, show_default=True, help="MB per --write-pcap file.")
@click.option("--pcap-files", type=click.IntRange(1), default=10, show_default=True, help="--write-pcap files kept.")
@click.option(
    "--engine",
    type=click.Choice(("native", "tshark")),
    default="native",
    show_default=True,
    help="Who reads -i: tcpdump + sipflow's decoder, or tshark (what only Wireshark decodes: SIP over TLS).",
)
@click.option(
    "--tls-keylog",
    type=click.Path(dir_okay=False, path_type=Path),
    help="With --engine tshark: TLS key log (SSLKEYLOGFILE format) to decrypt SIP over TLS.",
)
@click.option(
    "--redact",
    "redact",
    multiple=True,
    metavar="HEADER",
    help="Mask this header's value in every output (repeatable); with it, --write-pcap frames are masked in "
    "place too, Authorization digests included (without it they are kept as captured).",
)
@click.option("--limit", "limit", multiple=True, metavar="NAME=VALUE", help=LIMIT_HELP)
def live(
    iface: str | None,
    bpf: str | None,
    tcpdump_cmd: str,
    print_filter: bool,
    hep_addr: str | None,
    hep_key: str | None,
    hep_max_size: int,
    hep_rate: float,
    jsonl: Path | None,
    kind: tuple[str, ...],
    duration: str | None,
    count: int | None,
    quiet: bool,
    window: str,
    max_open: int,
    no_alerts: bool,
    alert_cmd: str | None,
    prom_addr: str | None,
    report_dir: Path | None,
    every: str,
    pcap_dir: Path | None,
    pcap_size: int,
    pcap_files: int,
    redact: tuple[str, ...],
    engine: str,
    tls_keylog: Path | None,
    limit: tuple[str, ...],
) -> None:
    """Analyse live traffic: sniff an interface (-i) and/or receive HEP (--hep); report each
    call when it ends (--jsonl: the `analyze --format jsonl` lines), until Ctrl-C/SIGTERM."""
    from analyzer.cli import cli_error

    if print_filter:
        click.echo(bpf if bpf is not None else default_filter(iface or "any"))
        return
    try:
        if not iface and not hep_addr:
            raise UsageError("nothing to listen to: give -i INTERFACE and/or --hep [ADDR:]PORT")
        if pcap_dir is not None and not iface:
            raise UsageError("--write-pcap keeps what -i captures: give -i too")
        tshark, keylog = _tshark_options(engine, tls_keylog, iface, pcap_dir)
        cfg = LiveConfig(
            iface=iface,
            bpf=bpf,
            tcpdump=tcpdump_cmd,
            hep=parse_listen(hep_addr) if hep_addr else None,
            hep_key=hep_key,
            hep_max_size=hep_max_size,
            hep_rate=hep_rate,
            jsonl=jsonl,
            kinds=frozenset(kind),
            duration_s=parse_duration(duration) if duration else None,
            count=count,
            window_s=parse_duration(window),
            max_open=max_open,
            alerts=not no_alerts,
            alert_cmd=alert_cmd,
            prometheus=parse_listen(prom_addr) if prom_addr else None,
            report_dir=report_dir,
            report_every_s=parse_duration(every),
            pcap_dir=pcap_dir,
            pcap_size=pcap_size * 1024 * 1024,
            pcap_files=pcap_files,
            redaction=Redaction.of(redact) if redact else None,
            engine=engine,
            tshark=tshark,
            tls_keylog=keylog,
            limits=Limits.parse(limit),
        )
    except SipflowError as exc:
        raise cli_error(exc) from None
    stop = threading.Event()
    run = LiveRun(cfg, _outputs(quiet), stop)
    try:
        with _signals(stop, run.hurry):
            run.run()
    except SipflowError as exc:
        raise cli_error(exc) from None


def _tshark_options(
    engine: str, keylog: Path | None, iface: str | None, pcap_dir: Path | None
) -> tuple[str, Path | None]:
    """tshark's path and the key log, checked before anything starts (both exit 2)."""
    from analyzer.capture.tshark import check_keylog, find_tshark

    if engine != "tshark":
        if keylog is not None:
            raise UsageError("--tls-keylog is read by tshark: give --engine tshark too")
        return "tshark", None
    if not iface:
        raise UsageError("--engine tshark reads an interface: give -i INTERFACE")
    if pcap_dir is not None:
        raise UsageError("--write-pcap keeps tcpdump's frames: not with --engine tshark")
    return find_tshark(), check_keylog(keylog) if keylog is not None else None


def _outputs(quiet: bool) -> Outputs:
    if quiet or sys.stderr is None or not sys.stderr.isatty():
        return Outputs(say=lambda line: click.echo(line, err=True), call_lines=not quiet)
    from rich.console import Console

    from analyzer.live.view import LiveView

    view = LiveView(Console(stderr=True))
    return Outputs(say=view.print, call_lines=True, view=view)
