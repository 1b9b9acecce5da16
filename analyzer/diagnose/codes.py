"""The SIP response-code catalogue: every code of the IANA registry, with advice.

The codes and reason phrases are those of the IANA "Session Initiation Protocol (SIP)
Parameters — Response Codes" registry (first filled by RFC 3261 §27.4); ``rfc`` names the
document the registry points to. ``meaning`` and ``hint`` are sipflow's own words: what
the code usually means on a real network, and what a VoIP engineer can check first.

A code that is not in the registry is read the way a UAC must read it (RFC 3261
§8.1.3.2): a final response as the x00 code of its class, a provisional one as 183.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final


@dataclass(frozen=True, slots=True)
class ResponseCode:
    """One SIP response code and what to do about it."""

    code: int
    reason: str
    """Reason phrase as registered (for an unregistered code: how it is read)."""
    cls: str
    """``provisional``, ``success``, ``redirection``, ``client-failure``, ``server-failure``
    or ``global-failure`` (RFC 3261 §21); ``invalid`` for a code outside 100..699."""
    rfc: str
    """Reference of the registry entry, e.g. ``RFC 3261``."""
    meaning: str
    """What it means in practice, one sentence."""
    hint: str
    """What to check or change, one sentence."""
    registered: bool = True
    """False for a code outside the registry, built by :func:`lookup` from its class."""


CLASSES: Final = MappingProxyType(
    {
        1: "provisional",
        2: "success",
        3: "redirection",
        4: "client-failure",
        5: "server-failure",
        6: "global-failure",
    }
)
"""First digit → class name (RFC 3261 §7.2, §21)."""

# (code, reason phrase, reference, meaning, hint), in registry order.
_ENTRIES: Final[tuple[tuple[int, str, str, str, str], ...]] = (
    # -- 1xx provisional (RFC 3261 §21.1) -----------------------------------------------------
    (
        100,
        "Trying",
        "RFC 3261",
        "The next hop has the request and is working on it; it only stops the caller retransmitting.",
        "Nothing to fix by itself; if no other response follows, look at where the next hop routes "
        "the request and at its timers.",
    ),
    (
        180,
        "Ringing",
        "RFC 3261",
        "The callee's device is alerting the user.",
        "If the call then ends with a timeout or CANCEL, nobody answered: check no-answer timers "
        "and forwarding rules on the callee side.",
    ),
    (
        181,
        "Call Is Being Forwarded",
        "RFC 3261",
        "A server is sending the call on to another destination.",
        "Follow the forwarded leg (Diversion or History-Info headers) to see where the call went.",
    ),
    (
        182,
        "Queued",
        "RFC 3261",
        "The callee cannot take the call now and the server put it in a queue instead of rejecting it.",
        "Check the queue or ACD settings if callers wait too long or are never connected.",
    ),
    (
        183,
        "Session Progress",
        "RFC 3261",
        "Call progress without ringing, usually early media (tones or announcements) described in an SDP body.",
        "If the caller hears silence, check that early-media RTP from the callee side gets through "
        "NAT and firewalls and that the caller plays it.",
    ),
    (
        199,
        "Early Dialog Terminated",
        "RFC 6228",
        "An early dialog (one fork of the call) ended before the final response was sent.",
        "Usually informational; look at the final response of the branch that ended to learn why.",
    ),
    # -- 2xx success (RFC 3261 §21.2) ---------------------------------------------------------
    (
        200,
        "OK",
        "RFC 3261",
        "The request succeeded; for an INVITE the call is answered.",
        "Nothing to fix; if media fails afterwards, compare offer and answer SDP and check that "
        "the ACK reaches the callee.",
    ),
    (
        202,
        "Accepted",
        "RFC 6665",
        "The request was accepted but not yet acted on; RFC 6665 deprecates it for SUBSCRIBE and REFER.",
        "Expect the result in a later NOTIFY; new implementations should answer 200 instead.",
    ),
    (
        204,
        "No Notification",
        "RFC 5839",
        "A subscription refresh succeeded and no NOTIFY will follow because the state has not changed.",
        "Nothing to fix; the subscriber keeps the state it already holds for that entity-tag.",
    ),
    # -- 3xx redirection (RFC 3261 §21.3) -----------------------------------------------------
    (
        300,
        "Multiple Choices",
        "RFC 3261",
        "The address resolved to several locations, listed in Contact, for the caller to choose from.",
        "Let the caller or an upstream proxy recurse on the Contact list, or make the server fork "
        "the call instead of redirecting.",
    ),
    (
        301,
        "Moved Permanently",
        "RFC 3261",
        "The user is no longer at the Request-URI; the new address is in Contact.",
        "Update the dialled address or directory entry to the Contact URI and make sure the caller follows redirects.",
    ),
    (
        302,
        "Moved Temporarily",
        "RFC 3261",
        "The user can be reached for now at the Contact address, typically call forwarding.",
        "Make sure the caller or upstream proxy follows 3xx redirects, or have the server proxy the call itself.",
    ),
    (
        305,
        "Use Proxy",
        "RFC 3261",
        "The request must go through the proxy named in Contact.",
        "Set the caller's outbound proxy to the one in Contact; many devices ignore 305 on purpose.",
    ),
    (
        380,
        "Alternative Service",
        "RFC 3261",
        "The call failed, but the response describes other services that could be used instead.",
        "Read the body and Contact of the response for the suggested alternative (common for "
        "emergency-call redirection).",
    ),
    # -- 4xx client failure (RFC 3261 §21.4 and extensions) -----------------------------------
    (
        400,
        "Bad Request",
        "RFC 3261",
        "The server could not parse the request.",
        "Read the reason phrase and Warning header for the faulty part and fix the sender "
        "(often a malformed URI, a missing header or a wrong Content-Length).",
    ),
    (
        401,
        "Unauthorized",
        "RFC 3261",
        "The registrar or callee wants credentials and sent a WWW-Authenticate challenge.",
        "Normal as a first answer; if it repeats after credentials were sent, check the "
        "username, password and realm configured on the client.",
    ),
    (
        402,
        "Payment Required",
        "RFC 3261",
        "Reserved by the standard; some providers send it when the account has no credit.",
        "Check the balance and billing status of the account with the provider.",
    ),
    (
        403,
        "Forbidden",
        "RFC 3261",
        "The server understood the request and refuses it; authenticating will not help.",
        "Check what the caller may do: IP ACL or trusted peers, dial-plan class of service, "
        "account status, and whether its From/P-Asserted-Identity is allowed.",
    ),
    (
        404,
        "Not Found",
        "RFC 3261",
        "The user or number in the Request-URI does not exist in this domain.",
        "Check the dialled number format (E.164, prefixes) and that the callee is provisioned "
        "or registered on that server.",
    ),
    (
        405,
        "Method Not Allowed",
        "RFC 3261",
        "The method is known but not allowed for this address; Allow lists what is.",
        "Compare with the Allow header and stop sending that method (e.g. UPDATE, INFO) or enable it on the receiver.",
    ),
    (
        406,
        "Not Acceptable",
        "RFC 3261",
        "The server can only answer with content the Accept headers of the request exclude.",
        "Widen the Accept, Accept-Encoding or Accept-Language headers the client sends, or add "
        "the requested content type on the server.",
    ),
    (
        407,
        "Proxy Authentication Required",
        "RFC 3261",
        "A proxy wants credentials and sent a Proxy-Authenticate challenge before forwarding.",
        "Normal as a first answer; if it repeats, check the client's credentials and realm for "
        "that proxy, or trust the peer's IP address on the proxy.",
    ),
    (
        408,
        "Request Timeout",
        "RFC 3261",
        "No final response arrived in time from further along the path.",
        "Check that the next hop is reachable: registration still valid, NAT bindings kept "
        "alive, firewall or SIP ALG not dropping packets, callee device responding.",
    ),
    (
        410,
        "Gone",
        "RFC 3261",
        "The user used to exist here but is no longer available, and no new address is known.",
        "Remove or update that number or URI in the dial plan or directory.",
    ),
    (
        412,
        "Conditional Request Failed",
        "RFC 3903",
        "A PUBLISH refers to an entity-tag (SIP-If-Match) the server no longer holds.",
        "Have the publisher send a fresh initial PUBLISH without SIP-If-Match; the earlier "
        "publication has probably expired.",
    ),
    (
        413,
        "Request Entity Too Large",
        "RFC 3261",
        "The request body is larger than the server accepts.",
        "Shrink the body (fewer codecs or ICE candidates, no large multipart) or raise the "
        "server's limit; for UDP also consider TCP.",
    ),
    (
        414,
        "Request-URI Too Long",
        "RFC 3261",
        "The Request-URI is longer than the server is willing to read.",
        "Shorten the Request-URI on the sender by dropping URI parameters and headers it does not need.",
    ),
    (
        415,
        "Unsupported Media Type",
        "RFC 3261",
        "The server does not support the body format (Content-Type or Content-Encoding).",
        "Look at the Accept header of the response and send a body type it lists, such as application/sdp.",
    ),
    (
        416,
        "Unsupported URI Scheme",
        "RFC 3261",
        "The server does not handle the scheme of the Request-URI (e.g. tel: or sips:).",
        "Convert the URI on the sender to a scheme the next hop supports (often sip: with user=phone).",
    ),
    (
        417,
        "Unknown Resource-Priority",
        "RFC 4412",
        "The request required a Resource-Priority namespace or value the server does not know.",
        "Align the Resource-Priority namespaces on both sides or stop requiring the resource-priority option tag.",
    ),
    (
        420,
        "Bad Extension",
        "RFC 3261",
        "The request required an extension the server lacks; Unsupported names it.",
        "Remove that option tag from Require or Proxy-Require on the sender (e.g. 100rel, "
        "timer) or enable the extension on the receiver.",
    ),
    (
        421,
        "Extension Required",
        "RFC 3261",
        "The server needs an extension, named in Require, that the request did not declare.",
        "Enable that extension on the caller (often 100rel or timer) and list it in Supported.",
    ),
    (
        422,
        "Session Interval Too Small",
        "RFC 4028",
        "The Session-Expires value is below the server's minimum, given in Min-SE.",
        "Raise the session-timer interval on the caller to at least the Min-SE value (90 s or more).",
    ),
    (
        423,
        "Interval Too Brief",
        "RFC 3261",
        "The registration or subscription expiry is shorter than the server allows; Min-Expires gives the minimum.",
        "Set the client's registration or subscription expiry to at least the Min-Expires value.",
    ),
    (
        424,
        "Bad Location Information",
        "RFC 6442",
        "The location conveyed with the request (Geolocation header, PIDF-LO body) was malformed or unsuitable.",
        "Check the Geolocation header and location body produced by the device or location server.",
    ),
    (
        425,
        "Bad Alert Message",
        "RFC 8876",
        "The alert message attached to the request (e.g. a CAP emergency alert) could not be processed.",
        "Read the AlertMsg-Error code in the response and fix the alert payload the sender attached.",
    ),
    (
        428,
        "Use Identity Header",
        "RFC 8224",
        "The receiver's policy requires a signed Identity header (STIR/SHAKEN) and the request had none.",
        "Have the originating carrier or SBC sign the call (add a STIR/SHAKEN Identity header) "
        "before it reaches this peer.",
    ),
    (
        429,
        "Provide Referrer Identity",
        "RFC 3892",
        "The REFER target wants a valid Referred-By token from the party transferring the call.",
        "Make the transferring device include a signed Referred-By token, or relax that policy on the transfer target.",
    ),
    (
        430,
        "Flow Failed",
        "RFC 5626",
        "An edge proxy could not use the SIP Outbound flow that leads to the user agent.",
        "Let the device re-register to build a new flow and check its keep-alives (CRLF or STUN) against NAT timeouts.",
    ),
    (
        433,
        "Anonymity Disallowed",
        "RFC 5079",
        "The callee refuses calls whose caller identity is withheld.",
        "Send a presentable caller ID (no Privacy: id, no anonymous From) or ask the callee to accept anonymous calls.",
    ),
    (
        436,
        "Bad Identity Info",
        "RFC 8224",
        "The certificate reference in the Identity header could not be fetched or used.",
        "Check that the certificate URL in the Identity header is reachable over HTTPS from the "
        "verifier and serves a valid certificate.",
    ),
    (
        437,
        "Unsupported Credential",
        "RFC 8224",
        "The verifier does not accept the certificate that signed the Identity header.",
        "Check the signing certificate's chain and trust anchor and that it covers the calling number.",
    ),
    (
        438,
        "Invalid Identity Header",
        "RFC 8224",
        "The Identity header signature did not verify (bad signature, altered fields or stale date).",
        "Make sure no intermediary rewrites From, To or Date after signing and that the signer's clock is right.",
    ),
    (
        439,
        "First Hop Lacks Outbound Support",
        "RFC 5626",
        "The registrar supports SIP Outbound but the first-hop proxy does not.",
        "Disable outbound (reg-id, +sip.instance) on the device or enable RFC 5626 support on the edge proxy.",
    ),
    (
        440,
        "Max-Breadth Exceeded",
        "RFC 5393",
        "Parallel forking stopped because the Max-Breadth budget was used up.",
        "Reduce parallel forking (fewer contacts or targets) or look for proxies forking to each other.",
    ),
    (
        469,
        "Bad Info Package",
        "RFC 6086",
        "The INFO request used an Info Package the receiver did not accept for this dialog.",
        "Use a package the peer listed in Recv-Info, or send DTMF as RFC 4733 telephone-events instead of INFO.",
    ),
    (
        470,
        "Consent Needed",
        "RFC 5360",
        "A relay will not forward to the listed recipients until they give permission.",
        "Obtain the recipients' consent (permission documents) or send to them without the relay.",
    ),
    (
        480,
        "Temporarily Unavailable",
        "RFC 3261",
        "The callee exists but cannot be reached now (not registered, do-not-disturb or not answering).",
        "Check that the callee is registered and reachable, that do-not-disturb is off and "
        "that its registration has not lapsed behind NAT.",
    ),
    (
        481,
        "Call/Transaction Does Not Exist",
        "RFC 3261",
        "The request matched no dialog or transaction the receiver knows.",
        "Look for lost or mismatched dialog state: Call-ID or tags changed by a B2BUA, a "
        "restart, or in-dialog requests sent to a wrong Contact or Record-Route behind NAT.",
    ),
    (
        482,
        "Loop Detected",
        "RFC 3261",
        "The server received a request it had already forwarded.",
        "Look for routing rules that send the call back where it came from, such as two "
        "servers or trunks pointing at each other.",
    ),
    (
        483,
        "Too Many Hops",
        "RFC 3261",
        "Max-Forwards reached zero before the request arrived.",
        "Look for a routing loop between servers, or a too-low Max-Forwards set by the originator.",
    ),
    (
        484,
        "Address Incomplete",
        "RFC 3261",
        "The dialled number or URI is incomplete.",
        "Check the dial-plan digit matching and number normalisation, and send the complete "
        "number (E.164) or enable overlap dialling.",
    ),
    (
        485,
        "Ambiguous",
        "RFC 3261",
        "The Request-URI matches more than one user.",
        "Dial a more specific address and look for duplicate aliases in the directory.",
    ),
    (
        486,
        "Busy Here",
        "RFC 3261",
        "The callee's device is busy and will not take another call here.",
        "A normal user state; enable call waiting, voicemail or busy forwarding if such calls should still be handled.",
    ),
    (
        487,
        "Request Terminated",
        "RFC 3261",
        "The request was ended by a CANCEL before it got a final answer (caller hung up or a fork was cancelled).",
        "Usually expected; if not, find who sent the CANCEL and why (caller timeout or a proxy's no-answer timer).",
    ),
    (
        488,
        "Not Acceptable Here",
        "RFC 3261",
        "The callee rejected the session description: codecs, media types, encryption or addresses.",
        "Compare the offered codecs with what the callee accepts; enable a common codec "
        "(e.g. G.711) or transcoding on the SBC/PBX.",
    ),
    (
        489,
        "Bad Event",
        "RFC 6665",
        "The notifier does not know the event package named in the Event header.",
        "Subscribe only to packages the notifier lists in Allow-Events, or enable the package on the server.",
    ),
    (
        491,
        "Request Pending",
        "RFC 3261",
        "An offer arrived while another offer/answer exchange in the same dialog was still pending (glare).",
        "Usually resolved by retrying after a random delay (RFC 3261 §14.1); if it persists, "
        "stop both ends sending re-INVITEs at the same moment.",
    ),
    (
        493,
        "Undecipherable",
        "RFC 3261",
        "The request carried an encrypted (S/MIME) body the recipient cannot decrypt.",
        "Turn off S/MIME body encryption on the sender or give the recipient the right key.",
    ),
    (
        494,
        "Security Agreement Required",
        "RFC 3329",
        "The server requires a security mechanism to be agreed first (Security-Server header).",
        "Enable sec-agree on the device and retry with Security-Verify naming one of the "
        "offered mechanisms (typical of IMS).",
    ),
    # -- 5xx server failure (RFC 3261 §21.5 and extensions) -----------------------------------
    (
        500,
        "Server Internal Error",
        "RFC 3261",
        "The server hit an unexpected condition while handling the request.",
        "Check that server's logs at the time of the call; a Retry-After header means the problem may be temporary.",
    ),
    (
        501,
        "Not Implemented",
        "RFC 3261",
        "The server does not support the request method at all.",
        "Stop sending that method to this peer (see its Allow header) or upgrade the server.",
    ),
    (
        502,
        "Bad Gateway",
        "RFC 3261",
        "A gateway or proxy got an invalid response from the server behind it.",
        "Investigate the downstream server or trunk the gateway talks to; the fault is beyond the one that answered.",
    ),
    (
        503,
        "Service Unavailable",
        "RFC 3261",
        "The server is overloaded, in maintenance, or has no usable route or trunk for the call.",
        "Check trunk and gateway status and channel limits, honour Retry-After, and fail over "
        "to another route if one exists.",
    ),
    (
        504,
        "Server Time-out",
        "RFC 3261",
        "A server got no timely answer from a further server (or from DNS) it needed.",
        "Check reachability and DNS resolution of the next hop as seen from the server that sent the 504.",
    ),
    (
        505,
        "Version Not Supported",
        "RFC 3261",
        "The server does not support the SIP version in the request.",
        "Make the sender use SIP/2.0.",
    ),
    (
        513,
        "Message Too Large",
        "RFC 3261",
        "The message is longer than the server can process.",
        "Shrink the message (fewer headers, codecs or candidates) or send large messages over TCP (RFC 3261 §18.1.1).",
    ),
    (
        555,
        "Push Notification Service Not Supported",
        "RFC 8599",
        "The server does not support the push notification service named in pn-provider.",
        "Configure the app to use a push service the server supports, or enable that service "
        "on the proxy or registrar.",
    ),
    (
        580,
        "Precondition Failure",
        "RFC 3312",
        "The server cannot meet the QoS or security preconditions the offer requires.",
        "Check resource reservation on both ends or stop requiring preconditions (Require: precondition) in the offer.",
    ),
    # -- 6xx global failure (RFC 3261 §21.6 and extensions) -----------------------------------
    (
        600,
        "Busy Everywhere",
        "RFC 3261",
        "The callee is busy and knows no other destination would take the call.",
        "A user state; retry later or route the call to voicemail.",
    ),
    (
        603,
        "Decline",
        "RFC 3261",
        "The callee explicitly refused the call.",
        "A user action (reject key, block list); check call-screening rules on the callee if it was not expected.",
    ),
    (
        604,
        "Does Not Exist Anywhere",
        "RFC 3261",
        "The server knows for certain that the user does not exist anywhere.",
        "Check the dialled number or URI; the destination is unassigned or was deprovisioned.",
    ),
    (
        606,
        "Not Acceptable",
        "RFC 3261",
        "The callee wants to talk but can support no part of the offered session.",
        "Compare the offered media with the callee's capabilities (codecs, bandwidth, media "
        "types) and offer a common codec such as G.711.",
    ),
    (
        607,
        "Unwanted",
        "RFC 8197",
        "The callee marked the call as unwanted (spam or robocall).",
        "Check the calling number's reputation and STIR/SHAKEN attestation; the callee may block it from now on.",
    ),
    (
        608,
        "Rejected",
        "RFC 8688",
        "An intermediary such as a call-analytics or blocking service rejected the call, not the callee.",
        "Use the contact in the response's Call-Info (jCard) to reach the operator that "
        "blocked the call and dispute the classification.",
    ),
)


INVALID = "invalid"
"""The class :func:`lookup` gives a code outside 100..699."""


def is_response_code(code: int) -> bool:
    """Whether ``code`` is in 100..699, the codes RFC 3261 §7.2 defines."""
    return 100 <= code <= 699


def code_class(code: int) -> str:
    """``488`` → ``client-failure``; ValueError outside 100..699 (RFC 3261 §7.2)."""
    if not is_response_code(code):
        raise ValueError(f"not a SIP response code: {code}")
    return CLASSES[code // 100]


def _build() -> Mapping[int, ResponseCode]:
    return MappingProxyType(
        {
            code: ResponseCode(code, reason, code_class(code), rfc, meaning, hint)
            for code, reason, rfc, meaning, hint in _ENTRIES
        }
    )


CATALOGUE: Final[Mapping[int, ResponseCode]] = _build()
"""Every registered response code → its entry (read-only)."""


def lookup(code: int) -> ResponseCode:
    """The entry for ``code``; an unregistered code is read by its class.

    RFC 3261 §8.1.3.2: an unknown final response is treated as the x00 code of its
    class, and an unknown provisional response (other than 100) as 183 Session Progress.
    The entry returned keeps ``code`` and says so in ``reason``, with ``registered=False``.
    A code outside 100..699 (a status line allows any three digits, RFC 3261 §25.1) fits no
    class: its entry says so, with the class ``invalid``.
    """
    entry = CATALOGUE.get(code)
    if entry is not None:
        return entry
    if not is_response_code(code):
        return ResponseCode(
            code=code,
            reason="Not a SIP response code",
            cls=INVALID,
            rfc="RFC 3261",
            meaning="RFC 3261 §7.2 defines response codes 100 to 699 only: this one fits no class, so no "
            "client can act on it.",
            hint="The sender is broken, or something on the path (an SBC, an ALG) damaged the status line: "
            "capture at the sender and check its software.",
            registered=False,
        )
    cls = code_class(code)
    base = CATALOGUE[183 if cls == "provisional" else code // 100 * 100]
    return ResponseCode(
        code=code,
        reason=f"Unknown (treated as {base.code} {base.reason})",
        cls=cls,
        rfc="RFC 3261",
        meaning=f"Not a registered code; a client must read it as {base.code} {base.reason} (RFC 3261 §8.1.3.2).",
        hint=f"Read its reason phrase and any Warning or Reason header for what the sender meant; "
        f"otherwise handle it like {base.code}.",
        registered=False,
    )
