#!/usr/bin/env bash
# Fuzzes the parsers with libFuzzer (clang-14, ASan + UBSan):
#   ./scripts/fuzz.sh [TARGET...]        (default: every target)
#
# Builds the fuzz targets into build-fuzz/, replays each target's corpus
# (tests/fuzz/corpus/<target>/: seeds and regression inputs), then fuzzes
# each for FUZZ_SECONDS. New interesting inputs go to
# build-fuzz/corpus/<target>/ (not the repository); a crash, leak, timeout or
# out-of-memory input goes to build-fuzz/artifacts/<target>/ and fails the
# run. To keep a crash as a regression input, copy it into
# tests/fuzz/corpus/<target>/ (the replay runs it from then on), then fix.
#
#   FUZZ_SECONDS=60             time per target
#   CHATWS_FUZZ_BUILD_DIR=build-fuzz
#   CHATWS_JOBS=2               build jobs
#
# Exits non-zero on any failure; the last line is a one-line summary.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${CHATWS_FUZZ_BUILD_DIR:-build-fuzz}"
case "$BUILD_DIR" in /*) ;; *) BUILD_DIR="$ROOT/$BUILD_DIR" ;; esac
SECONDS_PER_TARGET="${FUZZ_SECONDS:-60}"
JOBS="${CHATWS_JOBS:-2}"
ALL_TARGETS=(http_request frame_parser utf8 chat_message request_view deflate_frames)
if [ $# -gt 0 ]; then TARGETS=("$@"); else TARGETS=("${ALL_TARGETS[@]}"); fi

start_time=$(date +%s)
fail() {
  echo "fuzz: FAILED ($*) in $(( $(date +%s) - start_time ))s"
  exit 1
}

command -v clang++-14 >/dev/null || fail "clang++-14 not installed"

if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
  CC=clang-14 CXX=clang++-14 cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCHATWS_FUZZ=ON -DCHATWS_SANITIZE=address,undefined \
    -DCHATWS_TESTS=OFF -DCHATWS_EXAMPLES=OFF -DCHATWS_BENCH=OFF -DCHATWS_INSTALL=OFF \
    --log-level=WARNING >/dev/null || fail "configure"
fi
build_targets=()
for t in "${TARGETS[@]}"; do build_targets+=("fuzz_$t"); done
cmake --build "$BUILD_DIR" -j "$JOBS" --target "${build_targets[@]}" >"$BUILD_DIR/fuzz-build.log" 2>&1 \
  || { tail -30 "$BUILD_DIR/fuzz-build.log"; fail "build"; }

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"

# One target: replay the corpus, then fuzz; the verdict goes to a file so
# that targets can run side by side (one per core).
run_target() {
  local t=$1
  local exe="$BUILD_DIR/tests/fuzz/fuzz_$t"
  local seeds="$ROOT/tests/fuzz/corpus/$t"
  local work="$BUILD_DIR/corpus/$t"
  local artifacts="$BUILD_DIR/artifacts/$t/"
  local log="$BUILD_DIR/fuzz-$t.log"
  local verdict="$BUILD_DIR/fuzz-$t.verdict"
  mkdir -p "$work" "$artifacts"
  rm -f "$artifacts"/* "$verdict"

  # Every seed and regression input first: a known crash must fail fast.
  if ! "$exe" -runs=0 -artifact_prefix="$artifacts" "$seeds" >"$log.replay" 2>&1; then
    tail -40 "$log.replay"
    echo "FAIL $t: CORPUS REPLAY FAILED" >"$verdict"
    return
  fi

  "$exe" -max_total_time="$SECONDS_PER_TARGET" -timeout=25 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$artifacts" "$work" "$seeds" >"$log" 2>&1
  local rc=$?
  local execs corpus found
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  corpus=$(find "$work" -type f | wc -l)
  found=$(find "$artifacts" -type f | wc -l)
  if [ $rc -ne 0 ] || [ "$found" -ne 0 ]; then
    grep -E -A30 'ERROR: (libFuzzer|AddressSanitizer|LeakSanitizer)|runtime error|==ABORTING' "$log" | head -60
    echo "FAIL $t: FAILED (exit $rc, ${execs:-?} execs, artifacts: $(ls "$artifacts" | tr '\n' ' '))" >"$verdict"
  else
    echo "ok $t: ok, ${execs:-?} execs in ${SECONDS_PER_TARGET}s, corpus $corpus" >"$verdict"
  fi
}

running=0
for t in "${TARGETS[@]}"; do
  run_target "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$JOBS" ]; then
    wait -n
    running=$((running - 1))
  fi
done
wait

failed=0
summary=()
for t in "${TARGETS[@]}"; do
  v=$(cat "$BUILD_DIR/fuzz-$t.verdict" 2>/dev/null || echo "FAIL $t: no verdict")
  summary+=("${v#* }")
  case "$v" in ok*) ;; *) failed=1 ;; esac
done

for line in "${summary[@]}"; do echo "  $line"; done
total_s=$(( $(date +%s) - start_time ))
if [ $failed -ne 0 ]; then
  echo "fuzz: FAILED: ${#TARGETS[@]} targets, see $BUILD_DIR/fuzz-*.log (${total_s}s)"
  exit 1
fi
echo "fuzz: passed: ${#TARGETS[@]} targets x ${SECONDS_PER_TARGET}s, no crash (${total_s}s)"
