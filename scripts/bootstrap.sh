#!/usr/bin/env bash
# Install everything chatws needs to build, run and test on Debian 12 (bookworm).
# Idempotent: packages already present are skipped, `apt-get update` only runs
# when something is missing, and the script says nothing when all is present.
# Works as root (CI) or as a user with sudo.
#
# What it installs, and where (also in README.md, "On a fresh machine"):
#   - the Debian packages below, system-wide, through apt-get (it names them
#     first and apt prints its progress);
#   - the Python packages of requirements-dev.txt, through pip, into the
#     interpreter $PYTHON: scripts/test.sh passes the venv it made (.venv) or
#     $CHATWS_PYTHON; run on its own, PYTHON defaults to python3, and an
#     interpreter outside a virtual environment is refused unless
#     CHATWS_ALLOW_SYSTEM_PIP=1 says so.
#
#   scripts/bootstrap.sh               everything (build, tests, benchmarks)
#   scripts/bootstrap.sh --build-only  only what building the library and the
#                                      examples needs (no Python packages)
set -euo pipefail

# ---------------------------------------------------------------------------
# The package lists. Add new dependencies here (one per line, with the reason).
# ---------------------------------------------------------------------------
DEB_BUILD_PACKAGES=(
  cmake ninja-build g++ pkg-config  # the build
  libssl-dev                        # libcrypto (handshake SHA-1), libssl (TLS)
  libsimdjson-dev                   # JSON parsing and UTF-8 validation
  libsqlite3-dev                    # durable chat history
  libhiredis-dev                    # Redis client for cluster mode (driven by the chatws loop)
  zlib1g-dev                        # permessage-deflate (RFC 7692)
)
DEB_PACKAGES=(
  "${DEB_BUILD_PACKAGES[@]}"
  binutils                          # nm/readelf for the ABI checks
  openssl                           # the CLI makes test certificates
  sqlite3                           # the CLI, for debugging the history file
  libgtest-dev                      # C++ unit tests
  clang libclang-rt-14-dev          # sanitizer and fuzz builds
  chromium chromium-driver          # browser tests (selenium)
  curl                              # an independent HTTP client for the static-file tests
  libwebsocketpp-dev libboost-dev   # peer server for the benchmarks
  iproute2                          # ip: IPv6 test addresses in the per-address limit test's own netns; ss: Send-Q in the kernel-queue test
  prometheus                        # promtool check metrics, and a real scraper in the metrics tests
  redis-server                      # the cluster tests start their own Redis
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
BUILD_ONLY=0
case "${1:-}" in
  --build-only) BUILD_ONLY=1 ;;
  "") ;;
  -h|--help) sed -n '2,20p' "${BASH_SOURCE[0]}"; exit 0 ;;
  *) echo "bootstrap: unknown option '$1' (--build-only, --help)" >&2; exit 2 ;;
esac
[ "$BUILD_ONLY" = 1 ] && DEB_PACKAGES=("${DEB_BUILD_PACKAGES[@]}") && DEB_BY_COMMAND=()

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
  log "installing ${#missing[@]} Debian package(s) system-wide with apt-get (this can take" \
    "several minutes; apt's progress follows): ${missing[*]}"
  log "apt-get update"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
  # Not -qq: apt's per-package lines are the progress of a long step.
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    -o Dpkg::Use-Pty=0 "${missing[@]}"
  log "Debian packages installed"
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
  log "installing Debian package $1 system-wide with apt-get"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    -o Dpkg::Use-Pty=0 "$1"
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
  local reqs=() where
  mapfile -t reqs <<<"$missing"
  where="$("$PYTHON" -c 'import sys; print(sys.prefix)')"
  if [ "$("$PYTHON" -c 'import sys; print(sys.prefix != sys.base_prefix)')" != True ] &&
     [ "${CHATWS_ALLOW_SYSTEM_PIP:-0}" != 1 ]; then
    log "$PYTHON is not a virtual environment ($where): not installing ${reqs[*]} into it;" \
      "use scripts/test.sh (it makes .venv), PYTHON=/path/to/venv/bin/python, or" \
      "CHATWS_ALLOW_SYSTEM_PIP=1"
    return 1
  fi
  log "installing Python packages into $where with pip: ${reqs[*]}"
  # One line per package as progress; with pipefail the status is pip's.
  "$PYTHON" -m pip install --progress-bar off --disable-pip-version-check \
    --root-user-action=ignore "${reqs[@]}" 2>&1 |
    { grep --line-buffered -E '^(Collecting|Successfully|ERROR)' >&2 || true; }
}

install_debian_packages
[ "$BUILD_ONLY" = 1 ] && exit 0
check_python_headers
install_python_packages
