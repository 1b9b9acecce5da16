"""The default capture filter, run by tcpdump itself over captures made by real software:
it must keep every SIP message (fragments, VLAN and QinQ tags included) and drop media."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from analyzer.capture.source import read_frames
from analyzer.capture.stats import CaptureStats
from analyzer.decode.pipeline import Decoder
from analyzer.live.tcpdump import BASE_FILTER, default_filter, tcpdump_argv
from analyzer.reader import MessageReader
from tests.oracle import SAMPLE_PCAPS

pytestmark = pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump not installed")

COOKED = {"sll_call.pcap", "sll2_call.pcap"}
# tls_call.pcap: SIP over TLS, no SIP without tshark and its key log (tests/capture/test_tshark.py).
SAMPLES = sorted(p.name for p in SAMPLE_PCAPS.glob("*.pcap") if p.name not in {"multi_if.pcapng", "tls_call.pcap"})


def _sysfs(tmp: Path, iface: str, arphrd: str) -> Path:
    (tmp / iface).mkdir(parents=True)
    (tmp / iface / "type").write_text(arphrd + "\n")
    return tmp


def _filtered(path: Path, bpf: str) -> tuple[int, list[tuple[str, str, str, int, str, int]]]:
    """(frames kept, messages) of ``path`` after ``tcpdump -r path -w - BPF``."""
    out = subprocess.run(
        ["tcpdump", "-r", str(path), "-w", "-", bpf], capture_output=True, check=True, timeout=60
    ).stdout
    import io

    decoder = Decoder()
    msgs = []
    kept = 0
    for n, (ts, linktype, data, _) in enumerate(read_frames(io.BytesIO(out), CaptureStats("-")), 1):
        kept += 1
        msgs += decoder.feed(n, ts, linktype, data)
    msgs += decoder.finish()
    return kept, [
        (m.label, m.call_id, m.origin.src_ip, m.origin.src_port, m.origin.dst_ip, m.origin.dst_port) for m in msgs
    ]


def _all(path: Path) -> list[tuple[str, str, str, int, str, int]]:
    return [
        (m.label, m.call_id, m.origin.src_ip, m.origin.src_port, m.origin.dst_ip, m.origin.dst_port)
        for m in MessageReader(path)
    ]


@pytest.mark.parametrize("name", SAMPLES)
def test_the_default_filter_keeps_every_sip_message(name: str, tmp_path: Path) -> None:
    iface, arphrd = ("any", "") if name in COOKED else ("eth0", "1")
    bpf = default_filter(iface, _sysfs(tmp_path, iface, arphrd))
    _, kept = _filtered(SAMPLE_PCAPS / name, bpf)
    assert kept == _all(SAMPLE_PCAPS / name)
    assert kept


def test_fragments_and_tags_need_their_parts(tmp_path: Path) -> None:
    """Without the fragment and VLAN clauses the same captures lose messages: the clauses matter."""
    ports_only = "portrange 5060-5090"
    # The INVITEs (4 KB, fragmented) are lost: only their first fragment has the ports.
    for name in ("udp_fragmented.pcap", "ipv6_fragmented.pcap"):
        kept = [m[0] for m in _filtered(SAMPLE_PCAPS / name, ports_only)[1]]
        assert (len(kept), kept.count("INVITE"), len(_all(SAMPLE_PCAPS / name))) == (12, 0, 14)
    assert _filtered(SAMPLE_PCAPS / "qinq_call.pcap", BASE_FILTER)[1] == []
    one_tag = f"{BASE_FILTER} or (vlan and ({BASE_FILTER}))"
    assert _filtered(SAMPLE_PCAPS / "qinq_call.pcap", one_tag)[1] == []
    assert len(_filtered(SAMPLE_PCAPS / "vlan_call.pcap", one_tag)[1]) == 14


def test_media_is_left_out(shared_pcaps: Path, tmp_path: Path) -> None:
    """A call with its RTP and RTCP (heplify's capture): the SIP stays, the media goes."""
    path = shared_pcaps / "heplify/rtp_rtcp_sip_ipv4_udp.pcap"
    frames, kept = _filtered(path, default_filter("eth0", _sysfs(tmp_path, "eth0", "1")))
    assert kept == _all(path)
    assert (frames, len(kept)) == (17, 14)  # 4269 frames in the file; 3 kept are keep-alives on 5061


def test_filter_by_link_type(tmp_path: Path) -> None:
    sysfs = _sysfs(tmp_path, "eth0", "1")
    _sysfs(tmp_path, "tun0", "65534")
    assert default_filter("any", sysfs) == BASE_FILTER
    assert default_filter("tun0", sysfs) == BASE_FILTER  # raw IP: no tags, no `vlan` keyword
    assert default_filter("gone0", sysfs) == BASE_FILTER
    assert default_filter("eth0", sysfs) == f"{BASE_FILTER} or (vlan and ({BASE_FILTER})) or (vlan and ({BASE_FILTER}))"


@pytest.mark.parametrize(
    ("linktype", "iface"), [("EN10MB", "eth0"), ("LINUX_SLL2", "any"), ("LINUX_SLL", "any"), ("RAW", "tun0")]
)
def test_tcpdump_compiles_the_default_filter(linktype: str, iface: str, tmp_path: Path) -> None:
    sysfs = _sysfs(tmp_path, "eth0", "1")
    bpf = default_filter(iface, sysfs)
    done = subprocess.run(["tcpdump", "-y", linktype, "-d", bpf], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr


def test_tcpdump_command_line() -> None:
    assert tcpdump_argv("sudo -n tcpdump", "eth0", "port 5060") == [
        "sudo", "-n", "tcpdump", "-i", "eth0", "-n", "-U", "-w", "-", "-s", "0", "--immediate-mode", "-B", "4096",
        "port 5060",
    ]  # fmt: skip
