"""Runs the soak test (scripts/soak.py) in its short mode against the real
chat server: 300 clients for about 30 s, slow readers, one kill -9 and
restart, then the durability, delivery and resource checks.

The server is the C example: $CHATWS_CHAT_SERVER, else
$CHATWS_BUILD_DIR/examples/chat_server (build/ by default); or a command
template in $CHATWS_SOAK_SERVER_CMD ({port} {history} {history_size}).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SOAK = REPO_ROOT / "scripts" / "soak.py"
# The short mode takes about 45 s; the bound leaves room for a loaded machine.
TIMEOUT_S = 240


def server_args() -> list[str]:
    cmd = os.environ.get("CHATWS_SOAK_SERVER_CMD", "").strip()
    if cmd:
        return ["--server", cmd]
    binary = os.environ.get("CHATWS_CHAT_SERVER", "").strip()
    if not binary:
        build = REPO_ROOT / os.environ.get("CHATWS_BUILD_DIR", "build")
        binary = str(build / "examples" / "chat_server")
    if not os.access(binary, os.X_OK):
        pytest.fail(f"no chat server at {binary}: build the chat_server example "
                    "(or set $CHATWS_CHAT_SERVER / $CHATWS_BUILD_DIR)")
    return ["--server", f"{binary} --port {{port}} --history {{history}} "
                        f"--history-size {{history_size}}"]


def test_soak_short(tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, str(SOAK), "--short", "--workdir", str(tmp_path / "work"),
         "--json", str(report_path), *server_args()],
        capture_output=True, text=True, timeout=TIMEOUT_S)
    print(proc.stdout)
    print(proc.stderr, file=sys.stderr)
    assert report_path.exists(), f"no report (exit {proc.returncode})"
    report = json.loads(report_path.read_text())
    failed = [c for c in report["checks"] if not c["ok"]]
    assert not failed, f"soak checks failed: {failed}\nproblems: {report['problems'][:10]}"
    assert proc.returncode == 0

    # The run really exercised what it claims to check.
    m = report["messages"]
    assert report["restarts"] == 1
    assert m["acked_well_behaved"] > 1000
    assert m["window_checks"] > m["acked_well_behaved"]  # each ack checked against many receivers
    assert report["after_restart"]["stored"] > 0
    assert report["server_1008_closes"]["slow"] > 0
    last = report["processes"][-1]
    assert last["fds_after"] == last["fds_baseline"]
