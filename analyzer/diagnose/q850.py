"""ITU-T Q.850 cause values, and the SIP response a gateway sends for each.

A cause reaches SIP in a Reason header (``Reason: Q.850;cause=17;text="User busy"``),
in BYE and CANCEL (RFC 3326) and in final responses (RFC 6432). The names are those of
Q.850 Table 1 (05/1998 and its amendments). The cause class is bits 7-5 of the value
(Q.850 §2.2.5), so it is computed, not listed.

:func:`sip_code_for_cause` follows the ISUP-to-SIP table of RFC 3398 §7.2.4.1, which is
what a gateway uses to pick the response it sends when the PSTN side releases a call.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

NAMES: Final = MappingProxyType(
    {
        # Normal class (causes 1-31)
        1: "Unallocated (unassigned) number",
        2: "No route to specified transit network",
        3: "No route to destination",
        4: "Send special information tone",
        5: "Misdialled trunk prefix",
        6: "Channel unacceptable",
        7: "Call awarded and being delivered in an established channel",
        8: "Preemption",
        9: "Preemption - circuit reserved for reuse",
        14: "QoR: ported number",
        16: "Normal call clearing",
        17: "User busy",
        18: "No user responding",
        19: "No answer from user (user alerted)",
        20: "Subscriber absent",
        21: "Call rejected",
        22: "Number changed",
        23: "Redirection to new destination",
        24: "Call rejected due to feature at the destination",
        25: "Exchange routing error",
        26: "Non-selected user clearing",
        27: "Destination out of order",
        28: "Invalid number format (address incomplete)",
        29: "Facility rejected",
        30: "Response to STATUS ENQUIRY",
        31: "Normal, unspecified",
        # Resource unavailable class (32-47)
        34: "No circuit/channel available",
        38: "Network out of order",
        39: "Permanent frame mode connection out of service",
        40: "Permanent frame mode connection operational",
        41: "Temporary failure",
        42: "Switching equipment congestion",
        43: "Access information discarded",
        44: "Requested circuit/channel not available",
        46: "Precedence call blocked",
        47: "Resource unavailable, unspecified",
        # Service or option not available class (48-63)
        49: "Quality of service not available",
        50: "Requested facility not subscribed",
        53: "Outgoing calls barred within CUG",
        55: "Incoming calls barred within CUG",
        57: "Bearer capability not authorized",
        58: "Bearer capability not presently available",
        62: "Inconsistency in designated outgoing access information and subscriber class",
        63: "Service or option not available, unspecified",
        # Service or option not implemented class (64-79)
        65: "Bearer capability not implemented",
        66: "Channel type not implemented",
        69: "Requested facility not implemented",
        70: "Only restricted digital information bearer capability is available",
        79: "Service or option not implemented, unspecified",
        # Invalid message class (80-95)
        81: "Invalid call reference value",
        82: "Identified channel does not exist",
        83: "A suspended call exists, but this call identity does not",
        84: "Call identity in use",
        85: "No call suspended",
        86: "Call having the requested call identity has been cleared",
        87: "User not member of CUG",
        88: "Incompatible destination",
        90: "Non-existent CUG",
        91: "Invalid transit network selection",
        95: "Invalid message, unspecified",
        # Protocol error class (96-111)
        96: "Mandatory information element is missing",
        97: "Message type non-existent or not implemented",
        98: "Message not compatible with call state or message type non-existent or not implemented",
        99: "Information element/parameter non-existent or not implemented",
        100: "Invalid information element contents",
        101: "Message not compatible with call state",
        102: "Recovery on timer expiry",
        103: "Parameter non-existent or not implemented - passed on",
        110: "Message with unrecognized parameter discarded",
        111: "Protocol error, unspecified",
        # Interworking class (112-127)
        127: "Interworking, unspecified",
    }
)
"""Assigned cause value → its Q.850 name."""

CLASSES: Final = (
    "normal",
    "normal",
    "resource unavailable",
    "service or option not available",
    "service or option not implemented",
    "invalid message",
    "protocol error",
    "interworking",
)
"""Cause class by bits 7-5 of the cause value (Q.850 §2.2.5): classes 000 and 001 are both normal."""

SIP_FOR_CAUSE: Final = MappingProxyType(
    {
        # RFC 3398 §7.2.4.1, ISUP cause value → SIP response.
        1: 404,
        2: 404,
        3: 404,
        17: 486,
        18: 408,
        19: 480,
        20: 480,
        # 603 instead when the cause location is "user" (same table, note "+"); a Reason
        # header carries no location, so the network reading is kept.
        21: 403,
        # 301 instead when the diagnostic carries the new number; not known from SIP.
        22: 410,
        23: 410,
        26: 404,
        27: 502,
        28: 484,
        29: 501,
        31: 480,
        34: 503,
        38: 503,
        41: 503,
        42: 503,
        47: 503,
        55: 403,
        57: 403,
        58: 503,
        65: 488,
        70: 488,
        79: 501,
        87: 403,
        88: 503,
        102: 504,
        111: 500,
        127: 500,
    }
)
"""The causes RFC 3398 maps explicitly. Cause 16 is absent: normal clearing becomes a BYE or
CANCEL, not a response."""

_SIP_FOR_CLASS: Final = (480, 480, 503, 503, 501, 500, 500, 500)
"""sipflow's choice for causes RFC 3398 leaves out: what the table gives the 'unspecified'
cause of the same class (31 → 480, 47 → 503, 79 → 501, 111 and 127 → 500); the two classes
whose 'unspecified' cause is not in the table follow their listed neighbours (58 → 503) or
the protocol-error reading (500)."""


def cause_name(cause: int) -> str:
    """``17`` → ``User busy``; ``Unknown cause N`` for a value Q.850 does not assign."""
    return NAMES.get(cause, f"Unknown cause {cause}")


def cause_class(cause: int) -> str:
    """``34`` → ``resource unavailable``. ValueError outside 0..127 (a cause is 7 bits)."""
    _check(cause)
    return CLASSES[cause >> 4]


def sip_code_for_cause(cause: int) -> int:
    """The SIP response a gateway sends for a PSTN release with this cause.

    Listed causes follow RFC 3398 §7.2.4.1; any other cause in 0..127 (16 included, in
    case a response must be sent anyway) gets the code of its class (see
    :data:`_SIP_FOR_CLASS`). ValueError outside 0..127.
    """
    _check(cause)
    return SIP_FOR_CAUSE.get(cause, _SIP_FOR_CLASS[cause >> 4])


def _check(cause: int) -> None:
    # Q.850 §2.2.5: the cause value is a 7-bit field.
    if not 0 <= cause <= 127:
        raise ValueError(f"not a Q.850 cause value: {cause}")
