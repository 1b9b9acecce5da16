"""Fixtures shared by every test: where the captures are, and the ``tools`` marker skip."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.oracle import SAMPLE_PCAPS, SHARED_PCAPS


@pytest.fixture(scope="session")
def shared_pcaps() -> Path:
    """The team's public captures (``../shared/pcaps``), used by path, never copied."""
    if not SHARED_PCAPS.is_dir():
        pytest.skip(f"{SHARED_PCAPS} not present")
    return SHARED_PCAPS


@pytest.fixture(scope="session")
def sample_pcaps() -> Path:
    """The project's own ``sample_pcaps`` directory (may be empty)."""
    return SAMPLE_PCAPS


def pytest_runtest_setup(item: pytest.Item) -> None:
    # `tools` tests compare against Debian tools; without tshark there is nothing to compare to.
    if item.get_closest_marker("tools") is not None and shutil.which("tshark") is None:
        pytest.skip("tshark not installed (tools marker)")
