#!/usr/bin/env bash
# Soak test wrapper: builds the C example chat server if needed, then runs
# scripts/soak.py against it with the arguments given.
#
#   scripts/soak.sh --short
#   scripts/soak.sh --minutes 30 --clients 2000 --json soak-report.json
#
#   CHATWS_BUILD_DIR=build   the CMake build directory (as scripts/test.sh)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="$(realpath -m "${CHATWS_BUILD_DIR:-$ROOT/build}")"

if [ ! -x "$BUILD_DIR/examples/chat_server" ]; then
  if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
    cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
  fi
  cmake --build "$BUILD_DIR" --target chat_server -j "${CHATWS_JOBS:-2}"
fi

export CHATWS_CHAT_SERVER="$BUILD_DIR/examples/chat_server"
exec "${PYTHON:-python3}" "$ROOT/scripts/soak.py" "$@"
