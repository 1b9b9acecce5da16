"""The run's numbers, as Prometheus metrics and as the closing summary line."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from analyzer.live.metrics import Metric, counter, gauge, kpi_metrics, labelled, render

if TYPE_CHECKING:
    from analyzer.live.run import LiveRun


def metrics(run: LiveRun) -> list[Metric]:
    eng = run.engine
    st = eng.decoder.stats
    skipped = {k: float(v) for k, v in st.frames_by_reason.items() if k != "sip"}
    outcomes = Counter({k: float(v) for k, v in run.summary.reported.items()})
    out = [
        counter("sipflow_frames_total", "Frames and HEP packets decoded.", st.frames),
        counter("sipflow_bytes_total", "Bytes of the frames and HEP packets decoded.", st.bytes),
        counter("sipflow_sip_messages_total", "SIP messages decoded.", st.sip_messages),
        counter(
            "sipflow_malformed_total", "Bytes that started like SIP but were not a SIP message.", eng.counters.malformed
        ),
        labelled("sipflow_frames_skipped_total", "counter", "Frames without SIP, by reason.", "reason", skipped),
        labelled(
            "sipflow_conversations_total", "counter", "Conversations reported, by kind:outcome.", "outcome", outcomes
        ),
        gauge("sipflow_conversations_open", "Conversations in progress (in the call store).", eng.open_conversations),
        counter(
            "sipflow_conversations_evicted_total",
            "Open conversations reported early because the store was full (--max-open).",
            eng.store.evicted,
        ),
        counter(
            "sipflow_conversations_split_total",
            "Conversations reported early because they never went quiet.",
            eng.counters.split,
        ),
        counter("sipflow_retransmissions_total", "SIP retransmissions seen.", eng.store.retransmissions),
        counter("sipflow_alerts_total", "Alerts raised.", run.summary.alerts),
    ]
    if run.hep is not None:
        out += [
            counter("sipflow_hep_received_total", "HEP packets received.", run.hep.received),
            labelled(
                "sipflow_hep_dropped_total",
                "counter",
                "HEP packets refused, by reason.",
                "reason",
                {k: float(v) for k, v in run.hep.dropped.items()},
            ),
        ]
    if run.alerts is not None:
        raised = {k: float(v) for k, v in run.alerts.raised.items()}
        out.append(labelled("sipflow_alerts_by_kind_total", "counter", "Alerts raised, by kind.", "kind", raised))
    return out + kpi_metrics(run.kpis(), run.cfg.window_s)


def metrics_text(run: LiveRun) -> str:
    return render(metrics(run))


def summary_line(run: LiveRun) -> str:
    s = run.summary
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(s.reported.items())) or "none"
    parts = [
        f"sipflow: live: {s.frames} frames, {s.sip_messages} SIP messages, "
        f"{sum(s.reported.values())} conversations reported ({outcomes})",
        f"{s.evicted} evicted",
        f"{s.alerts} alerts",
    ]
    if run.jsonl is not None:
        parts.append(f"{s.written} lines written to {run.jsonl.path}")
    tcpdump = run.tcpdump
    if tcpdump is not None and tcpdump.stats.captured is not None:
        parts.append(
            f"tcpdump: {tcpdump.stats.captured} captured, {tcpdump.stats.dropped_by_kernel or 0} dropped by kernel"
        )
    if run.hep is not None:
        dropped = ", ".join(f"{k} {v}" for k, v in sorted(run.hep.dropped.items())) or "none dropped"
        parts.append(f"HEP: {run.hep.received} received, {dropped}")
    if run.alert_cmd is not None and run.alert_cmd.dropped:
        parts.append(f"--alert-cmd: {run.alert_cmd.dropped} not run")
    return "; ".join(parts)
