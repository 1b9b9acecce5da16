"""The self-contained HTML report: its embedded data, its escaping, and the page in a real browser.

Unit tests read the JSON back out of the rendered file and hold it to the analysis. Browser
tests (skipped without Debian's ``chromium``) load the file in headless chromium over the
DevTools protocol and use it as a person would: read the table, click a failed call, click
an arrow. The hostile capture is recorded at test time from SIPp on loopback (see conftest).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from analyzer.analysis import Analysis, analyze
from analyzer.report.html import (
    REDACTED,
    embed_json,
    extract_data,
    main,
    mask_credentials,
    render_html,
    report_data,
    retransmission_flags,
    screenshots,
    write_html,
)
from tests.report.conftest import HOSTILE_CALL_ID, HOSTILE_NAME, HOSTILE_REASON, Page

AAA = "wireshark-samplecaptures/aaa.pcap"
AAA_AUTH_CALL = "85216695-42dcdb1d@192.168.1.2"
"""aaa.pcap: INVITE, 407, INVITE with credentials (frame 346), 403 in frame 348 (auth_forbidden)."""


@pytest.fixture(scope="module")
def aaa(shared_pcaps: Path) -> Analysis:
    return analyze(shared_pcaps / AAA)


@pytest.fixture(scope="module")
def aaa_html(aaa: Analysis) -> str:
    return render_html(aaa)


def _json(value: Any) -> Any:
    return json.loads(json.dumps(value))


def _call(data: dict[str, Any], call_id: str) -> tuple[int, dict[str, Any], list[list[Any]]]:
    i = next(i for i, c in enumerate(data["calls"]) if c["call_id"] == call_id)
    c = data["calls"][i]
    return i, c, data["messages"][c["msg_first"] : c["msg_first"] + c["msg_count"]]


# -- escaping and masking -----------------------------------------------------------------------


def test_embed_json_is_inert_in_a_script_element() -> None:
    text = embed_json({"v": "</script><!-- a & b \u2028\u2029 é"})
    assert text == '{"v":"\\u003c/script\\u003e\\u003c!-- a \\u0026 b \\u2028\\u2029 é"}'
    assert json.loads(text) == {"v": "</script><!-- a & b \u2028\u2029 é"}


def test_mask_digest_credentials_keeps_who_and_where() -> None:
    raw = (
        "INVITE sip:x@y SIP/2.0\r\n"
        'Proxy-Authorization: Digest username="voi18062",realm="sip.cybercity.dk",uri="sip:192.168.1.2",'
        'nonce="1701b16a2a09bc3847cfd2015612fe2",opaque="1701a1351f70795",nc="00000001",'
        'response="29cd776112a709cb9cbe978baff5e478"\r\n'
        'authorization : Digest username="a", cnonce="c0ffee",\r\n'
        '   response="deadbeef", qop=auth\r\n'
        "Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    assert mask_credentials(raw) == (
        "INVITE sip:x@y SIP/2.0\r\n"
        'Proxy-Authorization: Digest username="voi18062",realm="sip.cybercity.dk",uri="sip:192.168.1.2",'
        'nonce="…redacted…",opaque="1701a1351f70795",nc="00000001",response="…redacted…"\r\n'
        'authorization: Digest username="a",cnonce="…redacted…",response="…redacted…",qop=auth\r\n'
        "Authorization: Basic …redacted…\r\n"
        "Content-Length: 0\r\n\r\n"
    )


def test_mask_odd_credentials() -> None:
    # A tab after the scheme, a line separator inside a value, no space at all: nothing leaks.
    assert mask_credentials('Authorization: Digest\tusername="a",response="s1"\r\n') == (
        'Authorization: Digest username="a",response="…redacted…"\r\n'
    )
    assert mask_credentials('Authorization: Digest username="a\u2028",response="s2"\n') == (
        'Authorization: Digest username="a\u2028",response="…redacted…"\n'
    )
    assert mask_credentials("Proxy-Authorization: Bearer,s3") == "Proxy-Authorization: Bearer …redacted…"
    assert mask_credentials("Authorization:") == "Authorization: …redacted…"


def test_digest_responses_of_aaa_never_reach_the_page(aaa: Analysis, aaa_html: str) -> None:
    responses = sorted(
        {m.group(1) for msg in aaa.messages for m in re.finditer(rb'response="([0-9a-f]{32})"', msg.raw)}
    )
    assert len(responses) == 12  # distinct digest responses in the capture
    assert "29cd776112a709cb9cbe978baff5e478" in {r.decode() for r in responses}
    for r in responses:
        assert r.decode() not in aaa_html
    data = extract_data(aaa_html)
    _, _, msgs = _call(data, AAA_AUTH_CALL)
    invite = next(m for m in msgs if m[0] == 346)
    assert 'Proxy-Authorization: Digest username="voi18062",realm="sip.cybercity.dk"' in invite[8]
    assert f'response="{REDACTED}"' in invite[8]


def test_no_external_resources(aaa_html: str) -> None:
    assert not re.search(
        r"<(script|img|link|iframe|audio|video|source|embed|object)\b[^>]*\b(src|href|data)\s*=", aaa_html, re.I
    )
    # url(#id) names an SVG marker in the page itself; any other url() would be a load.
    assert not re.search(r"url\(\s*['\"]?(?!#)|@import|@font-face", aaa_html, re.I)
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', aaa_html)
    assert csp is not None
    policy = csp.group(1).replace("&#39;", "'")
    assert policy.startswith("default-src 'none'; style-src 'sha256-")
    # The policy allows exactly the inline script that is there, by hash.
    script = re.search(r"<script>(.*?)</script>", aaa_html, re.S)
    assert script is not None
    digest = base64.b64encode(hashlib.sha256(script.group(1).encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in policy
    assert aaa_html.count("<script") == 2
    assert "innerHTML" not in aaa_html and "eval(" not in aaa_html


def test_hostile_headers_are_only_data(hostile_capture: Path) -> None:
    html = render_html(analyze(hostile_capture))
    for text in (HOSTILE_NAME, HOSTILE_REASON, HOSTILE_CALL_ID, "<img", "<svg/"):
        assert text not in html
    data = extract_data(html)
    assert [c["call_id"] for c in data["calls"]] == [f"1-{HOSTILE_CALL_ID}@127.0.0.1"]
    assert data["calls"][0]["final"] == {"code": 486, "reason": HOSTILE_REASON}
    assert [m[4] for m in data["messages"]] == ["INVITE", f"486 {HOSTILE_REASON}", "ACK"]
    assert f'From: "{HOSTILE_NAME}" <sip:mallory@127.0.0.1:' in data["messages"][0][8]


# -- the data --------------------------------------------------------------------------------------


SAMPLES = ("rule_early_media_rejected.pcap", "rule_proxy_remap.pcap", "udp_call.pcap")


@pytest.mark.parametrize("name", SAMPLES)
def test_data_round_trips_and_counts(sample_pcaps: Path, name: str) -> None:
    a = analyze(sample_pcaps / name)
    html = render_html(a)
    data = extract_data(html)
    assert data == _json(report_data(a))
    assert len(data["calls"]) == len(a.calls)
    assert len(data["messages"]) == len(a.messages) == sum(c["msg_count"] for c in data["calls"])
    first = 0
    for report, call in zip(a.calls, data["calls"], strict=True):
        assert call["call_id"] == report.call_id
        assert call["msg_first"] == first
        first += call["msg_count"]
        msgs = data["messages"][call["msg_first"] : first]
        assert [m[0] for m in msgs] == [m.frame for m in a.messages_of(report)]
        assert sum(m[6] for m in msgs) == report.retransmissions
        if report.breaking is None:
            assert call["breaking_index"] == -1
        else:
            assert msgs[call["breaking_index"]][0] == report.breaking.frame


def test_early_media_rejected_data(sample_pcaps: Path) -> None:
    data = report_data(analyze(sample_pcaps / "rule_early_media_rejected.pcap"))
    assert data["endpoints"] == ["198.18.0.1:5060", "198.18.0.2:5060"]
    assert [(c["outcome"], c["breaking"]["rule"], c["breaking_index"]) for c in data["calls"]] == [
        ("rejected", "early_media_rejected", 3),
        ("rejected", "early_media_rejected", 3),
    ]
    _, _, msgs = _call(data, data["calls"][0]["call_id"])
    assert [(m[0], m[2], m[3], m[4], m[5], m[6], m[7]) for m in msgs] == [
        (3, 0, 1, "INVITE", "1 INVITE", 0, 1),
        (4, 1, 0, "100 Trying", "1 INVITE", 0, 0),
        (5, 1, 0, "183 Session Progress", "1 INVITE", 0, 1),
        (6, 1, 0, "488 Not Acceptable Here", "1 INVITE", 0, 0),
        (7, 0, 1, "ACK", "1 ACK", 0, 0),
    ]
    assert msgs[0][1] == 0.0


def test_proxy_remap_has_three_columns(sample_pcaps: Path) -> None:
    data = report_data(analyze(sample_pcaps / "rule_proxy_remap.pcap"))
    assert data["endpoints"] == ["198.18.0.1:5060", "198.18.0.3:5060", "198.18.0.2:5060"]
    _, call, msgs = _call(data, data["calls"][0]["call_id"])
    assert call["breaking"]["hop"] == "198.18.0.3:5060 -> 198.18.0.2:5060"
    assert msgs[call["breaking_index"]][4] == "500 Service Unavailable"
    assert msgs[call["breaking_index"]][0] == 11


def test_aaa_data(aaa: Analysis, aaa_html: str) -> None:
    data = extract_data(aaa_html)
    assert data["title"] == "sipflow report: aaa.pcap"
    assert {k: data["capture"][k] for k in ("packets", "sip_messages", "conversations", "first", "last")} == {
        "packets": 691,
        "sip_messages": 81,
        "conversations": 10,
        "first": "2005-07-04T09:32:20.839312Z",  # capinfos: 1120469540.839312
        "last": "2005-07-04T09:58:27.427770Z",  # capinfos: 1120471107.427770
    }
    assert data["summary"]["outcomes"] == {
        "call:auth_failed": 2,
        "call:cancelled": 1,
        "call:no_answer": 1,
        "registration:auth_failed": 4,
        "registration:registered": 2,
    }
    assert {k: data["kpi"][k] for k in ("attempts", "answered", "asr", "ner", "pdd_median_ms")} == {
        "attempts": 4,
        "answered": 0,
        "asr": 0.0,
        "ner": 25.0,
        "pdd_median_ms": 35553.259,
    }
    _, call, msgs = _call(data, AAA_AUTH_CALL)
    assert [m[0] for m in msgs] == [321, 323, 325, 326, 327, 346, 348, 349]
    assert [m[0] for m in msgs if m[6]] == [323, 325]
    assert msgs[call["breaking_index"]][:6] == [348, 34333.713, 1, 0, "403 Wrong password or domain", "2 INVITE"]
    cancelled = _call(data, "105090259-446faf7a@192.168.1.2")[2]
    assert sum(m[6] for m in cancelled) == 12


def test_retransmission_flags_match_the_store(aaa: Analysis) -> None:
    for report in aaa.calls:
        assert sum(retransmission_flags(aaa.messages_of(report))) == report.retransmissions


def test_raw_text_limits(sample_pcaps: Path) -> None:
    a = analyze(sample_pcaps / "rule_early_media_rejected.pcap")
    cut = report_data(a, raw_limit=40)["messages"][0][8]
    assert cut.startswith("INVITE sip:")
    assert cut.endswith("more bytes not shown; frame 3 in the capture)")
    assert all(m[8] is None for m in report_data(a, raw_budget=0)["messages"])
    # Failed calls keep their raw text first: udp_call's answered calls lose theirs.
    b = analyze(sample_pcaps / "udp_call.pcap")
    assert all(m[8] is None for m in report_data(b, raw_budget=100)["messages"])


def test_write_html_is_atomic(tmp_path: Path, sample_pcaps: Path) -> None:
    a = analyze(sample_pcaps / "udp_call.pcap")
    out = tmp_path / "report.html"
    out.write_text("old")
    write_html(a, out)
    assert out.read_text(encoding="utf-8") == render_html(a)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]
    assert out.stat().st_mode & 0o777 == 0o644


def synthetic(a: Analysis, copies: int) -> Analysis:
    """``copies`` × the calls of ``a`` (new Call-IDs, one second apart), for paging tests."""
    reports, by_call = [], {}
    for n in range(copies):
        for r in a.calls:
            call_id = f"{n:06d}-{r.call_id}"
            shift = n * 1_000_000_000
            copy = dataclasses.replace(r, call_id=call_id, start_ns=r.start_ns + shift, end_ns=r.end_ns + shift)
            reports.append(copy)
            by_call[copy.key] = a.messages_of(r)
    stats = dataclasses.replace(a.stats)
    stats.last_ts_ns = (a.stats.last_ts_ns or 0) + copies * 1_000_000_000
    return Analysis(a.path, stats, a.warning, reports, a.messages * copies, by_call)


# -- in the browser -------------------------------------------------------------------------------


def _open(page: Page, html_path: Path) -> None:
    page.goto(html_path.resolve().as_uri())
    page.wait_for("document.body.dataset.ready === '1'")


def test_browser_dashboard_and_table(page: Page, aaa: Analysis, tmp_path: Path) -> None:
    path = tmp_path / "aaa.html"
    write_html(aaa, path)
    _open(page, path)
    assert page.errors() == []
    assert page.requests() == [path.resolve().as_uri()]
    assert page.js("document.querySelectorAll('#calls-body tr').length") == 10
    assert page.js("document.getElementById('f-count').textContent") == "10 of 10 conversations"
    assert page.js("document.querySelector('[data-kpi=ner]').textContent") == "25 %"
    assert page.js("document.querySelectorAll('#chart-time svg .bar-bad').length") == 3
    assert page.js("document.querySelectorAll('#chart-pdd svg rect').length") == 4
    assert page.js("document.querySelectorAll('#codes tr').length") == 5
    # Filter: outcome auth_failed and kind call; then text on a code.
    page.js(
        "const s = document.getElementById('f-outcome'); s.value = 'auth_failed'; s.dispatchEvent(new Event('change'))"
    )
    assert page.js("[...document.querySelectorAll('#calls-body tr')].map(r => r.dataset.index)") == [
        "0",
        "1",
        "4",
        "5",
        "6",
        "7",
    ]
    page.js("const k = document.getElementById('f-kind'); k.value = 'call'; k.dispatchEvent(new Event('change'))")
    assert page.js("[...document.querySelectorAll('#calls-body tr')].map(r => r.dataset.index)") == ["4", "7"]
    page.js(
        "document.getElementById('f-outcome').value = ''; document.getElementById('f-kind').value = '';"
        "const t = document.getElementById('f-text'); t.value = '480'; t.dispatchEvent(new Event('input'))"
    )
    page.wait_for("document.querySelectorAll('#calls-body tr').length === 1")
    assert page.js("document.querySelector('#calls-body tr').dataset.index") == "8"
    assert page.errors() == []


def test_browser_failed_call_ladder(page: Page, aaa: Analysis, tmp_path: Path) -> None:
    path = tmp_path / "aaa.html"
    write_html(aaa, path)
    _open(page, path)
    page.click("#calls-body tr[data-index='4']")
    page.wait_for("!document.getElementById('drawer').hidden")
    assert page.js("location.hash") == "#call=4"
    assert page.js("document.getElementById('d-title').textContent") == f"call {AAA_AUTH_CALL}"
    assert page.js("[...document.querySelectorAll('.breaking')].map(e => e.dataset.frame)") == ["348"]
    assert page.js("[...document.querySelectorAll('svg.ladder .msg')].map(e => e.dataset.frame)") == [
        "321",
        "323",
        "325",
        "326",
        "327",
        "346",
        "348",
        "349",
    ]
    assert page.js("[...document.querySelectorAll('svg.ladder .retrans')].map(e => e.dataset.frame)") == ["323", "325"]
    assert page.js("document.querySelectorAll('svg.ladder .ep').length") == 2
    note = page.js("document.querySelector('.breaking-note').textContent")
    assert note.startswith("Broke the call: auth_forbiddenThe server refused the request (403)")
    # The breaking response's text is shown first; clicking an arrow shows that message.
    assert page.js("document.getElementById('raw').textContent").startswith("SIP/2.0 403 Wrong password or domain\r\n")
    page.click("svg.ladder .msg[data-frame='346'] line")
    raw = page.js("document.getElementById('raw').textContent")
    assert raw.startswith("INVITE sip:0097239287044@sip.cybercity.dk SIP/2.0\r\n")
    assert f'nonce="{REDACTED}"' in raw
    assert page.js("document.querySelector('svg.ladder .selected').dataset.frame") == "346"
    # Esc closes the drawer; the hash opens it again (a link to one call).
    page.js("document.dispatchEvent(new KeyboardEvent('keydown', {key: 'Escape'}))")
    assert page.js("document.getElementById('drawer').hidden") is True
    page.js("location.hash = 'call=8'")
    page.wait_for("!document.getElementById('drawer').hidden")
    assert page.js("[...document.querySelectorAll('.breaking')].map(e => e.dataset.frame)") == ["621"]
    page.goto("about:blank")
    page.goto(path.resolve().as_uri() + "#call=5")
    page.wait_for("!document.getElementById('drawer').hidden")
    assert page.js("[...document.querySelectorAll('.breaking')].map(e => e.dataset.frame)") == ["454"]
    assert page.errors() == []


def test_browser_hostile_capture_is_inert(page: Page, hostile_capture: Path, tmp_path: Path) -> None:
    path = tmp_path / "hostile.html"
    write_html(analyze(hostile_capture), path)
    _open(page, path)
    page.click("#calls-body tr[data-index='0']")
    page.wait_for("!document.getElementById('drawer').hidden")
    page.click("svg.ladder .msg[data-frame='1'] line")
    assert page.js("typeof window.__pwned") == "undefined"
    assert page.js("document.querySelectorAll('script').length") == 2
    assert page.js("document.querySelectorAll('img, [onload], [onerror]').length") == 0
    row = page.js("[...document.querySelectorAll('#calls-body tr td')].map(td => td.textContent)")
    assert f"1-{HOSTILE_CALL_ID}@127.0.0.1" in row
    assert f"486 {HOSTILE_REASON}" in row
    assert page.js("document.querySelector('.breaking .label').textContent") == f"486 {HOSTILE_REASON}"
    assert f'From: "{HOSTILE_NAME}" <sip:mallory@127.0.0.1:' in page.js("document.getElementById('raw').textContent")
    assert page.errors() == []


def test_browser_pages_sorts_and_filters_many_calls(page: Page, sample_pcaps: Path, tmp_path: Path) -> None:
    a = synthetic(analyze(sample_pcaps / "rule_early_media_rejected.pcap"), 2500)  # 5,000 calls
    path = tmp_path / "many.html"
    path.write_text(render_html(a, raw_budget=0), encoding="utf-8")
    _open(page, path)
    assert page.js("document.querySelectorAll('#calls-body tr').length") == 200
    assert page.js("document.getElementById('p-info').textContent") == "rows 1–200 of 5,000 · page 1/25"
    page.click("#p-last")
    assert page.js("document.querySelectorAll('#calls-body tr').length") == 200
    assert page.js("document.querySelector('#calls-body tr').dataset.index") == "4800"
    # Sort by Call-ID, descending on the second click.
    page.click("#calls-head th:last-child")
    page.click("#calls-head th:last-child")
    assert page.js("document.getElementById('p-info').textContent") == "rows 1–200 of 5,000 · page 1/25"
    assert page.js("document.querySelector('#calls-body tr td:last-child').textContent") == (
        "002499-2-rule_early_media_rejected@198.18.0.1"
    )
    page.js("const t = document.getElementById('f-text'); t.value = '001234-'; t.dispatchEvent(new Event('input'))")
    page.wait_for("document.querySelectorAll('#calls-body tr').length === 2")
    page.click("#calls-body tr")
    page.wait_for("!document.getElementById('drawer').hidden")
    assert page.js("document.querySelector('.breaking').dataset.frame") == "11"
    assert page.js("document.getElementById('raw').textContent").startswith(
        "(The raw text of this message was left out"
    )
    assert page.errors() == []


def test_browser_capture_without_sip(page: Page, shared_pcaps: Path, tmp_path: Path) -> None:
    path = tmp_path / "empty.html"
    write_html(analyze(shared_pcaps / "sipp/g711a.pcap"), path)  # RTP only
    _open(page, path)
    assert page.js("document.getElementById('p-info').textContent") == "no rows"
    assert page.js("document.getElementById('chart-time').textContent") == "No conversations in this capture."
    assert page.js("document.querySelector('[data-kpi=asr]').textContent") == "—"
    assert page.errors() == []


def test_module_main_writes_a_report(tmp_path: Path, sample_pcaps: Path) -> None:
    out = tmp_path / "r.html"
    assert main([str(sample_pcaps / "udp_call.pcap"), str(out), "--title", "<b>t</b>"]) == 0
    html = out.read_text(encoding="utf-8")
    assert "<title>&lt;b&gt;t&lt;/b&gt;</title>" in html
    assert extract_data(html)["title"] == "<b>t</b>"


@pytest.mark.skipif(
    os.environ.get("SIPFLOW_SCREENSHOTS") != "1", reason="set SIPFLOW_SCREENSHOTS=1 to write screenshots"
)
def test_screenshots(chromium: object, shared_pcaps: Path) -> None:
    out = Path(os.environ.get("SIPFLOW_SCREENSHOTS_DIR", "reports/screenshots"))
    written = screenshots(analyze(shared_pcaps / AAA), out)
    assert [p.name for p in written] == ["dashboard.png", "ladder.png"]
    for p in written:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# -- security findings -----------------------------------------------------------------------------

FORENSIC = "goffinet-sip_captures/Forensic_challenge_4.pcap"


def test_security_data(shared_pcaps: Path, aaa: Analysis) -> None:
    data = report_data(analyze(shared_pcaps / FORENSIC))
    assert [(f["rule"], f["severity"], f["src"], f["count"], f["frames"], f["first"]) for f in data["security"]] == [
        ("scanner", "medium", "172.25.105.43", 1, [1], "2010-05-01T18:13:00.947873Z")
    ]
    assert data["security"][0]["details"]["evidence"] == "User-Agent 'UNfriendly-scanner - for demo purposes'"
    assert report_data(aaa)["security"] == []


def test_browser_security_panel(page: Page, shared_pcaps: Path, aaa: Analysis, tmp_path: Path) -> None:
    path = tmp_path / "forensic.html"
    write_html(analyze(shared_pcaps / FORENSIC), path)
    _open(page, path)
    assert page.js("document.getElementById('security-panel').hidden") is False
    assert page.js("[...document.querySelectorAll('#security tr')].map(r => r.dataset.rule || 'head')") == [
        "head",
        "scanner",
    ]
    cells = page.js("[...document.querySelectorAll('#security tr[data-rule] td')].map(td => td.textContent)")
    assert cells[:4] == ["medium", "scanner", "172.25.105.43", "1"]
    assert cells[4].startswith("172.25.105.43 sent 1 request(s) (OPTIONS) marked as the SIP scanner friendly-scanner")
    assert cells[5] == "1"
    assert page.errors() == []
    quiet = tmp_path / "aaa.html"
    write_html(aaa, quiet)
    _open(page, quiet)
    assert page.js("document.getElementById('security-panel').hidden") is True
    assert page.js("getComputedStyle(document.getElementById('security-panel')).display") == "none"
    assert page.errors() == []
