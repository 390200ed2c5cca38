#!/usr/bin/env bash
# Build and run the chat server with its page: ./scripts/run.sh
# Then open http://127.0.0.1:8080/ (in two tabs, to chat with yourself).
# Extra arguments go to the server (e.g. --port 9000 --host 0.0.0.0);
# Ctrl-C stops it gracefully. History persists in ./chatws-history.db.
# It installs only the Debian build packages that are missing (through
# scripts/bootstrap.sh --build-only, which names them first) and builds in
# ./build (CHATWS_BUILD_DIR); the server is build/examples/chat_server.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${CHATWS_BUILD_DIR:-$ROOT/build}"

# Only the build packages (no Python ones): the server is a C program.
[ "${CHATWS_SKIP_BOOTSTRAP:-0}" = 1 ] || "$ROOT/scripts/bootstrap.sh" --build-only
# Same configuration as scripts/test.sh, so the two share one build tree.
cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCHATWS_TESTS=ON -DCHATWS_EXAMPLES=ON -DCHATWS_INSTALL=ON --log-level=WARNING
cmake --build "$BUILD_DIR" -j "${CHATWS_JOBS:-2}" --target chatws_example_chat_server

exec "$BUILD_DIR/examples/chat_server" --port 8080 --static-dir "$ROOT/examples/web" \
  --history "${CHATWS_HISTORY:-$PWD/chatws-history.db}" "$@"
