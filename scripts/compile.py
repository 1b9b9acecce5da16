"""Compile sipflow's hot modules (analyzer.native.MODULES) with mypyc, in place.

    .venv/bin/python scripts/compile.py          # when a source changed since the last time
    .venv/bin/python scripts/compile.py --force  # again anyway
    .venv/bin/python scripts/compile.py --clean  # remove them: sipflow runs from source

scripts/setup.sh runs it. It needs a C compiler and the interpreter's headers (Debian: gcc,
libc6-dev, python3-dev, which scripts/setup.sh installs); without them it says so and sipflow runs from source, with
the same output. Until the modules are compiled again, an edited source is what runs
(analyzer/native.py checks each source against what was compiled).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analyzer import native  # noqa: E402

GROUP = "analyzer._native"
"""The compiled modules are one group: one shared library, ``analyzer/_native__mypyc*.so``."""


def _built() -> list[Path]:
    """Every extension module this script may have left in the package."""
    return [p for p in (ROOT / "analyzer").rglob("*.so") if p.is_file()]


def clean() -> None:
    Path(native.MANIFEST).unlink(missing_ok=True)  # first: a half-removed build is never taken for fresh
    for p in _built():
        p.unlink()


def why_not() -> str | None:
    """Why mypyc cannot compile here, or None."""
    if sys.implementation.name != "cpython":
        return f"mypyc compiles for CPython, not {sys.implementation.name}"
    include = sysconfig.get_paths()["include"]
    if not Path(include, "Python.h").is_file():
        return f"no Python.h in {include} (Debian: apt-get install python3-dev)"
    compiler = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()[0]  # CC: as setuptools
    if shutil.which(compiler) is None:
        return f"no C compiler ({compiler}; Debian: apt-get install gcc libc6-dev)"
    try:
        import mypyc.build  # noqa: F401
    except ImportError:
        return "mypyc is not installed (pip install -e '.[dev]')"
    return None


def build() -> None:
    from mypyc.build import mypycify
    from setuptools import Distribution

    clean()
    paths = [native.source_path(m) for m in native.MODULES]
    with tempfile.TemporaryDirectory(prefix="sipflow-mypyc-") as tmp, contextlib.chdir(ROOT):
        extensions = mypycify(paths, opt_level="3", group_name=GROUP, target_dir=os.path.join(tmp, "c"))
        dist = Distribution({"name": "sipflow-native", "ext_modules": extensions})
        cmd = dist.get_command_obj("build_ext")
        cmd.inplace = True  # type: ignore[attr-defined]
        cmd.build_temp = os.path.join(tmp, "temp")  # type: ignore[attr-defined]
        dist.run_command("build_ext")
    Path(native.MANIFEST).write_text(native.manifest_text(native.MODULES, native.read_source), encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--force", action="store_true", help="compile even when nothing changed")
    parser.add_argument("--clean", action="store_true", help="remove the compiled modules")
    parser.add_argument("--build", action="store_true", help=argparse.SUPPRESS)  # the child below
    args = parser.parse_args()
    if args.build:
        build()
        return 0
    if args.clean:
        clean()
        print("compile: removed the compiled modules; sipflow runs from source", file=sys.stderr)
        return 0
    fresh = native.fresh(native.read_manifest(), native.MODULES, native.read_source, native.has_compiled)
    if fresh and not args.force:
        return 0
    reason = why_not()
    if reason is not None:
        clean()
        print(f"compile: not compiled, sipflow runs from source: {reason}", file=sys.stderr)
        return 0
    print(f"compile: compiling {len(native.MODULES)} modules with mypyc (about 30 s)", file=sys.stderr)
    with tempfile.TemporaryFile("w+") as log:
        # mypyc and the compiler talk a lot: in a child, to a log shown only when it fails
        done = subprocess.run([sys.executable, __file__, "--build"], stdout=log, stderr=subprocess.STDOUT, check=False)
        if done.returncode != 0:
            clean()
            log.seek(0)
            tail = "\n  ".join(log.read().strip().splitlines()[-12:])
            print(f"compile: failed, sipflow runs from source:\n  {tail}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
