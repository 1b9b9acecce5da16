"""Every input the fuzzer (``benchmarks/fuzz.py``) found a bug with, replayed through its target.

``tests/fuzz_corpus/<target>/<name>`` holds the inputs: ``<name>`` starts with the
exception the input raised and where (``EOFError-source-47-…``), or libFuzzer's
``timeout-``/``oom-`` prefix for an input that hung or ran out of memory. Each must now
give a result or its layer's documented error, as ``fuzz.check`` defines it.
"""

from __future__ import annotations

import importlib.util
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from types import FrameType, ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "fuzz_corpus"
# Far above what any kept input takes once fixed: it only turns a hang into a failure.
HANG_GUARD_S = 60


def _load_fuzz() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sipflow_fuzz", ROOT / "benchmarks" / "fuzz.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


fuzz = _load_fuzz()
INPUTS = sorted(CORPUS.glob("*/*"))


class Hang(Exception):
    pass


def _alarm(_signum: int, _frame: FrameType | None) -> None:
    raise Hang(f"still running after {HANG_GUARD_S} s")


@pytest.fixture
def hang_guard() -> Iterator[None]:
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(HANG_GUARD_S)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def test_corpus_is_kept_per_target() -> None:
    assert INPUTS, "tests/fuzz_corpus is empty"
    assert {p.parent.name for p in INPUTS} <= set(fuzz.TARGETS)


@pytest.mark.usefixtures("hang_guard")
@pytest.mark.parametrize("path", INPUTS, ids=[f"{p.parent.name}/{p.name}" for p in INPUTS])
def test_replay(path: Path) -> None:
    finding = fuzz.check(path.parent.name, path.read_bytes())
    assert finding is None, finding.text
