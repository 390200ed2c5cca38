#!/usr/bin/env python3
"""How new connections reach the loops of a multi-loop server
(chatws-bench-server --threads N --accept-mode reuseport|handoff): what each
costs per accepted connection, and how fast each takes a burst in.

reuseport  every loop listens (SO_REUSEPORT); the kernel picks the loop
handoff    loop 0 alone listens and hands each socket to the loop with the
           fewest connections

Per run: a fresh server, one load generator (chatws-loadgen --mode idle)
opening --connections WebSocket connections, --connect-batch handshakes in
flight, then closing them. Two figures, the modes alternated run by run:

  cost  server CPU microseconds per connection opened (accept, hand-over,
        HTTP upgrade), the server pinned to CPU 0 (every loop on it) and the
        generator to CPU 1
  rate  connections opened per second, nothing pinned

and, with the chatws Python package (the venv scripts/test.sh makes):

  spread  where the connections land: 1000 opened one after another, then
          every one on loop 1 closed, then 500 more; each loop's count
          (a connection's id names its loop)

    python3 bench/accept_modes.py --build-dir build --runs 5
    .venv/bin/python bench/accept_modes.py --figures spread
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


def measure(build: Path, mode: str, figure: str, threads: int, connections: int, batch: int,
            loadgen_threads: int) -> dict:
    port = free_port()
    pin_server = ["taskset", "-c", "0"] if figure == "cost" else []
    pin_loadgen = ["taskset", "-c", "1"] if figure == "cost" else []
    server = subprocess.Popen(pin_server + [str(build / "bench" / "chatws-bench-server"), "--mode", "echo",
                                            "--port", str(port), "--threads", str(threads),
                                            "--accept-mode", mode],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if not wait_ready(server, port, 20):
            raise RuntimeError("chatws-bench-server did not start")
        out = subprocess.run(pin_loadgen + [str(build / "bench" / "chatws-loadgen"), "--port", str(port),
                                            "--mode", "idle", "--connections", str(connections),
                                            "--connect-batch", str(batch), "--duration", "0.5",
                                            "--threads", str(loadgen_threads),
                                            "--server-pid", str(server.pid), "--json"],
                             capture_output=True, text=True, timeout=120, check=False).stdout
        r = json.loads(out.strip().splitlines()[-1])
    finally:
        stop_server(server)
    cpu = r["open_server_cpu_s"]
    return {"rate": r["opened_per_s"], "cost": 1e6 * cpu / r["opened"] if cpu is not None and r["opened"] else None,
            "opened": r["opened"], "errors": r["errors"]}


def spread(mode: str) -> str:
    import threading
    import time

    import chatws  # the package: on_open gives each connection's id
    from local_server import ws_upgrade

    opened: list[int] = []
    closed = [0]
    cv = threading.Condition()

    def note(lst_append) -> None:
        with cv:
            lst_append()
            cv.notify_all()

    def wait(pred) -> None:
        with cv:
            if not cv.wait_for(pred, timeout=30):
                raise RuntimeError("timed out")

    srv = chatws.Server(port=0, threads=2, accept_mode=mode,
                        on_open=lambda c: note(lambda: opened.append(c.id)),
                        on_close=lambda c, code, reason: note(lambda: closed.__setitem__(0, closed[0] + 1)))
    srv.start()
    try:
        socks = [ws_upgrade(srv.port) for _ in range(1000)]
        wait(lambda: len(opened) == 1000)
        first = list(opened)
        leaving = [s for s, i in zip(socks, first) if i % 2 == 1]
        for s in leaving:
            s.close()
        wait(lambda: closed[0] == len(leaving))
        more = [ws_upgrade(srv.port) for _ in range(500)]
        wait(lambda: len(opened) == 1500)
        new = opened[1000:]
        on0, new0 = sum(i % 2 == 0 for i in first), sum(i % 2 == 0 for i in new)
        for s in socks + more:
            s.close()
        return (f"spread {mode:9s}: 1000 opened -> {on0} / {1000 - on0} (loop 0 / loop 1); after loop 1's "
                f"{len(leaving)} left, 500 more -> {new0} / {500 - new0}; open now {on0 + new0} / {500 - new0}")
    finally:
        srv.stop()
        srv.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build-dir", default=str(REPO / "build"))
    p.add_argument("--figures", default="cost,rate")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--connections", type=int, default=10000)
    p.add_argument("--connect-batch", type=int, default=256)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--loadgen-threads", type=int, default=1,
                   help="the generator's threads (shards of the connections), for machines with cores to spare")
    args = p.parse_args()
    build = Path(args.build_dir)
    modes = ["reuseport", "handoff"]
    print(f"load average at start: {os.getloadavg()[0]:.2f}; threads={args.threads}, "
          f"{args.connections} connections, {args.connect_batch} handshakes in flight")
    for figure in args.figures.split(","):
        if figure == "spread":
            for m in modes:
                print(spread(m))
            continue
        runs: dict[str, list[dict]] = {m: [] for m in modes}
        for _ in range(args.runs):
            for m in modes:  # alternated
                runs[m].append(measure(build, m, figure, args.threads, args.connections, args.connect_batch,
                                       args.loadgen_threads))
        unit = "server CPU us per connection" if figure == "cost" else "connections per second"
        base = None
        for m in modes:
            vals = [r[figure] for r in runs[m] if r[figure] is not None]
            med = statistics.median(vals)
            base = base or med
            errs = sum(r["errors"] for r in runs[m]) + sum(args.connections - r["opened"] for r in runs[m])
            print(f"{figure:4s} {m:9s}: {unit} median {med:,.1f} (min {min(vals):,.1f}, max {max(vals):,.1f}; "
                  f"{len(vals)} runs), {med / base:.2f}x reuseport" + (f", {errs} errors" if errs else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
