"""Fixtures for the HTML report: a headless chromium driven over the DevTools protocol, and a
capture with markup in its SIP headers, recorded at test time from SIPp on loopback.

The browser is Debian's ``chromium``, started with ``--remote-debugging-pipe``: the DevTools
protocol (JSON messages, each ended by a NUL byte) runs over two pipes on fds 3 and 4, so no
port is opened and no websocket client is needed. Tests that need it are skipped when
chromium is not installed; the hostile capture is skipped without sipp or tcpdump.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from analyzer.report.html import CHROMIUM_FLAGS as REPORT_FLAGS

CHROMIUM_FLAGS = (
    *(f for f in REPORT_FLAGS if f != "--hide-scrollbars"),
    "--disable-extensions",
    "--disable-default-apps",
    "--mute-audio",
    "--window-size=1400,1000",
    "--remote-debugging-pipe",
)
TIMEOUT = 20.0
"""Seconds any one DevTools call or awaited event may take."""


class CdpError(RuntimeError):
    pass


class Chromium:
    """One headless chromium process and the DevTools connection to it."""

    def __init__(self, binary: str, profile: Path, log: Path) -> None:
        cmd_r, self._cmd_w = os.pipe()  # we write commands, chromium reads fd 3
        self._out_r, out_w = os.pipe()  # chromium writes fd 4, we read
        with log.open("wb") as err:
            # bash (dash takes one-digit fds only) puts the pipe ends on fds 3 and 4, then becomes chromium.
            self.proc = subprocess.Popen(
                [
                    "bash",
                    "-c",
                    f'exec "$0" "$@" 3<&{cmd_r} 4>&{out_w}',
                    binary,
                    *CHROMIUM_FLAGS,
                    f"--user-data-dir={profile}",
                    "about:blank",
                ],
                pass_fds=(cmd_r, out_w),
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=err,
                start_new_session=True,
            )
        os.close(cmd_r)
        os.close(out_w)
        self._buf = b""
        self._next = 0
        self.events: dict[str, list[dict[str, Any]]] = {}
        """Events by session id ('' for the browser's own)."""

    # -- wire ---------------------------------------------------------------------------
    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer from chromium")
            ready, _, _ = select.select([self._out_r], [], [], left)
            if ready:
                chunk = os.read(self._out_r, 1 << 16)
                if not chunk:
                    raise CdpError("chromium closed the DevTools pipe")
                self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        msg: dict[str, Any] = json.loads(raw)
        return msg

    def _pump(self, deadline: float) -> dict[str, Any]:
        """Read one message; events are filed, and a command result is returned."""
        msg = self._read(deadline)
        if "method" in msg:
            self.events.setdefault(msg.get("sessionId", ""), []).append(msg)
        return msg

    def call(self, method: str, params: dict[str, Any] | None = None, session: str = "") -> dict[str, Any]:
        self._next += 1
        ident = self._next
        msg: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._cmd_w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + TIMEOUT
        while True:
            answer = self._pump(deadline)
            if answer.get("id") == ident:
                if "error" in answer:
                    raise CdpError(f"{method}: {answer['error']}")
                result: dict[str, Any] = answer.get("result", {})
                return result

    def wait_event(self, session: str, method: str, since: int = 0) -> dict[str, Any]:
        deadline = time.monotonic() + TIMEOUT
        while True:
            for ev in self.events.get(session, [])[since:]:
                if ev["method"] == method:
                    return ev
            self._pump(deadline)

    def close(self) -> None:
        try:
            self.call("Browser.close")
            self.proc.wait(timeout=10)
        except (CdpError, TimeoutError, OSError, subprocess.TimeoutExpired):
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)  # our own process group, by id
            self.proc.wait(timeout=10)
        finally:
            os.close(self._cmd_w)
            os.close(self._out_r)


