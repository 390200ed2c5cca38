#!/usr/bin/env bash
# The test suite under sanitizers:
#   ./scripts/sanitize.sh [asan] [tsan]      (default: both)
#
#   asan  ASan + UBSan build in build-asan/; every GoogleTest, C ABI test and
#         fuzz-corpus replay (ctest labels below)
#   tsan  TSan build in build-tsan/; the threaded tests: the engine suite
#         (every end-to-end test runs the loop on its own thread, and
#         EngineThreads.* sends from others) and the C ABI tests (stop and
#         send from a non-loop thread; test_c_poll_threads: threads taking
#         turns at polling), and ChatMultiLoop.* (a chat over two loops). Every
#         tests/capi/*.c is a test_c_* target with
#         the capi label, so a new C test is in both modes by its name
#
# Only the test targets are built. Any sanitizer report fails the run
# (halt_on_error / abort_on_error).
#
#   CHATWS_ASAN_BUILD_DIR=build-asan  CHATWS_TSAN_BUILD_DIR=build-tsan
#   CHATWS_JOBS=2                     build and ctest jobs
#
# Exits non-zero on any failure; the last line is a one-line summary.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
JOBS="${CHATWS_JOBS:-2}"
ASAN_DIR="${CHATWS_ASAN_BUILD_DIR:-build-asan}"
TSAN_DIR="${CHATWS_TSAN_BUILD_DIR:-build-tsan}"
case "$ASAN_DIR" in /*) ;; *) ASAN_DIR="$ROOT/$ASAN_DIR" ;; esac
case "$TSAN_DIR" in /*) ;; *) TSAN_DIR="$ROOT/$TSAN_DIR" ;; esac
if [ $# -gt 0 ]; then MODES=("$@"); else MODES=(asan tsan); fi

# ctest labels (tests/CMakeLists.txt: one per test folder).
ASAN_LABELS='^(protocol|http|net|engine|chat|capi|capi_cpp|alloc|fuzz)$'
TSAN_LABELS='^(net|engine|capi)$'
# ... and, by name, the chat tests that run several event loops at once.
TSAN_EXTRA='^ChatMultiLoop\.'
# Excluded under UBSan only: this test leaves the process no free file
# descriptor, and UBSan's vptr check then cannot validate a vtable (it needs
# a pipe) and reports "invalid vptr" on a valid object: a false positive.
# It runs in the normal ctest and under TSan.
ASAN_EXCLUDE='^Limits\.DescriptorExhaustionShedsAndRecovers$'

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:strict_string_checks=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1"

start_time=$(date +%s)
results=()
failed=0

# The test executables that exist in this tree: GoogleTest binaries, the C
# tests, the fuzz replays.
test_targets() {
  local dir=$1
  ninja -C "$dir" -t targets all 2>/dev/null \
    | sed -n 's/^\(chatws_[a-z0-9_]*_tests\|test_c_[a-z0-9_]*\|fuzz_replay_[a-z0-9_]*\): .*/\1/p' \
    | grep -v '^chatws_bench_tests$' | sort -u
}

# TSan needs the address-space layout it was built for; kernels with high
# mmap randomisation break it, so run without ASLR when setarch can.
no_aslr() {
  if setarch "$(uname -m)" -R true 2>/dev/null; then
    setarch "$(uname -m)" -R "$@"
  else
    "$@"
  fi
}

run_mode() {
  local mode=$1 dir sanitize labels exclude
  case "$mode" in
    asan) dir=$ASAN_DIR; sanitize=address,undefined; labels=$ASAN_LABELS; exclude=$ASAN_EXCLUDE ;;
    tsan) dir=$TSAN_DIR; sanitize=thread; labels=$TSAN_LABELS; exclude='^$' ;;
    *) echo "unknown mode: $mode (asan, tsan)" >&2; return 2 ;;
  esac
  local t0; t0=$(date +%s)
  if [ ! -f "$dir/CMakeCache.txt" ]; then
    cmake -S "$ROOT" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DCHATWS_SANITIZE="$sanitize" -DCHATWS_TESTS=ON -DCHATWS_EXAMPLES=OFF \
      -DCHATWS_BENCH=OFF -DCHATWS_INSTALL=OFF --log-level=WARNING >/dev/null \
      || { results+=("$mode: configure FAILED"); return 1; }
  fi
  local targets
  mapfile -t targets < <(test_targets "$dir")
  if [ "$mode" = tsan ]; then
    # The threaded tests only (see the top).
    mapfile -t targets < <(printf '%s\n' "${targets[@]}" | grep -E '^(chatws_net_tests|chatws_engine_tests|chatws_chat_tests|test_c_)')
  fi
  [ ${#targets[@]} -gt 0 ] || { results+=("$mode: no test targets"); return 1; }
  if ! cmake --build "$dir" -j "$JOBS" --target "${targets[@]}" >"$dir/sanitize-build.log" 2>&1; then
    tail -30 "$dir/sanitize-build.log"
    results+=("$mode: build FAILED (see $dir/sanitize-build.log)")
    return 1
  fi
  local log="$dir/sanitize-ctest.log" rc
  no_aslr ctest --test-dir "$dir" -L "$labels" -E "$exclude" -j "$JOBS" --timeout 600 --output-on-failure \
    >"$log" 2>&1
  rc=$?
  if [ "$mode" = tsan ]; then
    no_aslr ctest --test-dir "$dir" -R "$TSAN_EXTRA" -j "$JOBS" --timeout 600 --output-on-failure \
      >>"$log" 2>&1 || rc=1
  fi
  local line; line=$(grep -E 'tests passed|tests failed' "$log" | paste -sd ';' -)
  local reports; reports=$(grep -cE '^(==[0-9]+==ERROR|SUMMARY: (Address|Undefined|Thread|Leak)Sanitizer|WARNING: ThreadSanitizer)|runtime error:' "$log")
  if [ $rc -ne 0 ] || [ "$reports" -ne 0 ]; then
    grep -E -B2 -A40 'ERROR: (Address|Leak)Sanitizer|WARNING: ThreadSanitizer|runtime error:' "$log" | head -120
    grep -E '^\s+[0-9]+ - ' "$log" | head -20
    results+=("$mode: FAILED: ${line:-no ctest summary}, $reports sanitizer reports (see $log, $(( $(date +%s) - t0 ))s)")
    return 1
  fi
  results+=("$mode: ok: ${line}, 0 sanitizer reports ($(( $(date +%s) - t0 ))s)")
}

for m in "${MODES[@]}"; do
  run_mode "$m" || failed=1
done
for r in "${results[@]}"; do echo "  $r"; done
total_s=$(( $(date +%s) - start_time ))
if [ $failed -ne 0 ]; then
  echo "sanitize: FAILED: ${MODES[*]} (${total_s}s)"
  exit 1
fi
echo "sanitize: passed: ${MODES[*]}, no sanitizer reports (${total_s}s)"
