"""Fixtures for the live tests: namespaces that are deleted whatever the test did."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest

from tests.live.netns import NsPair, can_run, kill_namespace


@pytest.fixture
def make_pair(request: pytest.FixtureRequest) -> Iterator[Callable[[int], NsPair]]:
    """``make_pair(mtu)``: a fresh uac/uas namespace pair joined by a veth pair."""
    why = can_run()
    if why:
        pytest.skip(why)
    made: list[NsPair] = []

    def make(mtu: int = 1500) -> NsPair:
        pair = NsPair(f"{os.getpid() % 100000}{len(made)}{request.node.name[5:7]}", mtu=mtu)
        made.append(pair)
        return pair.up()

    try:
        yield make
    finally:
        for pair in made:
            pair.down()


@pytest.fixture
def make_ns(request: pytest.FixtureRequest) -> Iterator[Callable[[], str]]:
    """``make_ns()``: a fresh namespace with only loopback, up."""
    why = can_run()
    if why:
        pytest.skip(why)
    made: list[str] = []

    def make() -> str:
        from tests.live.netns import run

        ns = f"sfl-{os.getpid() % 100000}-{len(made)}{request.node.name[5:9]}"
        kill_namespace(ns)
        made.append(ns)
        run("ip", "netns", "add", ns)
        run("ip", "-n", ns, "link", "set", "lo", "up")
        return ns

    try:
        yield make
    finally:
        for ns in made:
            kill_namespace(ns)
