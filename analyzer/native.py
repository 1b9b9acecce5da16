"""sipflow's hot modules compiled to C by mypyc, when they are, and their source otherwise.

``scripts/compile.py`` (run by ``scripts/setup.sh``) compiles :data:`MODULES` in place: an
extension module beside each source file, which Python's import system prefers to it, and
:data:`MANIFEST`, the CRC-32 of each source compiled. Importing :mod:`analyzer` calls
:func:`guard` first: when a source no longer matches what was compiled (an edit, a checkout)
or ``SIPFLOW_PURE`` is set, every module of :data:`MODULES` is loaded from its source, never
some of each (compiled modules call each other directly, not through the import system). The
compiled build gives the same output as the source, byte for byte (tests/test_native.py).
"""

from __future__ import annotations

import importlib.machinery
import os
import sys
import zlib
from collections.abc import Callable, Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

MODULES = (
    "analyzer.decode.fastpcap",
    "analyzer.decode.pipeline",
    "analyzer.sip.headers",
    "analyzer.sip.parser",
    "analyzer.correlate.model",
    "analyzer.correlate.state",
    "analyzer.correlate.store",
    "analyzer.diagnose.rules",
    "analyzer.diagnose.timing",
    "analyzer.diagnose.verdict",
    "analyzer.diagnose.view",
)
"""What ``scripts/compile.py`` compiles: reading, parsing, the call store and the diagnosis."""

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
"""The directory that holds the ``analyzer`` package."""
MANIFEST = os.path.join(ROOT, "analyzer", "compiled.txt")
"""What was compiled: the extension modules' suffix, then a line per module, its name and the
CRC-32 of the source compiled (:func:`manifest_text`)."""
PURE = "SIPFLOW_PURE"
"""Set (to anything but empty), this environment variable keeps the compiled modules unused."""


def source_path(module: str) -> str:
    return os.path.join(ROOT, *module.split(".")) + ".py"


def checksum(data: bytes) -> int:
    return zlib.crc32(data)


SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]
"""What this interpreter's extension modules are named with (``.cpython-311-x86_64-linux-gnu.so``)."""


def compiled_path(module: str) -> str:
    return os.path.join(ROOT, *module.split(".")) + SUFFIX


def manifest_text(modules: Sequence[str], read: Callable[[str], bytes]) -> str:
    """The manifest of ``modules`` as their sources read now (``read``: a module's source),
    for this interpreter's extension modules."""
    return f"suffix {SUFFIX}\n" + "".join(f"{m} {checksum(read(m))}\n" for m in modules)


def fresh(
    manifest: str | None, modules: Sequence[str], read: Callable[[str], bytes], exists: Callable[[str], bool]
) -> bool:
    """The manifest names exactly ``modules`` for this interpreter, each with the CRC-32 of
    its source now, and each compiled module is there (``exists``)."""
    if manifest is None:
        return False
    try:
        return manifest == manifest_text(modules, read) and all(exists(m) for m in modules)
    except OSError:
        return False


def has_compiled(module: str) -> bool:
    return os.path.isfile(compiled_path(module))


def read_source(module: str) -> bytes:
    with open(source_path(module), "rb") as f:
        return f.read()


def read_manifest() -> str | None:
    try:
        with open(MANIFEST, encoding="utf-8") as f:
            return f.read()
    except (OSError, ValueError):
        return None


class _Sources:
    """A finder ahead of the others that loads :data:`MODULES` from their source files."""

    def __init__(self, modules: Sequence[str]) -> None:
        self.modules = frozenset(modules)

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname not in self.modules:
            return None
        name = fullname.rpartition(".")[2]
        for folder in path or ():
            file = os.path.join(folder, name + ".py")
            if os.path.isfile(file):
                import importlib.util  # only when the compiled modules are not taken

                return importlib.util.spec_from_file_location(fullname, file)
        return None


_state = ["source"]
"""What :func:`guard` found (a list: set without ``global``)."""


def guard() -> None:
    """Keep the compiled modules unused unless they are fresh and wanted (see the module's text)."""
    if os.environ.get(PURE):
        _state[0] = f"source ({PURE} is set)"
    elif not fresh(manifest := read_manifest(), MODULES, read_source, has_compiled):
        _state[0] = "source" if manifest is None else "source (the compiled modules are stale: scripts/compile.py)"
    else:
        _state[0] = f"compiled with mypyc ({len(MODULES)} modules)"
        return
    if not any(isinstance(f, _Sources) for f in sys.meta_path):
        sys.meta_path.insert(0, _Sources(MODULES))


def state() -> str:
    """How the hot modules run: ``compiled with mypyc (11 modules)``, or ``source`` and why."""
    return _state[0]
