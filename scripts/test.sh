#!/usr/bin/env bash
# The whole test suite, from a fresh machine: ./scripts/test.sh
#
# Runs a list of stages (below), each a function, records its status and
# duration, prints a summary, and exits non-zero if any stage failed. A
# failed stage does not stop the later ones unless they depend on it (no
# build: no tests).
#
#   CHATWS_STAGES="build ctest"  run only these stages (space-separated)
#   CHATWS_BUILD_DIR=build       the CMake build directory
#   CHATWS_JOBS=2                parallel build and test jobs
#   CHATWS_SKIP_BOOTSTRAP=1      don't install missing packages
#   CHATWS_PYTHON=/path/python   the Python to test with (e.g. your own venv);
#                                default: .venv in the repository, created here
#                                (--system-site-packages) on first use
#
# Nothing is installed into the system's Python: the Python test tools and
# the chatws package go into that venv (the Debian packages, system-wide,
# through scripts/bootstrap.sh, which names them first).
#   FUZZ_SECONDS=60              fuzzing time per target
#
# Adding a stage: write a function stage_<name> that returns non-zero on
# failure (or $SKIP when it has nothing to do), and add <name> to STAGES.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1

BUILD_DIR="${CHATWS_BUILD_DIR:-build}"
JOBS="${CHATWS_JOBS:-2}"
SKIP=77  # a stage's "nothing to do here"

# The Python of every Python stage: $CHATWS_PYTHON, else ./.venv (made here).
if [ -n "${CHATWS_PYTHON:-}" ]; then
  PYTHON="$CHATWS_PYTHON"
else
  PYTHON="$ROOT/.venv/bin/python"
  if [ ! -x "$PYTHON" ]; then
    echo "test.sh: creating the virtual environment $ROOT/.venv (python3 -m venv --system-site-packages)"
    python3 -m venv --system-site-packages "$ROOT/.venv" || exit 1
  fi
fi
echo "test.sh: Python: $PYTHON"
export PYTHON

STAGES=(bootstrap configure build ctest conformance python cluster docs package browser soak sanitizers fuzz)

# ------------------------------------------------------------------ stages

stage_bootstrap() {
  [ "${CHATWS_SKIP_BOOTSTRAP:-0}" = 1 ] && return $SKIP
  PYTHON="$PYTHON" "$ROOT/scripts/bootstrap.sh"
}

stage_configure() {
  cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCHATWS_TESTS=ON -DCHATWS_EXAMPLES=ON -DCHATWS_INSTALL=ON -DCHATWS_BENCH=ON \
    -DCHATWS_BENCH_PEERS=OFF --log-level=WARNING
}

stage_build() {
  cmake --build "$BUILD_DIR" -j "$JOBS"
}

stage_ctest() {
  # The install test is part of ctest (label "install").
  ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$JOBS" --timeout 300
}

