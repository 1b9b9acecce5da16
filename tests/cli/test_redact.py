"""``--redact`` on every command that shows message content: nothing masked gets out.

The captures are real: aaa.pcap (a Nero SIPPS phone registering and calling through
sip.cybercity.dk, with Authorization and Proxy-Authorization digests) from the shared
captures, and rule_auth_loop.pcap (SIPp through Kamailio, Proxy-Authorization digests).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from analyzer.capture.source import open_stream, read_frames
from analyzer.capture.stats import CaptureStats
from analyzer.cli import main
from analyzer.sip.redact import REDACTED

AAA = "wireshark-samplecaptures/aaa.pcap"
AGENT = "Nero SIPPS IP Phone Version 2.0.51.16"
CALLER = "voi18063@sip.cybercity.dk"  # From of aaa.pcap's first REGISTER
FAKE = f"{sys.executable} {Path(__file__).parent.parent / 'live' / 'fake_tcpdump.py'}"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def digests(path: Path) -> list[str]:
    """Every digest response and cnonce sent with credentials in the capture (the nonce is
    masked in credentials too, but the challenge before them shows it anyway)."""
    found = re.findall(rb'(?:response|cnonce)="([0-9a-f]{8,})"', path.read_bytes())
    return sorted({f.decode() for f in found})


def assert_clean(text: str, secrets: list[str]) -> None:
    leaked = [s for s in secrets if s in text]
    assert leaked == []


@pytest.fixture
def aaa(shared_pcaps: Path) -> Path:
    return shared_pcaps / AAA


def test_the_captures_hold_what_must_not_get_out(aaa: Path, sample_pcaps: Path) -> None:
    secrets = digests(aaa)
    assert len(secrets) == 12
    assert "29cd776112a709cb9cbe978baff5e478" in secrets
    assert AGENT.encode() in aaa.read_bytes()
    assert len(digests(sample_pcaps / "rule_auth_loop.pcap")) == 8


@pytest.mark.parametrize("fmt", ["table", "csv", "json", "jsonl"])
def test_messages(aaa: Path, fmt: str) -> None:
    code, plain, _ = run("messages", str(aaa), "--format", fmt)
    assert code == 0 and "578222729-4665d775@5782" in plain
    code, out, err = run("messages", str(aaa), "--format", fmt, "--redact", "i", "--redact", "CSeq")
    assert (code, err) == (0, "")
    assert "578222729-4665d775@5782" not in out
    assert_clean(out, digests(aaa))
    if fmt == "jsonl":
        first = json.loads(out.splitlines()[0])
        assert (first["frame"], first["call_id"], first["cseq"], first["method"]) == (
            19,
            REDACTED,
            REDACTED,
            "REGISTER",
        )


@pytest.mark.parametrize("fmt", ["table", "csv", "json", "jsonl"])
def test_analyze(aaa: Path, fmt: str) -> None:
    code, plain, _ = run("analyze", str(aaa), "--format", fmt)
    assert code == 0 and CALLER in plain
    code, out, err = run("analyze", str(aaa), "--format", fmt, "--redact", "From", "--redact", "user-agent")
    assert code == 0, err
    assert CALLER not in out and "voi18063" not in out and AGENT not in out
    assert_clean(out, digests(aaa))
    if fmt == "json":
        calls = json.loads(out)["calls"]
        assert [c["caller"] for c in calls] == [REDACTED] * 10
        assert calls[0]["call_id"] == "578222729-4665d775@578222732-4665d772"


def test_analyze_report_dir(aaa: Path, tmp_path: Path) -> None:
    outdir = tmp_path / "rep"
    code, _, err = run("analyze", str(aaa), "--report", str(outdir), "--redact", "From", "--redact", "Contact")
    assert code == 0, err
    secrets = [*digests(aaa), CALLER, "sip:voi18063@192.168.1.2:5060"]
    for name in ("calls.csv", "messages.csv", "calls.json"):
        assert_clean((outdir / name).read_text(encoding="utf-8"), secrets)
    # The page shows whole messages: To (not redacted) still names the user, From never does.
    html = (outdir / "report.html").read_text(encoding="utf-8")
    assert_clean(html, secrets[:-2])
    assert "sip:voi18063@192.168.1.2:5060" not in html  # the Contact
    assert html.count(f"From: {REDACTED}") == 81 and "From: <" not in html and 'From: \\"' not in html
    contacts = len(re.findall(rb"\nContact:", aaa.read_bytes()))  # 41 messages carry one
    assert html.count(f"Contact: {REDACTED}") == contacts == 41 and 'nonce=\\"…redacted…\\"' in html
    parquet = pd.read_parquet(outdir / "calls.parquet")
    assert list(parquet["caller"]) == [REDACTED] * 10
    assert_clean(parquet.to_csv(), secrets)


def test_analyze_without_redact_still_masks_credentials_in_html(aaa: Path, tmp_path: Path) -> None:
    code, _, _ = run("analyze", str(aaa), "--report", str(tmp_path / "r"))
    assert code == 0
    html = (tmp_path / "r" / "report.html").read_text(encoding="utf-8")
    assert_clean(html, digests(aaa))
    assert CALLER in html


def test_flow(aaa: Path) -> None:
    code, out, _ = run("analyze", str(aaa), "--format", "jsonl")
    calls = [json.loads(line) for line in out.splitlines()]
    call_id = next(c["call_id"] for c in calls if c["kind"] == "call")
    for extra in ([], ["--mermaid"]):
        code, out, err = run("flow", str(aaa), call_id, "--redact", "Call-ID", "--redact", "From", *extra)
        assert code == 0, err
        assert call_id not in out and REDACTED in out
        assert_clean(out, digests(aaa))


def _frames(path: Path) -> list[tuple[int, int, bytes, int]]:
    with open_stream(path) as f:
        return list(read_frames(f, CaptureStats(str(path))))


def _tshark_sip(path: Path, *fields: str) -> list[str]:
    tshark = shutil.which("tshark")
    if tshark is None:
        pytest.skip("tshark not installed")
    args = [tshark, "-r", str(path), "-Y", "sip", "-T", "fields", *(a for f in fields for a in ("-e", f))]
    done = subprocess.run(args, capture_output=True, text=True, check=True, timeout=120)
    return done.stdout.splitlines()


@pytest.mark.parametrize("capture", [AAA, "rule_auth_loop.pcap"])
def test_export(capture: str, shared_pcaps: Path, sample_pcaps: Path, tmp_path: Path) -> None:
    src = (shared_pcaps / capture) if capture == AAA else (sample_pcaps / capture)
    plain, masked = tmp_path / "plain.pcap", tmp_path / "masked.pcap"
    assert run("export", str(src), "-o", str(plain))[0] == 0
    code, _, err = run("export", str(src), "-o", str(masked), "--redact", "User-Agent")
    assert code == 0, err
    assert "left out" not in err
    # Without --redact the frames are exactly as captured, credentials included.
    assert all(s.encode() in plain.read_bytes() for s in digests(src))
    data = masked.read_bytes()
    assert [s for s in digests(src) if s.encode() in data] == []
    assert b"User-Agent: " in data
    assert AGENT.encode() not in data and b"SIPp (sipflow" not in data
    before, after = _frames(plain), _frames(masked)
    assert [(ts, lt, len(d), orig) for ts, lt, d, orig in before] == [
        (ts, lt, len(d), orig) for ts, lt, d, orig in after
    ]
    # tshark still reads every SIP message, Content-Length and all, with the values masked.
    rows = _tshark_sip(masked, "frame.number", "sip.CSeq", "sip.User-Agent", "sip.Content-Length")
    assert len(rows) == len(_tshark_sip(plain, "frame.number"))
    agents = {r.split("\t")[2] for r in rows} - {""}
    assert agents and all(set(a) <= {"x", " "} for a in agents)
    creds = _tshark_sip(masked, "sip.Proxy-Authorization", "sip.Authorization")
    assert any('response="xxxxxxxx' in line for line in creds)


def test_redact_bad_name() -> None:
    code, _, err = run("messages", "x.pcap", "--redact", "Not A Header")
    assert (code, err) == (2, "sipflow: error: --redact 'Not A Header': not a header name\n")


def test_live(sample_pcaps: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = sample_pcaps / "rule_auth_loop.pcap"
    monkeypatch.setenv("FAKE_PCAP", str(src))
    monkeypatch.setenv("FAKE_FRAMES", "20")
    jsonl, rep, kept = tmp_path / "calls.jsonl", tmp_path / "rep", tmp_path / "kept"
    args = ["live", "-i", "fake0", "--tcpdump", FAKE, "--duration", "2s", "-q", "--no-alerts"]
    args += ["--jsonl", str(jsonl), "--report", str(rep), "--write-pcap", str(kept)]
    code, out, err = run(*args, "--redact", "From", "--redact", "User-Agent")
    assert code == 0, err
    secrets = [*digests(src), "alice@sipflow.test", "SIPp (sipflow"]
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [c["caller"] for c in lines] == [REDACTED, REDACTED]
    for text in (jsonl.read_text(), (rep / "calls.csv").read_text(), (rep / "calls.json").read_text(), out, err):
        assert_clean(text, secrets)
    (pcap,) = kept.iterdir()
    assert [len(d) for _, _, d, _ in _frames(pcap)] == [len(d) for _, _, d, _ in _frames(src)]
    assert_clean(pcap.read_bytes().decode("latin-1"), secrets)
    assert len(_tshark_sip(pcap, "frame.number")) == 18
