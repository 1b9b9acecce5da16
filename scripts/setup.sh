#!/usr/bin/env bash
# Set up sipflow on a fresh Debian/Ubuntu machine: system tools, a virtualenv, the package.
# Idempotent; safe to run again. System packages need root (or sudo) and are skipped otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(tshark tcpdump sip-tester sngrep kamailio iproute2 gzip chromium socat openssl python3-venv gcc libc6-dev python3-dev)

need=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if ((${#need[@]})); then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  if [ -z "$SUDO" ] || command -v sudo >/dev/null; then
    echo "setup: installing ${need[*]}" >&2
    $SUDO apt-get update -qq
    echo "wireshark-common wireshark-common/install-setuid boolean false" | $SUDO debconf-set-selections
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "setup: not root and no sudo: skipping system packages ${need[*]} (tests that need them skip)" >&2
  fi
fi

# The interpreter: $PYTHON when set; else the distribution's /usr/bin/python3 when it is 3.11 or
# newer (Debian and Ubuntu build it with profile-guided and link-time optimisation, as one binary:
# sipflow ran 12 % faster on it than on a pyenv build of Python with a shared libpython; README,
# "Speed"), and the first python3 on the PATH when that one cannot make a virtualenv.
if [ ! -x .venv/bin/python ]; then
  if [ -n "${PYTHON:-}" ]; then
    PY=$PYTHON
  elif /usr/bin/python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    PY=/usr/bin/python3
  else
    PY=python3
  fi
  if ! "$PY" -m venv .venv 2>/dev/null; then
    [ -z "${PYTHON:-}" ] && [ "$PY" != python3 ] || { echo "setup: $PY cannot make a virtualenv" >&2; exit 1; }
    rm -rf .venv
    PY=python3
    "$PY" -m venv .venv
  fi
  echo "setup: .venv made with $PY (Python $(.venv/bin/python -c 'import sys; print(sys.version.split()[0])'))" >&2
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'
# The hot modules compiled with mypyc (README, "Compiled modules"): only when a source changed
# since the last time; without a C compiler or Python's headers, sipflow runs from source.
.venv/bin/python scripts/compile.py
