"""The self-contained HTML report: one file, no network, data as JSON, views built by inline JS.

The page is ``templates/report.html.j2`` with ``report.css`` and ``report.js`` inlined. Python
computes everything the page shows (KPIs, outcome counts, per-message retransmission flags,
which message broke each call); the page's script only draws it: the dashboard charts, the
call table (one page of rows at a time, so 100 000 calls stay usable) and, when a call is
opened, its ladder diagram.

Everything from the wire is attacker-controlled (display names, Call-IDs, reason phrases,
whole messages). It reaches the page only as JSON inside ``<script type="application/json">``
with ``<``, ``>``, ``&``, U+2028 and U+2029 escaped, and the script writes it with
``textContent``, never as markup. A Content-Security-Policy with the hashes of the two inline
blocks backs that up: no other script runs and nothing is fetched. Digest credentials in
``Authorization`` / ``Proxy-Authorization`` headers, and the headers named by ``--redact``,
are masked before they are embedded (``analyzer.sip.redact``).

The data (:func:`report_data`, ``version`` 1): ``capture``, ``kpi``, ``summary`` as in the JSON
report; ``endpoints`` (ip:port strings) and ``texts`` (explanations and hints), each string once;
``calls``, one ``call_dict`` per conversation whose breaking and finding ``explanation``/``hint``
are indexes into ``texts``, plus ``t_ms`` (start, ms after the first packet), ``msg_first`` and
``msg_count`` (its slice of ``messages``), ``breaking_index`` and ``finding_indexes`` (positions in
that slice, -1 for none); ``messages``, one list per message in ``MESSAGE_FIELDS`` order, every
message once, grouped by conversation in capture order; ``messages_kept``, false when the
messages were not kept at all (``sipflow live --report``): the page says so instead of a ladder.

Usage: ``python -m analyzer.report.html CAPTURE [OUT.html]`` writes a report;
``python -m analyzer.report.html --screenshot CAPTURE [OUTDIR]`` writes ``dashboard.png`` and
``ladder.png`` (headless chromium) under OUTDIR (default ``reports/screenshots``).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from analyzer.analysis import Analysis
from analyzer.correlate.model import hostport
from analyzer.correlate.store import method_of, top_branch
from analyzer.diagnose.verdict import CallReport
from analyzer.report.calls import call_dict, capture_dict, redact_reports, security_dict, summary_dict
from analyzer.report.columns import iso_time
from analyzer.report.kpi import kpis
from analyzer.sip.message import SipMessage
from analyzer.sip.redact import DEFAULT, Redaction
from analyzer.sip.redact import REDACTED as REDACTED  # re-exported: the page's marker
from analyzer.sip.redact import mask_credentials as mask_credentials  # re-exported (moved there)

DATA_VERSION = 1
RAW_LIMIT = 8192
"""Bytes of one raw message kept in the report; the rest is cut with a note."""
RAW_BUDGET = 96 * 1024 * 1024
"""Characters of raw text in one report. Past it, raw text is left out (failed calls keep
theirs first): browsers cannot hold strings much over 512 MiB, and a page that big is of no use."""

MESSAGE_FIELDS = ("frame", "t_ms", "src", "dst", "label", "cseq", "retrans", "sdp", "raw")
"""One message in the data: a list in this order; ``src``/``dst`` index ``endpoints``."""

_SCRIPT_CLOSE = re.compile(r"</script", re.IGNORECASE)
# Outside JSON strings these characters cannot occur, inside them the \\u form means the same.
_JSON_ESCAPES = tuple((c, f"\\u{ord(c):04x}") for c in "&<>\u2028\u2029")


# -- JSON for the page -----------------------------------------------------------------------


def embed_json(data: Any) -> str:
    """JSON that is inert inside ``<script type="application/json">`` (no ``</script>`` breakout,
    no ``<!--`` parser states, no line separators that older JS engines choke on)."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    for char, escaped in _JSON_ESCAPES:
        text = text.replace(char, escaped)  # str.replace is memcpy-fast; str.translate is not
    return text