# Runs pytest on the directories given that contain tests; exit code 5 ("no
# tests collected") means there is nothing to run yet, not a failure.
run_pytest() {
  local dirs=() d rc
  for d in "$@"; do
    [ -d "$d" ] && [ -n "$(find "$d" -name 'test_*.py' -print -quit)" ] && dirs+=("$d")
  done
  [ ${#dirs[@]} -eq 0 ] && return $SKIP
  "$PYTHON" -m pytest -q "${dirs[@]}"
  rc=$?
  [ $rc -eq 5 ] && return $SKIP
  return $rc
}

stage_python() {
  [ -f "$ROOT/pyproject.toml" ] || return $SKIP
  # A persistent build dir makes the extension build incremental; no build
  # isolation because bootstrap installed scikit-build-core and pybind11.
  "$PYTHON" -m pip install -q --disable-pip-version-check --root-user-action=ignore --no-build-isolation \
    -C build-dir="$(realpath -m "$BUILD_DIR")/python" "$ROOT" || return 1
  run_pytest tests/python
}

# Cluster mode (tests/cluster): nodes (the Python CLI and the C example of
# this build) sharing rooms through a real redis-server that the tests start
# on a free port (bootstrap installs redis-server). Uses the package the
# python stage installed.
stage_cluster() {
  [ -f "$ROOT/pyproject.toml" ] || return $SKIP
  CHATWS_BUILD_DIR="$(realpath -m "$BUILD_DIR")" run_pytest tests/cluster
}

# Every code block of README.md and python/README.md, run as pasted
# (tests/docs): the C quick start against /usr/local (in a throwaway mount
# namespace) and a private prefix, `pip install .` into a fresh venv, ...
stage_docs() {
  CHATWS_BUILD_DIR="$(realpath -m "$BUILD_DIR")" run_pytest tests/docs
}

# The wheel (auditwheel-repaired) and the sdist, each installed into a fresh
# venv of the oldest and the newest supported Python found here (tests/package).
stage_package() {
  CHATWS_BUILD_DIR="$(realpath -m "$BUILD_DIR")" run_pytest tests/package
}

stage_browser() {
  [ -f "$ROOT/pyproject.toml" ] || return $SKIP
  run_pytest tests/browser
}

# Autobahn TestSuite against the echo server of this build: groups 1-10 and
# the permessage-deflate groups 12-13 (about 9 minutes of the stage) over
# ws://, then groups 1-10 over wss:// (through tests/conformance/tls_relay.py),
# then groups 1-10 (and a sample of 12-13) against two event loops (--threads
# 2: about 25 s).
stage_conformance() {
  local rc=0
  "$ROOT/scripts/conformance.sh" "$BUILD_DIR" || rc=1
  CHATWS_CONFORMANCE_TLS=1 "$ROOT/scripts/conformance.sh" "$BUILD_DIR" || rc=1
  CHATWS_CONFORMANCE_THREADS=2 CHATWS_CONFORMANCE_COMPRESSION=sample \
    "$ROOT/scripts/conformance.sh" "$BUILD_DIR" || rc=1
  return $rc
}

# Short soak: 300 clients, slow readers, a kill -9 and restart (tests/soak).
stage_soak() {
  CHATWS_BUILD_DIR="$BUILD_DIR" run_pytest tests/soak
}

# Every GoogleTest and C test under ASan+UBSan, the threaded ones under TSan.
stage_sanitizers() {
  CHATWS_JOBS="$JOBS" "$ROOT/scripts/sanitize.sh"
}

# libFuzzer targets, FUZZ_SECONDS each (one per core at a time).
stage_fuzz() {
  FUZZ_SECONDS="${FUZZ_SECONDS:-60}" CHATWS_JOBS="$JOBS" "$ROOT/scripts/fuzz.sh"
}

# ----------------------------------------------------------------- driver

# Stages that later stages cannot run without.
REQUIRED=(configure build)

declare -A STATUS=() DURATION=()
selected=("${STAGES[@]}")
if [ -n "${CHATWS_STAGES:-}" ]; then
  read -r -a selected <<<"$CHATWS_STAGES"
  for s in "${selected[@]}"; do
    declare -F "stage_$s" >/dev/null || { echo "unknown stage: $s (known: ${STAGES[*]})" >&2; exit 2; }
  done
fi

blocked=""
for s in "${selected[@]}"; do
  if [ -n "$blocked" ]; then
    STATUS[$s]="blocked"
    DURATION[$s]=0
    continue
  fi
  printf '\n=== %s ===\n' "$s"
  start=$(date +%s)
  "stage_$s"
  rc=$?
  DURATION[$s]=$(( $(date +%s) - start ))
  case $rc in
    0) STATUS[$s]="passed" ;;
    "$SKIP") STATUS[$s]="skipped" ;;
    *) STATUS[$s]="FAILED (exit $rc)"
       for r in "${REQUIRED[@]}"; do [ "$r" = "$s" ] && blocked="$s"; done ;;
  esac
done

passed=0 failed=0 skipped=0 total=0
printf '\n=== summary ===\n'
for s in "${selected[@]}"; do
  printf '  %-12s %-18s %4ss\n' "$s" "${STATUS[$s]}" "${DURATION[$s]}"
  total=$(( total + DURATION[$s] ))
  case "${STATUS[$s]}" in
    passed) passed=$((passed + 1)) ;;
    skipped) skipped=$((skipped + 1)) ;;
    *) failed=$((failed + 1)) ;;
  esac
done
[ -n "$blocked" ] && echo "  (stages after a failed $blocked did not run)"
echo "  total ${total}s, ${skipped} skipped"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
