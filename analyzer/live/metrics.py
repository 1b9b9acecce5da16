"""``--prometheus ADDR:PORT``: counters and rolling KPIs in the Prometheus text format (0.0.4).

The main loop renders the text once a second (:func:`render`) and leaves it in a
:class:`MetricsPage`; the HTTP thread only hands out the latest text, so no lock is
needed and a scrape never waits for, or slows, the analysis. Format reference:
https://prometheus.io/docs/instrumenting/exposition_formats/ (``# HELP``, ``# TYPE``,
``name{label="value"} number``; label values escape backslash, quote and newline).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from analyzer.errors import UsageError
from analyzer.report.kpi import Kpis

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Sample = tuple[Mapping[str, str], float]


@dataclass(frozen=True, slots=True)
class Metric:
    name: str
    kind: str
    """``counter`` or ``gauge``."""
    help: str
    samples: tuple[Sample, ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def render(metrics: Iterable[Metric]) -> str:
    lines: list[str] = []
    for m in metrics:
        lines.append(f"# HELP {m.name} {m.help}")
        lines.append(f"# TYPE {m.name} {m.kind}")
        for labels, value in m.samples:
            inner = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
            lines.append(f"{m.name}{{{inner}}} {_number(value)}" if inner else f"{m.name} {_number(value)}")
    return "\n".join(lines) + "\n"


def counter(name: str, help_: str, value: float) -> Metric:
    return Metric(name, "counter", help_, (({}, value),))


def gauge(name: str, help_: str, value: float) -> Metric:
    return Metric(name, "gauge", help_, (({}, value),))


def labelled(name: str, kind: str, help_: str, label: str, values: Mapping[str, float]) -> Metric:
    return Metric(name, kind, help_, tuple(({label: k}, v) for k, v in sorted(values.items())))


_KPI_PERCENT = ("asr", "ner", "ser", "seer", "isa", "scr", "ira")


def kpi_metrics(k: Kpis, window_s: float) -> list[Metric]:
    """The rolling KPIs (``None`` ones, e.g. ASR with no calls, are left out, not zero)."""
    values: dict[str, Any] = {name: getattr(k, name) for name in _KPI_PERCENT}
    percent = {name: v for name, v in values.items() if v is not None}
    out = [
        gauge("sipflow_window_seconds", "Length of the rolling window the KPIs are computed over.", window_s),
        gauge("sipflow_window_attempts", "Call attempts that ended in the window.", k.attempts),
        gauge("sipflow_window_answered", "Answered calls that ended in the window.", k.answered),
        gauge("sipflow_window_failed", "Calls with a breaking response that ended in the window.", k.failed),
        gauge("sipflow_window_registrations", "Registrations that ended in the window.", k.registrations),
        labelled("sipflow_kpi_percent", "gauge", "RFC 6076 / ITU-T E.411 ratios over the window.", "kpi", percent),
    ]
    timings = (
        ("sipflow_acd_seconds", "Average call duration (SDT) of answered calls in the window.", k.acd_s),
        ("sipflow_pdd_median_ms", "Median post-dial delay (SRD, RFC 6076 4.2) in the window.", k.pdd_median_ms),
        ("sipflow_pdd_p95_ms", "95th percentile post-dial delay in the window.", k.pdd_p95_ms),
        ("sipflow_sdd_median_ms", "Median session disconnect delay (RFC 6076 4.5) in the window.", k.sdd_median_ms),
        ("sipflow_rrd_median_ms", "Median registration request delay (RFC 6076 4.1) in the window.", k.rrd_median_ms),
    )
    out += [gauge(name, help_, v) for name, help_, v in timings if v is not None]
    return out


@dataclass(frozen=True, slots=True)
class PeerRow:
    """One peer's calls in the rolling window (see :func:`analyzer.live.stats.peer_rows`)."""

    peer: str
    """The next hop of the caller (``ip:port``), or ``other`` for every peer past the busiest."""
    kpis: Kpis
    top_failure: str
    """The most frequent final code of its failed calls, with its count: ``503 (4)``; ``''``."""
    failed_by_class: Mapping[str, int]
    """Failed calls by final code class: ``4xx``, ``5xx``, ``6xx``, ``none`` (no final: timeout)."""


def peer_metrics(rows: Iterable[PeerRow]) -> list[Metric]:
    """Per-peer gauges over the window. The ``peer`` label takes at most MAX_PEERS + 1 values
    (analyzer.live.stats: the busiest peers by attempts, then ``other``)."""
    rows = list(rows)
    failed = tuple(
        ({"peer": row.peer, "class": cls}, float(n)) for row in rows for cls, n in sorted(row.failed_by_class.items())
    )
    return [
        Metric(
            "sipflow_peer_attempts",
            "gauge",
            "Call attempts that ended in the window, per peer (next hop of the caller; the rest: other).",
            tuple(({"peer": row.peer}, float(row.kpis.attempts)) for row in rows),
        ),
        Metric(
            "sipflow_peer_answered",
            "gauge",
            "Answered calls that ended in the window, per peer.",
            tuple(({"peer": row.peer}, float(row.kpis.answered)) for row in rows),
        ),
        Metric("sipflow_peer_failed", "gauge", "Failed calls in the window, per peer and final code class.", failed),
    ]


@dataclass(slots=True)
class MetricsPage:
    """The latest rendered text; replaced whole by the main loop (an atomic assignment)."""

    text: str = ""
    scrapes: int = field(default=0)


def _handler(page: MetricsPage) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "sipflow"

        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] not in ("/metrics", "/"):
                self.send_error(404, "only /metrics here")
                return
            body = page.text.encode("utf-8")
            page.scrapes += 1
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return  # scrapes are not news

    return Handler


class _Server6(ThreadingHTTPServer):
    address_family = socket.AF_INET6


class MetricsServer:
    """A small HTTP server on its own thread serving :class:`MetricsPage` at ``/metrics``."""

    def __init__(self, host: str, port: int, page: MetricsPage) -> None:
        server = _Server6 if ":" in host else ThreadingHTTPServer
        try:
            self.httpd = server((host, port), _handler(page))
        except OSError as exc:
            raise UsageError(f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}") from None
        self.httpd.daemon_threads = True
        self.host = f"[{host}]" if ":" in host else host
        self.port = int(self.httpd.server_address[1])
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.25}, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self.httpd.shutdown()
            self._thread.join(timeout=2.0)
        self.httpd.server_close()