# -- credentials ------------------------------------------------------------------------------


def raw_text(msg: SipMessage, limit: int = RAW_LIMIT, redaction: Redaction = DEFAULT) -> str:
    """The message as text for the page: credentials and ``redaction``'s headers masked, cut at
    ``limit`` bytes."""
    raw = msg.raw
    text = redaction.text(raw.decode("utf-8", errors="replace"))
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    cut = data[:limit].decode("utf-8", errors="ignore")
    return f"{cut}\n… ({len(data) - limit} more bytes not shown; frame {msg.frame} in the capture)"


# -- per-message facts ------------------------------------------------------------------------


def retransmission_flags(messages: Sequence[SipMessage]) -> list[bool]:
    """True for each message that repeats an earlier one of its transaction.

    The same keys as the call store: a request repeats one with the same top Via branch,
    CSeq and method (RFC 3261 §17.2.3); a response repeats one of its transaction with the
    same status and To (a 2xx re-sent by the UAS, §13.3.1.4, has the same To tag). The
    ACK of a non-2xx final belongs to the INVITE transaction (§17.1.1.3).
    """
    requests: set[tuple[str, int, str]] = set()
    responses: set[tuple[str, int, str, int, str]] = set()
    flags: list[bool] = []
    for msg in messages:
        branch = top_branch(msg)
        method = method_of(msg)
        if msg.status == 0:
            key = (branch, msg.cseq, method)
            flags.append(key in requests)
            requests.add(key)
        else:
            rkey = (branch, msg.cseq, method, msg.status, msg.headers.get("to") or "")
            flags.append(rkey in responses)
            responses.add(rkey)
    return flags


def _has_sdp(msg: SipMessage) -> bool:
    return bool(msg.body) and "sdp" in (msg.headers.get("content-type") or "").lower()


def _message_index(msgs: Sequence[SipMessage], frame: int | None, code: int | None) -> int:
    """Index of the message a verdict names. A TCP segment can complete several messages,
    so the frame alone is not enough: the status must match too (0 for a request)."""
    if frame is None:
        return -1
    for i, m in enumerate(msgs):
        if m.origin.frame == frame and (code is None or m.status == code):
            return i
    return next((i for i, m in enumerate(msgs) if m.origin.frame == frame), -1)


# -- the data ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Table:
    """Strings stored once in the data (endpoints, explanations) and referred to by index."""

    index: dict[str, int]

    def of(self, text: str) -> int:
        return self.index.setdefault(text, len(self.index))


def _intern_texts(entry: dict[str, Any], texts: _Table) -> None:
    """Explanations and hints repeat across calls (the same failure, again and again)."""
    items = [entry["breaking"]] if entry["breaking"] is not None else []
    for item in items + entry["findings"]:
        item["explanation"] = texts.of(item["explanation"])
        item["hint"] = texts.of(item["hint"])


def _ms(ns: int) -> float:
    return round(ns / 1_000_000, 3)


def _call_order(calls: Sequence[CallReport]) -> Iterator[int]:
    """Failed calls first: they keep their raw text when the report hits its budget."""
    yield from (i for i, r in enumerate(calls) if r.breaking is not None)
    yield from (i for i, r in enumerate(calls) if r.breaking is None)


def _raw_allowance(a: Analysis, limit: int, budget: int, redaction: Redaction) -> list[list[str | None]]:
    allowance: list[list[str | None]] = [[] for _ in a.calls]
    used = 0
    for i in _call_order(a.calls):
        texts: list[str | None] = []
        for msg in a.messages_of(a.calls[i]):
            text = raw_text(msg, limit, redaction) if used < budget else None
            if text is None or used + len(text) > budget:
                texts.append(None)
                continue
            used += len(text)
            texts.append(text)
        allowance[i] = texts
    return allowance


