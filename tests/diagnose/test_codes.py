"""The response-code catalogue: registry entries, classes and the RFC 3261 §8.1.3.2 fallback."""

from __future__ import annotations

import pytest

from analyzer.diagnose.codes import CATALOGUE, ResponseCode, code_class, lookup

# Every code of the IANA "Response Codes" registry.
REGISTRY = (
    *(100, 180, 181, 182, 183, 199),
    *(200, 202, 204),
    *(300, 301, 302, 305, 380),
    *(400, 401, 402, 403, 404, 405, 406, 407, 408, 410, 412, 413, 414, 415, 416, 417),
    *(420, 421, 422, 423, 424, 425, 428, 429, 430, 433, 436, 437, 438, 439, 440),
    *(469, 470, 480, 481, 482, 483, 484, 485, 486, 487, 488, 489, 491, 493, 494),
    *(500, 501, 502, 503, 504, 505, 513, 555, 580),
    *(600, 603, 604, 606, 607, 608),
)


@pytest.mark.parametrize(
    ("code", "reason", "cls", "rfc"),
    [
        (100, "Trying", "provisional", "RFC 3261"),
        (183, "Session Progress", "provisional", "RFC 3261"),
        (199, "Early Dialog Terminated", "provisional", "RFC 6228"),
        (204, "No Notification", "success", "RFC 5839"),
        (302, "Moved Temporarily", "redirection", "RFC 3261"),
        (380, "Alternative Service", "redirection", "RFC 3261"),
        (407, "Proxy Authentication Required", "client-failure", "RFC 3261"),
        (417, "Unknown Resource-Priority", "client-failure", "RFC 4412"),
        (422, "Session Interval Too Small", "client-failure", "RFC 4028"),
        (425, "Bad Alert Message", "client-failure", "RFC 8876"),
        (433, "Anonymity Disallowed", "client-failure", "RFC 5079"),
        (437, "Unsupported Credential", "client-failure", "RFC 8224"),
        (439, "First Hop Lacks Outbound Support", "client-failure", "RFC 5626"),
        (470, "Consent Needed", "client-failure", "RFC 5360"),
        (481, "Call/Transaction Does Not Exist", "client-failure", "RFC 3261"),
        (494, "Security Agreement Required", "client-failure", "RFC 3329"),
        (504, "Server Time-out", "server-failure", "RFC 3261"),
        (555, "Push Notification Service Not Supported", "server-failure", "RFC 8599"),
        (580, "Precondition Failure", "server-failure", "RFC 3312"),
        (604, "Does Not Exist Anywhere", "global-failure", "RFC 3261"),
        (607, "Unwanted", "global-failure", "RFC 8197"),
        (608, "Rejected", "global-failure", "RFC 8688"),
    ],
)
def test_registered_entries(code: int, reason: str, cls: str, rfc: str) -> None:
    entry = lookup(code)
    assert (entry.reason, entry.cls, entry.rfc, entry.registered) == (reason, cls, rfc, True)
    assert entry is CATALOGUE[code]


def test_488_hint_is_concrete() -> None:
    assert lookup(488) == ResponseCode(
        code=488,
        reason="Not Acceptable Here",
        cls="client-failure",
        rfc="RFC 3261",
        meaning="The callee rejected the session description: codecs, media types, encryption or addresses.",
        hint="Compare the offered codecs with what the callee accepts; enable a common codec "
        "(e.g. G.711) or transcoding on the SBC/PBX.",
    )


def test_catalogue_is_exactly_the_registry() -> None:
    assert sorted(CATALOGUE) == sorted(REGISTRY)
    assert len(CATALOGUE) == 75


def test_every_entry_is_filled_in() -> None:
    for code, entry in CATALOGUE.items():
        assert entry.code == code
        assert entry.reason and entry.reason == entry.reason.strip()
        assert entry.rfc.startswith("RFC ")
        assert entry.meaning.endswith(".") and entry.hint.endswith(".")
        assert entry.cls == code_class(code)


def test_catalogue_is_read_only() -> None:
    with pytest.raises(TypeError):
        CATALOGUE[499] = CATALOGUE[400]  # type: ignore[index]


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (100, "provisional"),
        (199, "provisional"),
        (200, "success"),
        (399, "redirection"),
        (488, "client-failure"),
        (599, "server-failure"),
        (699, "global-failure"),
    ],
)
def test_code_class(code: int, cls: str) -> None:
    assert code_class(code) == cls


@pytest.mark.parametrize("code", [-1, 0, 99, 700, 999, 1000])
def test_out_of_range(code: int) -> None:
    with pytest.raises(ValueError, match="not a SIP response code"):
        code_class(code)
    # a status line allows any three digits: the diagnosis reads such a code as invalid
    entry = lookup(code)
    assert (entry.code, entry.reason, entry.cls, entry.registered) == (
        code,
        "Not a SIP response code",
        "invalid",
        False,
    )
    assert entry.meaning.startswith("RFC 3261 §7.2 defines response codes 100 to 699 only")


@pytest.mark.parametrize(
    ("code", "reason", "cls"),
    [
        # RFC 3261 §8.1.3.2: unknown final responses read as x00 of their class ...
        (299, "Unknown (treated as 200 OK)", "success"),
        (399, "Unknown (treated as 300 Multiple Choices)", "redirection"),
        (499, "Unknown (treated as 400 Bad Request)", "client-failure"),
        (409, "Unknown (treated as 400 Bad Request)", "client-failure"),
        (599, "Unknown (treated as 500 Server Internal Error)", "server-failure"),
        (699, "Unknown (treated as 600 Busy Everywhere)", "global-failure"),
        # ... unknown provisional ones as 183.
        (101, "Unknown (treated as 183 Session Progress)", "provisional"),
        (190, "Unknown (treated as 183 Session Progress)", "provisional"),
    ],
)
def test_unknown_code_is_read_by_class(code: int, reason: str, cls: str) -> None:
    entry = lookup(code)
    assert (entry.code, entry.reason, entry.cls, entry.rfc, entry.registered) == (
        code,
        reason,
        cls,
        "RFC 3261",
        False,
    )
    assert code not in CATALOGUE


def test_unknown_code_texts() -> None:
    entry = lookup(499)
    assert entry.meaning == ("Not a registered code; a client must read it as 400 Bad Request (RFC 3261 §8.1.3.2).")
    assert entry.hint == (
        "Read its reason phrase and any Warning or Reason header for what the sender meant; "
        "otherwise handle it like 400."
    )
