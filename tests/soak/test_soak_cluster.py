"""Runs the cluster soak (scripts/soak.py --cluster): 3 nodes (the C example
of $CHATWS_BUILD_DIR, build/ by default) sharing rooms through a real
redis-server with AOF, 90 clients for 30 s, one node killed with SIGKILL and
Redis killed and restarted mid-run; then the loss, duplicate and order
checks (about 40 s in all)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SOAK = REPO_ROOT / "scripts" / "soak.py"
TIMEOUT_S = 180  # ~40 s; room for a loaded machine


def test_soak_cluster(tmp_path: Path) -> None:
    build = REPO_ROOT / os.environ.get("CHATWS_BUILD_DIR", "build")
    node = build / "examples" / "chat_server"
    assert os.access(node, os.X_OK), f"no chat server at {node}: build the chat_server example"
    report_path = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, str(SOAK), "--cluster", "--seconds", "30", "--workdir", str(tmp_path / "work"),
         "--json", str(report_path),
         "--server", f"{node} --no-static --port {{port}} --redis {{url}} --node-name {{name}} "
                     "--cluster-retention 100000"],
        capture_output=True, text=True, timeout=TIMEOUT_S)
    print(proc.stdout)
    print(proc.stderr, file=sys.stderr)
    assert report_path.exists(), f"no report (exit {proc.returncode})"
    r = json.loads(report_path.read_text())
    failed = [c for c in r["checks"] if not c["ok"]]
    assert not failed, f"cluster soak checks failed: {failed}\nproblems: {r['problems'][:10]}"
    assert proc.returncode == 0
    # The run really did what it claims.
    assert r["losses"] == 0 and r["duplicates"] == 0 and r["order_violations"] == 0
    assert r["messages"]["acked"] > 1000
    assert r["recoveries"] >= 20  # the killed node's clients, through the others
    assert len(r["events"]) == 3
