"""Link layers: VLAN stacks, SLL/SLL2, null loopback, PPPoE, MPLS."""

from __future__ import annotations

from analyzer.decode import link, tunnels

IP4 = bytes([0x45]) + bytes(19)
MACS = bytes(12)


def test_ethernet_with_qinq() -> None:
    frame = MACS + b"\x88\xa8\x00\x0a" + b"\x81\x00\x00\x14" + b"\x08\x00" + IP4
    assert link.ethernet(frame) == (0x0800, 22, "vlan/vlan")


def test_pppoe_and_mpls() -> None:
    pppoe = MACS + b"\x88\x64" + b"\x11\x00\x00\x01\x00\x16" + b"\x00\x21" + IP4
    assert link.ethernet(pppoe) == (0x0800, 22, "pppoe")
    mpls = MACS + b"\x88\x47" + b"\x00\x01\x00\x40" + b"\x00\x02\x01\x40" + IP4
    assert link.ethernet(mpls) == (0x0800, 22, "mpls")


def test_cooked_and_loopback() -> None:
    assert link.linux_sll(bytes(14) + b"\x86\xdd") == (0x86DD, 16, "sll")
    assert link.linux_sll2(b"\x08\x00" + bytes(18)) == (0x0800, 20, "sll2")
    assert link.null_loopback(b"\x02\x00\x00\x00" + IP4) == (0x0800, 4, "")
    assert link.null_loopback(b"\x00\x00\x00\x1e") == (0x86DD, 4, "")
    assert link.raw_ip(b"\x60" + bytes(39)) == (0x86DD, 0, "")


def test_truncated_frames_give_nothing() -> None:
    assert link.ethernet(b"\x00" * 10) == link.NONE
    assert link.ethernet(MACS + b"\x81\x00") == link.NONE
    assert tunnels.gre(b"\x00") == link.NONE
    assert tunnels.gtpu(b"\x30\xff\x00") == link.NONE