class Page:
    """One tab: navigate, evaluate JavaScript, click like a user, read what went wrong."""

    def __init__(self, browser: Chromium) -> None:
        self.browser = browser
        target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.target: str = target
        self.session: str = browser.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            browser.call(f"{domain}.enable", session=self.session)

    def events(self, *methods: str) -> list[dict[str, Any]]:
        return [e for e in self.browser.events.get(self.session, []) if e["method"] in methods]

    def goto(self, url: str) -> None:
        since = len(self.browser.events.get(self.session, []))
        self.browser.call("Page.navigate", {"url": url}, self.session)
        self.browser.wait_event(self.session, "Page.loadEventFired", since)

    def js(self, expression: str) -> Any:
        r = self.browser.call(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True}, self.session
        )
        if "exceptionDetails" in r:
            raise CdpError(f"{expression!r}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def click(self, selector: str) -> None:
        """A real mouse click in the middle of the element's visible part (scrolled into view first)."""
        box = self.js(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " if (!e) return null; e.scrollIntoView({block: 'center'});"
            " const r = e.getBoundingClientRect();"
            " const x0 = Math.max(r.left, 0), x1 = Math.min(r.right, innerWidth);"
            " const y0 = Math.max(r.top, 0), y1 = Math.min(r.bottom, innerHeight);"
            " return x1 >= x0 && y1 >= y0 && x1 + y1 > x0 + y0 ? [(x0 + x1) / 2, (y0 + y1) / 2] : null; })()"
        )
        if box is None:
            raise CdpError(f"no visible element {selector!r}")
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            params = {"type": kind, "x": box[0], "y": box[1], "button": "left", "clickCount": 1}
            self.browser.call("Input.dispatchMouseEvent", params, self.session)

    def wait_for(self, expression: str) -> Any:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            value = self.js(expression)
            if value:
                return value
            time.sleep(0.05)
        raise TimeoutError(expression)

    def errors(self) -> list[str]:
        """JavaScript exceptions, console errors and browser-logged errors (CSP violations …)."""
        out = [
            e["params"]["exceptionDetails"].get("exception", {}).get("description", "")
            or e["params"]["exceptionDetails"].get("text", "")
            for e in self.events("Runtime.exceptionThrown")
        ]
        out += [
            " ".join(str(a.get("value", a.get("description", ""))) for a in e["params"]["args"])
            for e in self.events("Runtime.consoleAPICalled")
            if e["params"]["type"] in ("error", "assert")
        ]
        out += [
            e["params"]["entry"]["text"]
            for e in self.events("Log.entryAdded")
            if e["params"]["entry"]["level"] == "error"
        ]
        return out

    def requests(self) -> list[str]:
        return [e["params"]["request"]["url"] for e in self.events("Network.requestWillBeSent")]

    def close(self) -> None:
        self.browser.call("Target.closeTarget", {"targetId": self.target})


@pytest.fixture(scope="session")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chromium]:
    binary = shutil.which("chromium")
    if binary is None:
        pytest.skip("chromium not installed (Debian package chromium)")
    base = tmp_path_factory.mktemp("chromium")
    browser = Chromium(binary, base / "profile", base / "chromium.log")
    try:
        browser.call("Browser.getVersion")
        yield browser
    finally:
        browser.close()


@pytest.fixture
def page(chromium: Chromium) -> Iterator[Page]:
    tab = Page(chromium)
    try:
        yield tab
    finally:
        tab.close()


# -- a capture whose headers carry markup ---------------------------------------------------

HOSTILE_NAME = "<script>window.__pwned=1</script>"
HOSTILE_REASON = "<img src=x onerror=window.__pwned=2>"
HOSTILE_CALL_ID = "<svg/onload=window.__pwned=3>"

_UAC = f"""<?xml version="1.0" encoding="UTF-8" ?>
<scenario name="sipflow html report: caller with markup in From">
  <send retrans="500">
    <![CDATA[

      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      Max-Forwards: 70
      From: "{HOSTILE_NAME}" <sip:mallory@[local_ip]:[local_port]>;tag=[pid]html[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:mallory@[local_ip]:[local_port]>
      Content-Length: 0

    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="486"/>
  <send>
    <![CDATA[

      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      [last_Via:]
      Max-Forwards: 70
      [last_From:]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Content-Length: 0

    ]]>
  </send>
</scenario>
"""

