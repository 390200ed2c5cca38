#!/usr/bin/env bash
# Install everything chatws needs to build, run and test on Debian 12 (bookworm).
# Idempotent: packages already present are skipped, `apt-get update` only runs
# when something is missing, and the script says nothing when all is present.
# Works as root (CI) or as a user with sudo.
set -euo pipefail

# ---------------------------------------------------------------------------
# The package lists. Add new dependencies here (one per line, with the reason).
# ---------------------------------------------------------------------------
DEB_PACKAGES=(
  cmake ninja-build g++ pkg-config  # the build
  binutils                          # nm/readelf for the ABI checks
  libssl-dev openssl                # libcrypto (handshake SHA-1), libssl (TLS); the CLI makes test certificates
  libsimdjson-dev                   # JSON parsing and UTF-8 validation
  libsqlite3-dev sqlite3            # durable chat history (+ CLI for debugging)
  zlib1g-dev                        # permessage-deflate
  libgtest-dev                      # C++ unit tests
  clang libclang-rt-14-dev          # sanitizer and fuzz builds
  chromium chromium-driver          # browser tests (selenium)
  curl                              # an independent HTTP client for the static-file tests
  libwebsocketpp-dev libboost-dev   # peer server for the benchmarks
  iproute2                          # ip: IPv6 test addresses in the per-address limit test's own netns
  prometheus                        # promtool check metrics, and a real scraper in the metrics tests
)
# Installed only when the command is missing: Node may come from another
# source (e.g. nodesource, which bundles npm and conflicts with Debian's npm).
DEB_BY_COMMAND=(
  "node:nodejs"                     # the original Node chat server, for comparisons
)
# Python packages live in requirements-dev.txt at the repository root.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REQUIREMENTS="$ROOT/requirements-dev.txt"
PYTHON="${PYTHON:-python3}"

log() { printf 'bootstrap: %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    log "need root to run: $* (no sudo found)"
    return 1
  fi
}

deb_installed() {
  [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]
}

install_debian_packages() {
  local missing=() pkg entry
  for pkg in "${DEB_PACKAGES[@]}"; do
    deb_installed "$pkg" || missing+=("$pkg")
  done
  for entry in "${DEB_BY_COMMAND[@]}"; do
    command -v "${entry%%:*}" >/dev/null 2>&1 || missing+=("${entry#*:}")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
}

check_python_headers() {
  # The extension is built against the interpreter on PATH (pyenv here), whose
  # headers ship with it; a Debian system Python needs python3-dev instead.
  local inc
  inc="$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
  if [ ! -f "$inc/Python.h" ]; then
    if [ "$("$PYTHON" -c 'import sys; print(sys.prefix)')" = "/usr" ]; then
      install_one_deb python3-dev
    else
      log "Python.h not found in $inc; install the headers for $PYTHON"
      return 1
    fi
  fi
}

install_one_deb() {
  deb_installed "$1" && return 0
  log "installing Debian package: $1"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$1" >/dev/null
}

install_python_packages() {
  # Ask the interpreter which requirements are unmet (name and version), so
  # that pip, which is slow even when it has nothing to do, runs only if needed.
  local missing
  missing="$("$PYTHON" - "$REQUIREMENTS" <<'PY'
import sys
from importlib import metadata
try:
    from packaging.requirements import Requirement
except ImportError:  # pip always vendors it
    from pip._vendor.packaging.requirements import Requirement

for line in open(sys.argv[1], encoding="utf-8"):
    line = line.split("#", 1)[0].strip()
    if not line:
        continue
    req = Requirement(line)
    try:
        version = metadata.version(req.name)
    except metadata.PackageNotFoundError:
        print(line)
        continue
    if req.specifier and not req.specifier.contains(version, prereleases=True):
        print(line)
PY
)"
  [ -z "$missing" ] && return 0
  local reqs=()
  mapfile -t reqs <<<"$missing"
  log "installing Python packages: ${reqs[*]}"
  "$PYTHON" -m pip install -q --disable-pip-version-check --root-user-action=ignore "${reqs[@]}"
}

install_debian_packages
check_python_headers
install_python_packages
