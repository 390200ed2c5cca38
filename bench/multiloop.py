#!/usr/bin/env python3
"""Several event loops (chatws-bench-server --threads N): what a second loop
costs per delivery, and what it buys in absolute rate.

Two figures, each the median of --runs runs with the server's loop counts
alternated run by run in the same session (so that a machine loaded by
others weighs on both alike):

  efficiency  deliveries per server-CPU-second, server pinned to CPU 0
              (every loop on it) and one load generator on CPU 1: the cost of
              the multi-loop design itself (cross-loop hand-over by
              reference, batching, the chat's lock). Target: threads=2 at
              least 0.9x threads=1.
  scaling     deliveries per second, nothing pinned, --generators load
              generator processes (each its share of the connections and
              publishers): what the loops deliver when they may use every
              core; on a 2-core machine the generators need about one.

    python3 bench/multiloop.py --build-dir build              # both, broadcast-1000 and chat
    python3 bench/multiloop.py --workloads broadcast-1000 --runs 5 --figures efficiency
    python3 bench/multiloop.py --workloads chat --against /tmp/build-old   # two commits, alternated
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from local_server import free_port, stop_server, wait_ready

REPO = Path(__file__).resolve().parent.parent

WORKLOADS = {
    # The broadcast of run.py's broadcast-1000: one publisher, 1000 receivers.
    "broadcast-1000": dict(server=["--mode", "broadcast"], loadgen=["--mode", "broadcast"],
                           connections=1000, publishers=1),
    # The built-in chat, one room of 100 members (history in memory), 4 posters.
    "chat": dict(server=["--mode", "chat"], loadgen=["--mode", "broadcast", "--chat"],
                 connections=100, publishers=4),
}


def measure(build: Path, loadgen_build: Path, workload: str, threads: int, figure: str, generators: int,
            duration: float, warmup: float) -> dict:
    wl = WORKLOADS[workload]
    port = free_port()
    pin_server = ["taskset", "-c", "0"] if figure == "efficiency" else []
    pin_loadgen = ["taskset", "-c", "1"] if figure == "efficiency" else []
    server = subprocess.Popen(pin_server + [str(build / "bench" / "chatws-bench-server"), *wl["server"],
                                            "--port", str(port), "--threads", str(threads)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if not wait_ready(server, port, 20):
            raise RuntimeError("chatws-bench-server did not start")
        n = generators if figure == "scaling" else 1
        gens = []
        for g in range(n):
            conns = wl["connections"] // n
            pubs = max(1, wl["publishers"] // n)
            args = pin_loadgen + [str(loadgen_build / "bench" / "chatws-loadgen"), "--port", str(port),
                                  *wl["loadgen"], "--connections", str(conns), "--publishers", str(pubs),
                                  "--size", "64", "--window", "16", "--duration", str(duration),
                                  "--warmup", str(warmup), "--json"]
            if g == 0:
                args += ["--server-pid", str(server.pid)]
            gens.append(subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True))
        results = []
        for p in gens:
            out, _ = p.communicate(timeout=duration + warmup + 120)
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        stop_server(server)
    deliveries = sum(r["deliveries_per_s"] for r in results)
    cpu = results[0]["server_cpu_s"] or 0.0
    errors = sum(r["errors"] for r in results)
    return {"deliveries_per_s": deliveries,
            "deliveries_per_server_cpu_s": deliveries * results[0]["duration_s"] / cpu if cpu else None,
            "server_cpu_pct": results[0]["server_cpu_pct"], "errors": errors}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build-dir", default=str(REPO / "build"))
    p.add_argument("--workloads", default="broadcast-1000,chat")
    p.add_argument("--figures", default="efficiency,scaling")
    p.add_argument("--threads", default="1,2", help="loop counts compared (the first is the baseline)")
    p.add_argument("--generators", type=int, default=2, help="load generator processes (scaling)")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--duration", type=float, default=4.0)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--against", metavar="BUILD_DIR",
                   help="a second build (another commit's chatws-bench-server, the same loadgen "
                        "from --build-dir) run in alternation with the first, round by round")
    args = p.parse_args()
    builds = {"": Path(args.build_dir)}
    if args.against:
        builds = {"build": Path(args.build_dir), "against": Path(args.against)}
    counts = [int(t) for t in args.threads.split(",")]
    print(f"load average at start: {os.getloadavg()[0]:.2f} (other work on the machine weighs on every run)")
    for workload in args.workloads.split(","):
        for figure in args.figures.split(","):
            key = "deliveries_per_server_cpu_s" if figure == "efficiency" else "deliveries_per_s"
            runs: dict[tuple[str, int], list[dict]] = {(b, t): [] for b in builds for t in counts}
            for _ in range(args.runs):
                for b, server_build in builds.items():  # alternated: t1, t2, t1, t2, ...
                    for t in counts:
                        runs[(b, t)].append(measure(server_build, builds.get("build", server_build), workload,
                                                    t, figure, args.generators, args.duration, args.warmup))
            for b in builds:
                report(workload, figure, key, b, counts, runs)
    return 0


def report(workload: str, figure: str, key: str, build: str, counts: list[int],
           runs: dict[tuple[str, int], list[dict]]) -> None:
    base = None
    label = f"{build:8s} " if build else ""
    for t in counts:
        vals = [r[key] for r in runs[(build, t)] if r[key]]
        med = statistics.median(vals) if vals else 0.0
        base = base or med
        cpu = statistics.median(r["server_cpu_pct"] or 0 for r in runs[(build, t)])
        errs = sum(r["errors"] for r in runs[(build, t)])
        print(f"{workload:15s} {figure:10s} {label}threads={t}: {key} median {med:,.0f} "
              f"(min {min(vals, default=0):,.0f}, max {max(vals, default=0):,.0f}; {len(vals)} runs), "
              f"{med / base if base else 0:.2f}x threads={counts[0]}, server cpu {cpu:.0f}%"
              + (f", {errs} errors" if errs else ""))
    # The ratio within each round: the machine's drift weighs on both of a round alike.
    if len(counts) > 1:
        pairs = [(a[key], b[key]) for a, b in zip(runs[(build, counts[0])], runs[(build, counts[-1])])
                 if a[key] and b[key]]
        if pairs:
            ratios = sorted(b / a for a, b in pairs)
            print(f"{workload:15s} {figure:10s} {label}threads={counts[-1]} / threads={counts[0]} within each round: "
                  f"median {statistics.median(ratios):.3f}x (min {ratios[0]:.3f}, max {ratios[-1]:.3f})")


if __name__ == "__main__":
    sys.exit(main())
