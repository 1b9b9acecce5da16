#!/usr/bin/env bash
# Set up sipflow on a fresh Debian/Ubuntu machine: system tools, a virtualenv, the package.
# Idempotent; safe to run again. System packages need root (or sudo) and are skipped otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(tshark tcpdump sip-tester sngrep kamailio iproute2 gzip chromium socat openssl)

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

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'
