"""`sipflow live --engine tshark`: a real call over TLS between two namespaces, decrypted
live with the key log that OpenSSL writes while the call runs.

SIPp (no TLS in Debian's build) talks TCP to a socat relay that hands the connection to
``openssl s_client -keylogfile``; across the veth pair socat's OPENSSL-LISTEN hands it to
the UAS (the same chain as sample_pcaps/generate_tls.sh). sipflow captures the veth, where
only TLS travels. Skipped unless root with ip, sipp, tcpdump, tshark, socat and openssl.
About 10 s.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.live.netns import Live, NsPair, ns_cmd, sipp

TLS_PORT = 5061
RELAY_PORT = 5060
UAC_PORT = 5070


@pytest.fixture(autouse=True)
def _tools() -> None:
    missing = [t for t in ("tshark", "socat", "openssl") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"missing tools: {', '.join(missing)}")


def _wait_listen(ns: str, port: int, limit_s: float = 5) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        out = subprocess.run(ns_cmd(ns, "ss", "-Hltn", f"sport = :{port}"), capture_output=True, text=True, timeout=5)
        if out.stdout.strip():
            return
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on {ns} port {port}")


@contextmanager
def _tls_relays(pair: NsPair, tmp: Path, keylog: Path) -> Iterator[None]:
    """socat + openssl s_client in the UAC's namespace, socat OPENSSL-LISTEN in the UAS's."""
    key, cert = tmp / "server.key", tmp / "server.crt"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=sipflow-test",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    server = f"OPENSSL-LISTEN:{TLS_PORT},bind={pair.uas_ip},reuseaddr,cert={cert},key={key},verify=0"
    client = (
        f"EXEC:openssl s_client -quiet -no_ign_eof -nocommands -connect {pair.uas_ip}\\:{TLS_PORT} -keylogfile {keylog}"
    )
    procs = [
        subprocess.Popen(
            ns_cmd(pair.uas_ns, "timeout", "30", "socat", server, f"TCP:{pair.uas_ip}:5060"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    try:
        _wait_listen(pair.uas_ns, TLS_PORT)
        procs.append(
            subprocess.Popen(
                ns_cmd(pair.uac_ns, "timeout", "30", "socat", f"TCP-LISTEN:{RELAY_PORT},bind={pair.uac_ip}", client),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        _wait_listen(pair.uac_ns, RELAY_PORT)
        yield
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
            p.wait(timeout=10)


def test_live_tls_call_decrypted(make_pair: Callable[[int], NsPair], tmp_path: Path) -> None:
    pair = make_pair(1500)
    keylog, jsonl = tmp_path / "tls.keys", tmp_path / "calls.jsonl"
    keylog.touch()  # s_client appends to it once the handshake is done; tshark reads it then
    live = Live(
        pair.uac_ns,
        *("--engine", "tshark", "--tls-keylog", str(keylog), "-i", pair.uac_if, "--jsonl", str(jsonl)),
        *("--duration", "60", "--no-alerts"),
        cwd=tmp_path,
    )
    try:
        live.wait_for("Capturing on", 15)
        uas = sipp(pair.uas_ns, "uas.xml", "-t", "t1", "-i", pair.uas_ip, "-p", "5060", "-m", "2", cwd=tmp_path)
        _wait_listen(pair.uas_ns, 5060)
        with _tls_relays(pair, tmp_path, keylog):
            uac = sipp(
                pair.uac_ns, "uac.xml", "-t", "t1", "-i", pair.uac_ip, "-p", str(UAC_PORT), "-m", "2",
                "-r", "5", "-d", "200", "-cid_str", "%u-tlslive@%s", f"{pair.uac_ip}:{RELAY_PORT}",
                cwd=tmp_path,
            )  # fmt: skip
            assert uac.wait(timeout=30) == 0
            assert uas.wait(timeout=30) == 0
        time.sleep(1.5)  # tshark prints each packet as it is decoded (-l); let the last ones arrive
        assert live.stop() == 0
    finally:
        live.kill()
    calls = [json.loads(line) for line in jsonl.read_text().splitlines()]
    got = sorted((c["call_id"], c["outcome"], c["messages"], c["final"]["code"]) for c in calls)
    assert got == [
        (f"1-tlslive@{pair.uac_ip}", "answered", 7, 200),
        (f"2-tlslive@{pair.uac_ip}", "answered", 7, 200),
    ]
    assert any("14 SIP messages, 2 conversations reported (call:answered 2)" in line for line in live.lines)


def test_live_tshark_needs_a_readable_keylog(make_pair: Callable[[int], NsPair], tmp_path: Path) -> None:
    pair = make_pair(1500)
    live = Live(
        pair.uac_ns, "--engine", "tshark", "--tls-keylog", str(tmp_path / "missing.keys"), "-i", pair.uac_if,
        cwd=tmp_path,
    )  # fmt: skip
    assert live.wait(15) == 2
    assert live.lines == [
        f"sipflow: error: --tls-keylog {tmp_path / 'missing.keys'}: cannot read it: No such file or directory"
    ]