_UAS = f"""<?xml version="1.0" encoding="UTF-8" ?>
<scenario name="sipflow html report: callee with markup in its reason phrase">
  <recv request="INVITE"/>
  <send>
    <![CDATA[

      SIP/2.0 486 {HOSTILE_REASON}
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]busy[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
  <recv request="ACK"/>
</scenario>
"""


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _await_listening(tcpdump: subprocess.Popen[bytes]) -> None:
    """tcpdump says ``listening on lo`` on stderr once its filter is attached."""
    assert tcpdump.stderr is not None
    deadline = time.monotonic() + 10
    seen = b""
    while b"listening on" not in seen:
        left = deadline - time.monotonic()
        ready, _, _ = select.select([tcpdump.stderr], [], [], max(left, 0))
        if not ready or left <= 0:
            raise TimeoutError(f"tcpdump did not start: {seen!r}")
        chunk = os.read(tcpdump.stderr.fileno(), 4096)
        if not chunk:
            raise RuntimeError(f"tcpdump exited: {seen!r}")
        seen += chunk


def _stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGINT) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)  # `timeout` passes it on to its child
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def record_hostile_call(workdir: Path) -> Path:
    """One call on 127.0.0.1, recorded by tcpdump on ``lo``: SIPp's INVITE carries
    ``HOSTILE_NAME`` as the From display name and ``HOSTILE_CALL_ID`` in its Call-ID; the
    SIPp callee answers ``486 HOSTILE_REASON``. Every process is bounded by ``timeout``."""
    uac_port, uas_port = _free_udp_port(), _free_udp_port()
    (workdir / "uac.xml").write_text(_UAC)
    (workdir / "uas.xml").write_text(_UAS)
    pcap = workdir / "hostile.pcap"
    sipp_common = ["-nostdin", "-t", "u1", "-m", "1", "-timeout", "15s", "-timeout_error", "-max_retrans", "3"]
    tcpdump = subprocess.Popen(
        [
            "timeout",
            "30",
            "tcpdump",
            "-i",
            "lo",
            "-n",
            "-U",
            "--immediate-mode",
            "-c",
            "10",
            "-w",
            str(pcap),
            f"udp and (port {uac_port} or port {uas_port})",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    uas: subprocess.Popen[bytes] | None = None
    try:
        _await_listening(tcpdump)
        uas = subprocess.Popen(
            ["timeout", "20", "sipp", "-sf", "uas.xml", *sipp_common, "-i", "127.0.0.1", "-p", str(uas_port)],
            cwd=workdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(0.3)  # the callee must listen before the INVITE
        subprocess.run(
            [
                "timeout",
                "20",
                "sipp",
                "-sf",
                "uac.xml",
                *sipp_common,
                "-i",
                "127.0.0.1",
                "-p",
                str(uac_port),
                "-s",
                "victim",
                "-cid_str",
                f"%u-{HOSTILE_CALL_ID}@%s",
                f"127.0.0.1:{uas_port}",
            ],
            cwd=workdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=True,
        )
        assert uas.wait(timeout=20) == 0, "the SIPp callee failed"
        time.sleep(0.2)  # let tcpdump write the last datagram
    finally:
        if uas is not None:
            _stop(uas, signal.SIGTERM)
        _stop(tcpdump)
        if tcpdump.stderr is not None:
            tcpdump.stderr.close()
    return pcap


@pytest.fixture(scope="session")
def hostile_capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    for tool in ("sipp", "tcpdump", "timeout"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed")
    if os.geteuid() != 0:
        pytest.skip("tcpdump on lo needs root (CAP_NET_RAW)")
    return record_hostile_call(tmp_path_factory.mktemp("hostile"))
