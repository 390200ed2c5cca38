#!/usr/bin/env python3
"""Fairness under a flood: does one client posting at full speed into one chat
room slow down the clients of another room?

For each chat server (the C example `chat_server`, and `python -m chatws`) a
probe load runs in /rooms/probe twice: alone, then while a flooder posts into
/rooms/flood with thousands of messages in flight. Both are chatws-loadgen in
chat broadcast mode (every member of a room gets each message, the sender
included); the probe's figures are its own messages acknowledged per second
and the latency from send to delivery. The server runs on CPU 0, the load
generators on CPU 1 (taskset), as in bench/run.py.

    python3 bench/fairness.py                   # both servers
    python3 bench/fairness.py --servers c --duration 3

Issue 19 (item 14) states the target: with the flooder, the probe keeps at
least 80% of its rate and its p99 stays under 2x of the run without it.

The two load generators share one CPU. A flooder on a machine of its own
would not take CPU from the probe's client, so the flooder's client runs as
SCHED_IDLE: it gets CPU 1 whenever the probe's client does not want it, and
that is enough to keep the flood at full rate (the server, not its client,
bounds the flood). --flood-shared gives both the same priority, and
--control then measures what the probe loses to that alone.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from local_server import free_port, stop_server, wait_ready

REPO = Path(__file__).resolve().parent.parent
SERVER_CPU, LOADGEN_CPU = "0", "1"


def log(msg: str) -> None:
    print(f"[fairness] {msg}", file=sys.stderr, flush=True)


def pinned(cpu: str, cmd: list[str]) -> list[str]:
    return ["taskset", "-c", cpu, *cmd] if shutil.which("taskset") and (os.cpu_count() or 1) > 1 else cmd


def server_command(name: str, port: int, build: Path) -> list[str]:
    # The flood is the load, not what is measured: no rate limit (the
    # per-connection rate limit is policy on top of the per-turn budget).
    if name == "c":
        return [str(build / "examples" / "chat_server"), "--port", str(port),
                "--max-messages-per-second", "off"]
    return [sys.executable, "-m", "chatws", "--port", str(port), "--no-static", "--log-level", "WARNING",
            "--max-messages-per-second", "off"]


def loadgen(build: Path, port: int, room: str, connections: int, window: int, duration: float,
            warmup: float, pid: int | None, nice: int = 0, sched_idle: bool = False) -> subprocess.Popen:
    cmd = [str(build / "bench" / "chatws-loadgen"), "--port", str(port), "--mode", "broadcast", "--chat",
           "--path", f"/rooms/{room}", "--connections", str(connections), "--publishers", str(connections),
           "--window", str(window), "--size", "32", "--duration", str(duration), "--warmup", str(warmup),
           "--json", "--label", room]
    if pid:
        cmd += ["--server-pid", str(pid)]
    if nice:
        cmd = ["nice", "-n", str(nice), *cmd]
    if sched_idle:
        cmd = ["chrt", "--idle", "0", *cmd]
    return subprocess.Popen(pinned(LOADGEN_CPU, cmd), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def result(proc: subprocess.Popen, timeout: float) -> dict:
    out, err = proc.communicate(timeout=timeout)
    for line in out.splitlines():
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"loadgen gave no result (exit {proc.returncode}): {err.strip()}")


def measure(name: str, args: argparse.Namespace, build: Path) -> dict:
    port = free_port()
    # The Python server is the chatws package installed in this interpreter.
    server = subprocess.Popen(pinned(SERVER_CPU, server_command(name, port, build)), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        if not wait_ready(server, port, 20):
            raise RuntimeError(f"server {name} did not start")
        out: dict = {"server": name}
        probe = loadgen(build, port, "probe", args.probe_connections, 1, args.duration, 1, server.pid)
        out["alone"] = result(probe, args.duration + 60)
        # The flooder starts first and outlasts the probe's measured interval.
        flood = loadgen(build, port, "flood", 1, args.flood_window, args.duration + 3, 0, None, args.flood_nice,
                        args.flood_idle)
        time.sleep(1.0)  # the flood is running before the probe starts (a bench, not a test)
        probe = loadgen(build, port, "probe", args.probe_connections, 1, args.duration, 1, server.pid)
        out["flooded"] = result(probe, args.duration + 60)
        out["flood"] = result(flood, args.duration + 60)
        # The control: the probe alone again, next to a busy loop on its
        # generator's CPU that takes the share the flooder's generator took.
        # What the probe loses here is its client's, not the server's.
        share = (out["flood"].get("loadgen_cpu_pct") or 0.0) / 100.0
        if args.control and share > 0:  # --flood-shared only (main)
            hog = subprocess.Popen(pinned(LOADGEN_CPU, [sys.executable, __file__, "--hog", f"{share:.3f}",
                                                        str(args.duration + 3)]))
            try:
                probe = loadgen(build, port, "probe", args.probe_connections, 1, args.duration, 1, server.pid)
                out["alone_hog"] = result(probe, args.duration + 60)
                out["alone_hog"]["hog_share"] = share
            finally:
                hog.kill()
                hog.wait()
        return out
    finally:
        stop_server(server)


def hog_main(share: float, seconds: float) -> None:
    """Busy for `share` of every millisecond, asleep the rest, for `seconds`
    (a short period, as the flooder's client, which runs whenever its socket
    has data, uses its share in short slices)."""
    period = 0.001
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        start = time.monotonic()
        while time.monotonic() - start < share * period:
            pass
        time.sleep(period * (1.0 - share))  # the duty cycle, not a wait for anything


def report(r: dict) -> str:
    a, f, fl = r["alone"], r["flooded"], r["flood"]
    rate = f["msgs_per_s"] / a["msgs_per_s"] if a["msgs_per_s"] else 0.0
    p99 = f["p99_us"] / a["p99_us"] if a["p99_us"] else 0.0
    ok = rate >= 0.8 and p99 < 2.0
    return (f"{r['server']:>6}: probe alone {a['msgs_per_s']:.0f} msgs/s p50 {a['p50_us']:.0f} us "
            f"p99 {a['p99_us']:.0f} us | with flooder ({fl['msgs_per_s']:.0f} msgs/s) "
            f"{f['msgs_per_s']:.0f} msgs/s p50 {f['p50_us']:.0f} us p99 {f['p99_us']:.0f} us | "
            f"rate {100 * rate:.0f}%, p99 x{p99:.2f} -> {'meets' if ok else 'MISSES'} the target "
            f"(>= 80%, < 2x)" + control(r))


def control(r: dict) -> str:
    h, f = r.get("alone_hog"), r["flooded"]
    if not h or not h["msgs_per_s"]:
        return ""
    return (f" | control, alone next to a {100 * h['hog_share']:.0f}% CPU hog on the generators' core: "
            f"{h['msgs_per_s']:.0f} msgs/s p99 {h['p99_us']:.0f} us; with flooder / control: "
            f"rate {100 * f['msgs_per_s'] / h['msgs_per_s']:.0f}%, p99 x{f['p99_us'] / h['p99_us']:.2f}")


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--hog":  # the control's busy loop (see measure)
        hog_main(float(sys.argv[2]), float(sys.argv[3]))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", type=Path, default=REPO / "build", help="CMake build directory (default build/)")
    ap.add_argument("--servers", default="c,python", help="comma-separated: c, python (default both)")
    ap.add_argument("--duration", type=float, default=5.0, help="measured seconds of each probe run")
    ap.add_argument("--probe-connections", type=int, default=10, help="probe clients, one message in flight each")
    ap.add_argument("--flood-window", type=int, default=5000, help="the flooder's messages in flight")
    ap.add_argument("--flood-nice", type=int, default=0,
                    help="nice value of the flooder's client, which shares a CPU with the probe's (19: the "
                         "probe's client comes first there, as if the flooder had a machine of its own)")
    ap.add_argument("--flood-shared", dest="flood_idle", action="store_false",
                    help="run the flooder's client as an ordinary process beside the probe's (by default it "
                         "is SCHED_IDLE, chrt --idle: it gets the shared CPU only when the probe's client "
                         "does not want it, as if it had a machine of its own)")
    ap.add_argument("--control", action="store_true",
                    help="with --flood-shared: also run the probe alone next to a CPU hog that takes what "
                         "the flooder's client took of the generators' core (what the probe loses to its "
                         "own client's CPU)")
    ap.add_argument("--json", type=Path, help="also write the figures to this file")
    args = ap.parse_args()
    if args.control and args.flood_idle:
        ap.error("--control measures the shared setup: add --flood-shared")
    for exe in (args.build / "bench" / "chatws-loadgen", args.build / "examples" / "chat_server"):
        if not exe.exists():
            log(f"missing {exe}: build with -DCHATWS_BENCH=ON -DCHATWS_EXAMPLES=ON")
            return 2
    results = []
    for name in args.servers.split(","):
        log(f"measuring {name} ...")
        results.append(measure(name.strip(), args, args.build))
        print(report(results[-1]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