def report_data(
    a: Analysis,
    *,
    title: str | None = None,
    raw_limit: int = RAW_LIMIT,
    raw_budget: int = RAW_BUDGET,
    redaction: Redaction = DEFAULT,
    messages_kept: bool = True,
) -> dict[str, Any]:
    """Everything the page shows, as JSON-ready values (``render_html`` embeds exactly this).

    ``redaction``: credentials are masked in any case; the headers it names are masked in the
    raw messages and in every call field and text that shows their values. ``messages_kept``:
    False when ``a`` holds no messages by design (live mode), not because a call had none."""
    st = a.stats
    first = st.first_ts_ns if st.first_ts_ns is not None else min((r.start_ns for r in a.calls), default=0)
    last = max(st.last_ts_ns or first, max((r.end_ns for r in a.calls), default=first))
    endpoints, texts = _Table({}), _Table({})
    raws = _raw_allowance(a, raw_limit, raw_budget, redaction)
    shown = redact_reports(a.calls, redaction, a.messages_of)
    hide_cseq = redaction.masks("cseq")
    calls: list[dict[str, Any]] = []
    messages: list[list[Any]] = []
    for report, public, raw in zip(a.calls, shown, raws, strict=True):
        msgs = a.messages_of(report)
        b = report.breaking
        entry = call_dict(public)
        _intern_texts(entry, texts)
        entry["t_ms"] = _ms(report.start_ns - first)
        entry["msg_first"] = len(messages)
        entry["msg_count"] = len(msgs)
        entry["breaking_index"] = _message_index(msgs, b.frame, b.code) if b is not None else -1
        entry["finding_indexes"] = [_message_index(msgs, f.frame, f.code) for f in report.findings]
        calls.append(entry)
        for msg, retrans, text in zip(msgs, retransmission_flags(msgs), raw, strict=True):
            o = msg.origin
            messages.append(
                [
                    o.frame,
                    _ms(o.ts_ns - report.start_ns),
                    endpoints.of(hostport(o.src_ip, o.src_port)),
                    endpoints.of(hostport(o.dst_ip, o.dst_port)),
                    msg.label,
                    REDACTED if hide_cseq else f"{msg.cseq} {msg.cseq_method}".strip(),
                    int(retrans),
                    int(_has_sdp(msg)),
                    text,
                ]
            )
    capture = capture_dict(a)
    capture.update(
        first=iso_time(first) if st.frames else None,
        last=iso_time(last) if st.frames else None,
        span_s=round((last - first) / 1e9, 6),
        conversations=len(a.calls),
    )
    return {
        "version": DATA_VERSION,
        "title": title or default_title(a),
        "capture": capture,
        "kpi": asdict(kpis(a.calls)),
        "summary": summary_dict(a),
        "security": [security_dict(f) for f in a.security],
        "endpoints": list(endpoints.index),
        "texts": list(texts.index),
        "message_fields": list(MESSAGE_FIELDS),
        "calls": calls,
        "messages": messages,
        "messages_kept": messages_kept,
    }


def default_title(a: Analysis) -> str:
    return f"sipflow report: {Path(a.path).name}"


# -- the page ---------------------------------------------------------------------------------


