"""The compiled hot modules: taken only when fresh, and the same output as their source."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from analyzer import native
from tests.engines.test_table import captures
from tests.oracle import REPO_ROOT

MODULES = ("analyzer.a", "analyzer.b.c")
SOURCES = {"analyzer.a": b"x = 1\n", "analyzer.b.c": b"y = 2\n"}


def test_a_manifest_names_the_suffix_and_each_source_checksum() -> None:
    text = native.manifest_text(MODULES, SOURCES.__getitem__)
    lines = text.splitlines()
    assert lines[0] == f"suffix {native.SUFFIX}"
    a, c = native.checksum(SOURCES["analyzer.a"]), native.checksum(SOURCES["analyzer.b.c"])
    assert lines[1:] == [f"analyzer.a {a}", f"analyzer.b.c {c}"]


def test_fresh_only_when_every_source_and_compiled_module_is_as_built() -> None:
    built = native.manifest_text(MODULES, SOURCES.__getitem__)
    there = lambda m: True  # noqa: E731
    assert native.fresh(built, MODULES, SOURCES.__getitem__, there)
    edited = {**SOURCES, "analyzer.b.c": b"y = 3\n"}
    assert not native.fresh(built, MODULES, edited.__getitem__, there)
    assert not native.fresh(built, MODULES, SOURCES.__getitem__, lambda m: m != "analyzer.a")
    assert not native.fresh(built, (*MODULES, "analyzer.d"), {**SOURCES, "analyzer.d": b""}.__getitem__, there)
    assert not native.fresh(None, MODULES, SOURCES.__getitem__, there)
    assert not native.fresh(built.replace(native.SUFFIX, ".cpython-399.so"), MODULES, SOURCES.__getitem__, there)

    def gone(m: str) -> bytes:
        raise FileNotFoundError(m)

    assert not native.fresh(built, MODULES, gone, there)


def _run(code: str, **env: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    return out.stdout


_WHERE = "import analyzer, importlib; from analyzer import native; print(native.state()); " + (
    "[print(importlib.import_module(m).__file__) for m in native.MODULES]"
)


def test_sipflow_pure_loads_every_hot_module_from_its_source() -> None:
    state, *files = _run(_WHERE, SIPFLOW_PURE="1").splitlines()
    assert state == "source (SIPFLOW_PURE is set)"
    assert files == [native.source_path(m) for m in native.MODULES]


def _compiled_here() -> bool:
    state = _run(_WHERE, SIPFLOW_PURE="").splitlines()[0]
    if state.startswith("compiled") or not os.environ.get("CI"):
        return state.startswith("compiled")
    pytest.fail(f"CI runs the compiled modules (scripts/setup.sh compiles them); here: {state}")


FUZZ_CORPUS = REPO_ROOT / "tests" / "fuzz_corpus"

RUNS = (
    ("analyze", "--format", "json", "-j", "1"),
    ("analyze", "--format", "json", "-j", "2"),
    ("analyze", "--format", "csv", "-j", "1"),
    ("analyze", "--format", "csv", "-j", "2"),
    ("messages", "--format", "json", "-j", "1", "--show-skipped"),
    ("messages", "--format", "csv", "-j", "2"),
)
"""What each capture is run through, compiled and from source."""


def outputs() -> None:
    """Print what sipflow writes of every shared and sample capture and of the capture
    fuzzers' kept inputs (:data:`RUNS`: two processes where one would do), as a digest of
    the exit code, output and errors per run, for the build this interpreter loads."""
    from click.testing import CliRunner

    import analyzer.shards as shards
    from analyzer.cli import main

    shards.MIN_BYTES_PER_JOB = shards.MIN_SIP_PER_CALLS_JOB = 1  # two processes for any capture
    fuzzed = sorted(p for d in ("pcap", "pcapng") for p in (FUZZ_CORPUS / d).iterdir())
    found = {}
    runner = CliRunner()
    for path in [*captures(), *fuzzed]:
        for args in RUNS:
            r = runner.invoke(main, [args[0], str(path), *args[1:]])
            text = f"{r.exit_code}\n{r.stdout}\n{r.stderr}"
            found[f"{path} {' '.join(args)}"] = hashlib.sha1(text.encode()).hexdigest()
    print(json.dumps(found))


def test_the_compiled_modules_write_what_their_source_writes() -> None:
    if not _compiled_here():
        pytest.skip(f"not compiled here ({native.state()}): scripts/compile.py")
    code = "from tests.test_native import outputs; outputs()"
    compiled = json.loads(_run(code, SIPFLOW_PURE=""))
    source = json.loads(_run(code, SIPFLOW_PURE="1"))
    assert len(compiled) >= len(RUNS) * 100
    assert compiled == source


def test_the_manifest_is_where_the_compiled_modules_are() -> None:
    assert Path(native.MANIFEST).parent == REPO_ROOT / "analyzer"
    assert all(Path(native.source_path(m)).is_file() for m in native.MODULES)
