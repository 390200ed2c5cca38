#!/usr/bin/env python3
"""End-to-end smoke test of the benchmark tools: chatws-loadgen against
chatws-bench-server on 127.0.0.1, every mode and write policy, briefly.

The numbers are not checked (performance is for bench/run.py); what is checked
is that every run opens all its connections, moves messages, and ends with no
error and no unexpected close, so that the benchmark stays reproducible.

usage: smoke_test.py SERVER_EXE LOADGEN_EXE
"""
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/
from local_server import free_port, wait_ready  # noqa: E402

READY_TIMEOUT_S = 10.0
RUN_TIMEOUT_S = 60.0

# (server mode, loadgen arguments, what the run must show)
CASES = [
    ("echo", ["--mode", "echo", "--connections", "8"], "messages"),
    ("echo", ["--mode", "echo", "--connections", "8", "--batch-writes"], "messages"),
    ("echo", ["--mode", "echo", "--connections", "4", "--binary", "--size", "4096"], "messages"),
    ("broadcast", ["--mode", "broadcast", "--connections", "20", "--publishers", "2"], "fan-out"),
    ("broadcast", ["--mode", "broadcast", "--connections", "20", "--batch-writes"], "fan-out"),
    ("chat", ["--mode", "broadcast", "--chat", "--connections", "10"], "fan-out"),
    ("echo", ["--mode", "idle", "--connections", "50"], "idle"),
    # wss://: the server gets --tls-cert/--tls-key, the loadgen --tls.
    ("echo", ["--mode", "echo", "--connections", "8", "--tls"], "messages"),
    ("broadcast", ["--mode", "broadcast", "--connections", "20", "--tls"], "fan-out"),
    ("echo", ["--mode", "idle", "--connections", "50", "--tls"], "idle"),
    # --threads: shards of the connections on threads of their own, merged.
    ("echo", ["--mode", "echo", "--connections", "8", "--threads", "2"], "messages"),
    ("broadcast", ["--mode", "broadcast", "--connections", "30", "--publishers", "2",
                   "--threads", "3"], "fan-out"),
    ("echo", ["--mode", "idle", "--connections", "50", "--threads", "2"], "idle"),
]
TLS_DIR = tempfile.mkdtemp(prefix="chatws-smoke-tls-")


def tls_server_args() -> list:
    """A self-signed certificate made for this run (no key is kept)."""
    cert, key = os.path.join(TLS_DIR, "cert.pem"), os.path.join(TLS_DIR, "key.pem")
    if not os.path.exists(cert):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=localhost"],
                       check=True, capture_output=True)
    return ["--tls-cert", cert, "--tls-key", key]


def run_case(server_exe: str, loadgen_exe: str, mode: str, args: list, kind: str) -> list:
    port = free_port()
    tls = tls_server_args() if "--tls" in args else []
    server = subprocess.Popen([server_exe, "--mode", mode, "--port", str(port), *tls],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    problems = []
    try:
        if not wait_ready(server, port, READY_TIMEOUT_S):
            return [f"server --mode {mode} did not start listening on {port}"]
        cmd = [loadgen_exe, "--port", str(port), "--duration", "0.5", "--warmup", "0.1",
               "--server-pid", str(server.pid), "--json", *args]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
        if out.returncode != 0:
            problems.append(f"loadgen exit {out.returncode}: {out.stderr.strip()[:300]}")
        lines = out.stdout.strip().splitlines()
        try:
            r = json.loads(lines[-1])
        except (IndexError, json.JSONDecodeError):
            return problems + [f"no JSON result in: {out.stdout[:300]!r}"]
        want = int(args[args.index("--connections") + 1])
        if r["opened"] != want:
            problems.append(f"opened {r['opened']} of {want}")
        if r["errors"] != 0 or r["unexpected_closes"] != 0:
            problems.append(f"errors {r['errors']}, unexpected closes {r['unexpected_closes']}: "
                            f"{r.get('first_error', '')}")
        if kind in ("messages", "fan-out") and r["msgs"] <= 0:
            problems.append("no message came back")
        if kind == "fan-out" and not r["deliveries"] > r["msgs"]:
            problems.append(f"deliveries {r['deliveries']} not above messages {r['msgs']}: "
                            "nothing was relayed to the other connections")
        if kind == "fan-out" and "--threads" in args and r["msgs"] > 0:
            # Every message reaches every connection: the shards' deliveries,
            # summed, are about connections x messages (edges of the interval
            # aside). A shard whose counts were lost would show as a third less.
            per_msg = r["deliveries"] / r["msgs"]
            if not 0.85 * want <= per_msg <= 1.15 * want:
                problems.append(f"{per_msg:.1f} deliveries per message, not about {want}: "
                                "the shards' counts are not all summed")
        if r["server_cpu_s"] is None or r["server_rss_kb"] is None:
            problems.append("no server CPU/RSS figures from /proc")
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    return problems


def main() -> int:
    if len(sys.argv) != 3 or not all(os.access(p, os.X_OK) for p in sys.argv[1:]):
        print(__doc__)
        return 2
    failed = 0
    for mode, args, kind in CASES:
        problems = run_case(sys.argv[1], sys.argv[2], mode, args, kind)
        label = f"server {mode}, loadgen {' '.join(args)}"
        if problems:
            failed += 1
            print(f"FAIL {label}: " + "; ".join(problems))
        else:
            print(f"ok   {label}")
    print(f"{len(CASES) - failed} of {len(CASES)} passed")
    subprocess.run(["rm", "-rf", TLS_DIR])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
