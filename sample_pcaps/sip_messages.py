"""List the SIP messages tshark sees in a capture, one line per message, for generate.sh.

Usage:  sip_messages.py CAPTURE > expected/CAPTURE.tsv
        sip_messages.py --summary CAPTURE     (counts per method / status code, calls)

Output columns: frame, call_id, method_or_status, cseq, cseq_method.

Why PDML and not ``tshark -T fields -E occurrence=a``: over TCP one frame can carry
several SIP messages, and the field lists come back flattened per field (all Call-IDs,
then all methods, then all status codes), so a frame holding "200 OK (INVITE)" and
"BYE" cannot be split back into messages from them. PDML keeps one
``<proto name="sip">`` element per message, in order, so each message keeps its own
fields. SIP heuristics are enabled on every port, as in the project's tshark reference
runs. SIP quoted inside ICMP errors is left out. Standard library only: generate.sh runs
it with the system python3.
"""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass

HEADER = ("frame", "call_id", "method_or_status", "cseq", "cseq_method")

_TSHARK = (
    "tshark",
    "-n",
    "--enable-heuristic",
    "sip_udp",
    "--enable-heuristic",
    "sip_tcp",
    "--enable-heuristic",
    "sip_sctp",
    "-Y",
    # SIP quoted in an ICMP/ICMPv6 error (RFC 792 / RFC 4443 quote the offending datagram)
    # was never delivered: not a message, as in tests/oracle.py.
    "sip && !icmp && !icmpv6",
    "-T",
    "pdml",
)


@dataclass(frozen=True, slots=True)
class SipLine:
    """One SIP message as tshark dissected it."""

    frame: int
    call_id: str
    method_or_status: str
    cseq: str
    cseq_method: str

    def tsv(self) -> str:
        return "\t".join((str(self.frame), self.call_id, self.method_or_status, self.cseq, self.cseq_method))


def _first(proto: ET.Element, name: str) -> str:
    """The ``show`` value of the first field called ``name`` inside one SIP message."""
    for field in proto.iter("field"):
        if field.get("name") == name:
            return field.get("show", "")
    return ""


def _frame_number(packet: ET.Element) -> int:
    for proto in packet.iter("proto"):
        if proto.get("name") == "frame":
            return int(_first(proto, "frame.number"))
    raise ValueError("PDML packet without a frame protocol")


def parse_pdml(pdml: bytes) -> list[SipLine]:
    """Every ``sip`` protocol element of every packet, in frame then message order."""
    lines: list[SipLine] = []
    for packet in ET.fromstring(pdml).iter("packet"):
        frame = _frame_number(packet)
        for proto in packet.iter("proto"):
            if proto.get("name") != "sip":
                continue
            kind = _first(proto, "sip.Method") or _first(proto, "sip.Status-Code")
            lines.append(
                SipLine(
                    frame,
                    _first(proto, "sip.Call-ID"),
                    kind,
                    _first(proto, "sip.CSeq.seq"),
                    _first(proto, "sip.CSeq.method"),
                )
            )
    return lines


def read_capture(path: str) -> list[SipLine]:
    result = subprocess.run([*_TSHARK, "-r", path], capture_output=True, check=True)
    return parse_pdml(result.stdout)


def _kind(line: SipLine) -> str:
    """A request by its method; a response by code and CSeq method (``200/BYE``)."""
    if line.method_or_status.isdigit():
        return f"{line.method_or_status}/{line.cseq_method}"
    return line.method_or_status


def summary(lines: list[SipLine]) -> str:
    """One line: message count, call count, then count per method / status code."""
    kinds = Counter(_kind(line) for line in lines)
    calls = len({line.call_id for line in lines})
    per_kind = " ".join(f"{kind}={count}" for kind, count in sorted(kinds.items()))
    return f"messages={len(lines)} calls={calls} {per_kind}"


def main(argv: list[str]) -> int:
    if argv[:1] == ["--summary"] and len(argv) == 2:
        print(summary(read_capture(argv[1])))
        return 0
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    print("\t".join(HEADER))
    for line in read_capture(argv[0]):
        print(line.tsv())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
