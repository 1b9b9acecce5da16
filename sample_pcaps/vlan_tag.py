"""Make a veth carry 802.1Q (or stacked 802.1ad + 802.1Q) tags, for generate.sh.

Why this exists: the usual way (``ip link add link veth0 type vlan``) needs the kernel's
8021q module, and the sandbox kernel this project is built on has neither 8021q nor
bridge VLAN filtering nor tc's ``act_vlan``. It does have eBPF and tcx, so this script
loads two tiny eBPF programs through the bpf(2) syscall and attaches them to one
interface of the *current* network namespace (run it under ``ip netns exec``):

* tcx egress: ``bpf_skb_vlan_push`` for each tag, inner first, so the frame leaves the
  interface tagged, exactly as it would leave a VLAN sub-interface;
* tcx ingress: ``bpf_skb_vlan_pop`` as many times, so the IP stack on this end gets
  the untagged frame back (it would drop a tagged one: no VLAN device exists).

A packet socket (tcpdump) on the interface sees the tags in both directions, because
taps run after tc egress and before tc ingress. The attachments go away with the
interface, i.e. when generate.sh deletes its namespaces.

Usage:  vlan_tag.py IFNAME TPID:VID [TPID:VID ...]   (e.g. ``8100:100`` or
``8100:100 88a8:200`` for Q-in-Q: C-tag 100 inside S-tag 200, IEEE 802.1ad).
Standard library only: generate.sh runs it with the system python3 as root.
"""

from __future__ import annotations

import ctypes
import os
import platform
import socket
import struct
import sys
from dataclasses import dataclass

# bpf(2) syscall number per architecture (asm/unistd_64.h; asm-generic for arm64).
_SYS_BPF = {"x86_64": 321, "aarch64": 280}
# bpf(2) command numbers and constants from <linux/bpf.h>.
_BPF_PROG_LOAD = 5
_BPF_PROG_ATTACH = 8
_BPF_PROG_TYPE_SCHED_CLS = 3
_BPF_TCX_INGRESS = 46  # kernel >= 6.6
_BPF_TCX_EGRESS = 47
_BPF_FUNC_SKB_VLAN_PUSH = 18
_BPF_FUNC_SKB_VLAN_POP = 19
_ATTR_SIZE = 144  # sizeof(union bpf_attr) in the 6.x uapi headers
_LOG_SIZE = 65536

# eBPF opcodes (Documentation/bpf/standardization/instruction-set.rst).
_MOV64_IMM = 0xB7
_MOV64_REG = 0xBF
_CALL = 0x85
_EXIT = 0x95

_TCX_PASS = 0
_REG_CTX_SAVE = 6  # callee-saved register that keeps the skb pointer across helper calls

_KNOWN_TPIDS = (0x8100, 0x88A8)


@dataclass(frozen=True, slots=True)
class VlanTag:
    """One tag to push: TPID (0x8100 C-tag, 0x88a8 S-tag) and VLAN id."""

    tpid: int
    vid: int


def parse_tag(text: str) -> VlanTag:
    """Parse ``TPID:VID`` with TPID in hex (``8100``, ``88a8``) and VID in 1..4094."""
    tpid_text, _, vid_text = text.partition(":")
    tpid, vid = int(tpid_text, 16), int(vid_text)
    if tpid not in _KNOWN_TPIDS or not 1 <= vid <= 4094:
        raise ValueError(f"bad tag {text!r}: want 8100:VID or 88a8:VID with VID in 1..4094")
    return VlanTag(tpid, vid)


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def push_program(tags: list[VlanTag]) -> bytes:
    """r6 = skb; for each tag: bpf_skb_vlan_push(skb, htons(tpid), vid); return TCX_PASS."""
    code = _insn(_MOV64_REG, dst=_REG_CTX_SAVE, src=1)
    for tag in tags:
        code += _insn(_MOV64_REG, dst=1, src=_REG_CTX_SAVE)
        code += _insn(_MOV64_IMM, dst=2, imm=socket.htons(tag.tpid))
        code += _insn(_MOV64_IMM, dst=3, imm=tag.vid)
        code += _insn(_CALL, imm=_BPF_FUNC_SKB_VLAN_PUSH)
    return code + _insn(_MOV64_IMM, dst=0, imm=_TCX_PASS) + _insn(_EXIT)


def pop_program(count: int) -> bytes:
    """r6 = skb; bpf_skb_vlan_pop(skb) ``count`` times; return TCX_PASS."""
    code = _insn(_MOV64_REG, dst=_REG_CTX_SAVE, src=1)
    for _ in range(count):
        code += _insn(_MOV64_REG, dst=1, src=_REG_CTX_SAVE)
        code += _insn(_CALL, imm=_BPF_FUNC_SKB_VLAN_POP)
    return code + _insn(_MOV64_IMM, dst=0, imm=_TCX_PASS) + _insn(_EXIT)


def _bpf(libc: ctypes.CDLL, cmd: int, attr: bytes) -> int:
    buf = ctypes.create_string_buffer(attr, _ATTR_SIZE)
    result = int(libc.syscall(_SYS_BPF[platform.machine()], cmd, buf, _ATTR_SIZE))
    if result < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"bpf({cmd}): {os.strerror(errno)}")
    return result


def load_program(libc: ctypes.CDLL, code: bytes) -> int:
    """BPF_PROG_LOAD a sched_cls program; return its fd (verifier log in the error)."""
    insns = ctypes.create_string_buffer(code, len(code))
    license_ = ctypes.create_string_buffer(b"Dual MIT/GPL")
    log = ctypes.create_string_buffer(_LOG_SIZE)
    attr = struct.pack(
        "<IIQQIIQ",
        _BPF_PROG_TYPE_SCHED_CLS,
        len(code) // 8,
        ctypes.addressof(insns),
        ctypes.addressof(license_),
        1,  # log_level
        _LOG_SIZE,
        ctypes.addressof(log),
    )
    try:
        return _bpf(libc, _BPF_PROG_LOAD, attr)
    except OSError as exc:
        raise OSError(exc.errno, f"{exc.strerror}; verifier: {log.value.decode(errors='replace')}") from exc


def attach(libc: ctypes.CDLL, ifindex: int, prog_fd: int, attach_type: int) -> None:
    """BPF_PROG_ATTACH to tcx; unlike a BPF link, this stays after the process exits."""
    _bpf(libc, _BPF_PROG_ATTACH, struct.pack("<IIII", ifindex, prog_fd, attach_type, 0))


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    ifname, tags = argv[0], [parse_tag(text) for text in argv[1:]]
    ifindex = socket.if_nametoindex(ifname)
    libc = ctypes.CDLL(None, use_errno=True)
    attach(libc, ifindex, load_program(libc, push_program(tags)), _BPF_TCX_EGRESS)
    attach(libc, ifindex, load_program(libc, pop_program(len(tags))), _BPF_TCX_INGRESS)
    shown = " + ".join(f"{tag.tpid:04x}:{tag.vid}" for tag in reversed(tags))
    print(f"{ifname}: egress pushes {shown} (outer first), ingress pops {len(tags)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