def _templates() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("analyzer.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


def _csp_hash(text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


def _asset(env: jinja2.Environment, name: str) -> str:
    loader = env.loader
    assert loader is not None
    source, _, _ = loader.get_source(env, name)
    if _SCRIPT_CLOSE.search(source) or "<!--" in source:
        raise ValueError(f"{name} must not contain '</script' or '<!--'")
    return source


def render_html(
    analysis: Analysis,
    *,
    title: str | None = None,
    raw_limit: int = RAW_LIMIT,
    raw_budget: int = RAW_BUDGET,
    redaction: Redaction = DEFAULT,
    messages_kept: bool = True,
) -> str:
    """The whole report as one HTML document (no external resources)."""
    env = _templates()
    css = _asset(env, "report.css")
    js = _asset(env, "report.js")
    data = report_data(
        analysis,
        title=title,
        raw_limit=raw_limit,
        raw_budget=raw_budget,
        redaction=redaction,
        messages_kept=messages_kept,
    )
    # default-src 'none': the page loads nothing, not even by accident; only our two
    # inline blocks (by hash) may style and script it (CSP Level 3 §6.7.3).
    csp = f"default-src 'none'; style-src {_csp_hash(css)}; script-src {_csp_hash(js)}; img-src data:"
    return env.get_template("report.html.j2").render(
        title=data["title"],
        csp=csp,
        css=Markup(css),
        js=Markup(js),
        data=Markup(embed_json(data)),
    )


def write_html(analysis: Analysis, path: Path, *, title: str | None = None, redaction: Redaction = DEFAULT) -> None:
    """Write the report atomically: a temporary file beside ``path``, then ``os.replace``."""
    html = render_html(analysis, title=title, redaction=redaction)
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(html)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def extract_data(html: str) -> Any:
    """The JSON embedded in a rendered report (for tests and tools)."""
    m = re.search(r'<script type="application/json" id="data">(.*?)</script>', html, re.DOTALL)
    if m is None:
        raise ValueError("no embedded data in this document")
    return json.loads(m.group(1))


# -- screenshots ------------------------------------------------------------------------------

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


def first_failed_call(a: Analysis) -> int | None:
    """Index of the call to show in ``ladder.png``: the first failed call, else the first failure."""
    failed = [i for i, r in enumerate(a.calls) if r.breaking is not None]
    calls = [i for i in failed if str(a.calls[i].kind) == "call"]
    pick = calls or failed
    return pick[0] if pick else None


def _chromium_screenshot(chromium: str, url: str, png: Path, size: tuple[int, int], timeout: float) -> None:
    with tempfile.TemporaryDirectory(prefix="sipflow-chromium-") as profile:
        cmd = [
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            f"--window-size={size[0]},{size[1]}",
            "--virtual-time-budget=3000",
            f"--screenshot={png}",
            url,
        ]
        subprocess.run(cmd, check=True, capture_output=True, timeout=timeout)
    if not png.is_file():
        raise RuntimeError(f"chromium wrote no screenshot to {png}")


def screenshots(
    a: Analysis, outdir: Path, *, chromium: str | None = None, size: tuple[int, int] = (1400, 1100)
) -> list[Path]:
    """Write ``report.html``, ``dashboard.png`` and (when a call failed) ``ladder.png`` under ``outdir``."""
    browser = chromium or shutil.which("chromium")
    if browser is None:
        raise RuntimeError("chromium not found (Debian package chromium)")
    outdir.mkdir(parents=True, exist_ok=True)
    page = outdir / "report.html"
    write_html(a, page)
    url = page.resolve().as_uri()
    written = [outdir / "dashboard.png"]
    _chromium_screenshot(browser, url, written[0], size, 60)
    call = first_failed_call(a)
    if call is not None:
        written.append(outdir / "ladder.png")
        _chromium_screenshot(browser, f"{url}#call={call}", written[1], size, 60)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    from analyzer.analysis import analyze

    parser = argparse.ArgumentParser(prog="python -m analyzer.report.html", description=__doc__.split("\n")[0])
    parser.add_argument("capture", type=Path)
    parser.add_argument("out", type=Path, nargs="?", help="report file, or directory with --screenshot")
    parser.add_argument("--screenshot", action="store_true", help="write dashboard.png and ladder.png")
    parser.add_argument("--title")
    args = parser.parse_args(argv)
    analysis = analyze(args.capture)
    if args.screenshot:
        for path in screenshots(analysis, args.out or Path("reports/screenshots")):
            print(path)
        return 0
    out = args.out or Path(args.capture.name + ".html")
    write_html(analysis, out, title=args.title)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
