"""Q.850 cause names, classes and the RFC 3398 cause → SIP response mapping."""

from __future__ import annotations

import pytest

from analyzer.diagnose.q850 import NAMES, SIP_FOR_CAUSE, cause_class, cause_name, sip_code_for_cause


@pytest.mark.parametrize(
    ("cause", "name"),
    [
        (1, "Unallocated (unassigned) number"),
        (3, "No route to destination"),
        (16, "Normal call clearing"),
        (17, "User busy"),
        (18, "No user responding"),
        (19, "No answer from user (user alerted)"),
        (21, "Call rejected"),
        (27, "Destination out of order"),
        (28, "Invalid number format (address incomplete)"),
        (31, "Normal, unspecified"),
        (34, "No circuit/channel available"),
        (38, "Network out of order"),
        (41, "Temporary failure"),
        (42, "Switching equipment congestion"),
        (47, "Resource unavailable, unspecified"),
        (58, "Bearer capability not presently available"),
        (65, "Bearer capability not implemented"),
        (88, "Incompatible destination"),
        (102, "Recovery on timer expiry"),
        (111, "Protocol error, unspecified"),
        (127, "Interworking, unspecified"),
    ],
)
def test_cause_name(cause: int, name: str) -> None:
    assert cause_name(cause) == name


@pytest.mark.parametrize("cause", [0, 10, 32, 104, 126, 128, -5])
def test_unassigned_cause_name(cause: int) -> None:
    assert cause_name(cause) == f"Unknown cause {cause}"


def test_assigned_causes() -> None:
    assert len(NAMES) == 71
    assert all(1 <= cause <= 127 for cause in NAMES)


@pytest.mark.parametrize(
    ("cause", "cls"),
    [
        (1, "normal"),
        (16, "normal"),
        (31, "normal"),
        (34, "resource unavailable"),
        (47, "resource unavailable"),
        (57, "service or option not available"),
        (63, "service or option not available"),
        (65, "service or option not implemented"),
        (79, "service or option not implemented"),
        (81, "invalid message"),
        (95, "invalid message"),
        (96, "protocol error"),
        (111, "protocol error"),
        (127, "interworking"),
    ],
)
def test_cause_class(cause: int, cls: str) -> None:
    assert cause_class(cause) == cls


@pytest.mark.parametrize(
    ("cause", "code"),
    [
        # Rows of the RFC 3398 table.
        (1, 404),
        (2, 404),
        (3, 404),
        (17, 486),
        (18, 408),
        (19, 480),
        (20, 480),
        (21, 403),
        (22, 410),
        (23, 410),
        (26, 404),
        (27, 502),
        (28, 484),
        (29, 501),
        (31, 480),
        (34, 503),
        (38, 503),
        (41, 503),
        (42, 503),
        (47, 503),
        (55, 403),
        (57, 403),
        (58, 503),
        (65, 488),
        (70, 488),
        (79, 501),
        (87, 403),
        (88, 503),
        (102, 504),
        (111, 500),
        (127, 500),
        # Not in the table: the code of the cause's class.
        (16, 480),
        (0, 480),
        (6, 480),
        (44, 503),
        (63, 503),
        (66, 501),
        (95, 500),
        (97, 500),
        (120, 500),
    ],
)
def test_sip_code_for_cause(cause: int, code: int) -> None:
    assert sip_code_for_cause(cause) == code


def test_table_has_every_rfc3398_row() -> None:
    assert len(SIP_FOR_CAUSE) == 31
    assert 16 not in SIP_FOR_CAUSE


@pytest.mark.parametrize("cause", [-1, 128, 999])
def test_out_of_range(cause: int) -> None:
    with pytest.raises(ValueError, match=r"not a Q\.850 cause value"):
        sip_code_for_cause(cause)
    with pytest.raises(ValueError, match=r"not a Q\.850 cause value"):
        cause_class(cause)
