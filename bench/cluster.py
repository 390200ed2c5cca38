#!/usr/bin/env python3
"""Cluster mode (issue 16): cross-node against same-node delivery latency,
burst delivery time on 1 and 2 nodes, and Redis commands / round trips per
chat message.

Starts its own redis-server (no persistence unless --aof) on a free port
and two nodes of examples/c/chat_server --redis (from --build, default
build/), each with a metrics port. Clients are websocket-client threads.

    python3 bench/cluster.py [--messages 2000] [--burst 5000] [--aof] [--runs 3]

Prints medians over the runs. One machine: nodes, Redis and clients share
its cores, so latencies include that contention.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Dict, List, Tuple

import websocket

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Redis:
    def __init__(self, aof: bool) -> None:
        self.dir = tempfile.mkdtemp(prefix="chatws-bench-redis-")
        self.port = free_port()
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
                "--save", "", "--logfile", self.dir + "/redis.log"]
        args += ["--appendonly", "yes", "--appendfsync", "always"] if aof else ["--appendonly", "no"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(1000):
            if self.info("server"):
                return
            time.sleep(0.01)
        raise SystemExit("redis-server did not start")

    def info(self, section: str) -> Dict[str, str]:
        try:
            out = subprocess.run(["redis-cli", "-p", str(self.port), "INFO", section], stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, timeout=5, text=True).stdout
        except subprocess.TimeoutExpired:
            return {}
        return dict(line.split(":", 1) for line in out.splitlines() if ":" in line)

    def commands(self) -> int:
        return int(self.info("stats").get("total_commands_processed", "0"))

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class Node:
    def __init__(self, binary: Path, url: str, name: str) -> None:
        cluster = ["--redis", url, "--node-name", name] if url else []
        self.proc = subprocess.Popen([str(binary), "--port", "0", "--no-static", *cluster,
                                      "--max-messages-per-second", "off", "--metrics-port", "0"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            m = re.search(r"chat on http://127\.0\.0\.1:(\d+)/.*metrics on (http://\S+/metrics)", line)
            if m:
                self.port, self.metrics = int(m.group(1)), m.group(2)
                break
        else:
            raise SystemExit(f"node {name} did not start")
        threading.Thread(target=lambda: [None for _ in self.proc.stderr], daemon=True).start()

    def metric(self, name: str) -> float:
        with urllib.request.urlopen(self.metrics, timeout=5) as r:
            for line in r.read().decode().splitlines():
                if line.startswith(name + " "):
                    return float(line.split()[1])
        return 0.0

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / 100.0  # utime + stime, in ticks of 10 ms

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


class Receiver:
    """Records the arrival time of every msg frame by text."""

    def __init__(self, url: str) -> None:
        self.ws = websocket.create_connection(url, subprotocols=["chatws.v1"], timeout=30)
        json.loads(self.ws.recv())  # hello
        self.arrived: Dict[str, float] = {}
        self.cond = threading.Condition()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        try:
            while True:
                f = json.loads(self.ws.recv())
                if f.get("type") == "msg":
                    with self.cond:
                        self.arrived[f["text"]] = time.perf_counter()
                        self.cond.notify_all()
        except Exception:
            pass

    def wait(self, text: str, timeout: float = 30) -> float:
        with self.cond:
            if not self.cond.wait_for(lambda: text in self.arrived, timeout):
                raise SystemExit(f"{text} never arrived")
            return self.arrived[text]


def pct(xs: List[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))]


def run_once(binary: Path, args: argparse.Namespace) -> Dict[str, float]:
    redis = Redis(args.aof)
    a = b = None
    try:
        a, b = Node(binary, f"redis://127.0.0.1:{redis.port}/0", "a"), Node(binary, f"redis://127.0.0.1:{redis.port}/0", "b")
        room = "bench"
        poster = websocket.create_connection(f"ws://127.0.0.1:{a.port}/rooms/{room}", subprotocols=["chatws.v1"])
        json.loads(poster.recv())
        same, cross = Receiver(f"ws://127.0.0.1:{a.port}/rooms/{room}"), Receiver(f"ws://127.0.0.1:{b.port}/rooms/{room}")
        # Latency: one message in flight.
        lat_same, lat_cross = [], []
        cmds0, trips0 = redis.commands(), a.metric("chatws_cluster_round_trips_total")
        for i in range(args.messages):
            text = f"l{i}"
            t0 = time.perf_counter()
            poster.send(json.dumps({"user": "p", "text": text}))
            lat_same.append(same.wait(text) - t0)
            lat_cross.append(cross.wait(text) - t0)
        cmds_closed = (redis.commands() - cmds0 - 1) / args.messages  # minus our own INFO
        trips_closed = (a.metric("chatws_cluster_round_trips_total") - trips0) / args.messages
        # Burst: every message sent at once; time until the last one is everywhere.
        cmds0, trips0 = redis.commands(), a.metric("chatws_cluster_round_trips_total")
        cpu0 = (a.cpu_seconds(), b.cpu_seconds())
        t0 = time.perf_counter()
        for i in range(args.burst):
            poster.send(json.dumps({"user": "p", "text": f"b{i}"}))
        last = f"b{args.burst - 1}"
        t_same, t_cross = same.wait(last, 120) - t0, cross.wait(last, 120) - t0
        cpu1 = (a.cpu_seconds(), b.cpu_seconds())
        return {
            "same_p50_ms": 1000 * statistics.median(lat_same), "same_p99_ms": 1000 * pct(lat_same, 0.99),
            "cross_p50_ms": 1000 * statistics.median(lat_cross), "cross_p99_ms": 1000 * pct(lat_cross, 0.99),
            "closed_redis_cmds_per_msg": cmds_closed, "closed_round_trips_per_msg": trips_closed,
            "burst_same_node_msgs_per_s": args.burst / t_same, "burst_other_node_msgs_per_s": args.burst / t_cross,
            "burst_redis_cmds_per_msg": (redis.commands() - cmds0 - 1) / args.burst,
            "burst_round_trips_per_msg": (a.metric("chatws_cluster_round_trips_total") - trips0) / args.burst,
            "burst_cpu_s_node_a": cpu1[0] - cpu0[0], "burst_cpu_s_node_b": cpu1[1] - cpu0[1],
        }
    finally:
        for n in (a, b):
            if n:
                n.stop()
        redis.stop()


def single_node(binary: Path, args: argparse.Namespace) -> Dict[str, float]:
    """The same closed loop and burst on one node without Redis (history in memory)."""
    node = Node(binary, "", "single")
    try:
        url = f"ws://127.0.0.1:{node.port}/rooms/bench"
        poster = websocket.create_connection(url, subprotocols=["chatws.v1"])
        json.loads(poster.recv())
        same = Receiver(url)
        lat = []
        for i in range(args.messages):
            text = f"l{i}"
            t0 = time.perf_counter()
            poster.send(json.dumps({"user": "p", "text": text}))
            lat.append(same.wait(text) - t0)
        t0 = time.perf_counter()
        for i in range(args.burst):
            poster.send(json.dumps({"user": "p", "text": f"b{i}"}))
        t = same.wait(f"b{args.burst - 1}", 120) - t0
        return {"single_p50_ms": 1000 * statistics.median(lat), "single_p99_ms": 1000 * pct(lat, 0.99),
                "single_burst_msgs_per_s": args.burst / t}
    finally:
        node.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build", type=Path, default=REPO / "build")
    p.add_argument("--messages", type=int, default=2000)
    p.add_argument("--burst", type=int, default=5000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--aof", action="store_true", help="Redis with appendonly yes, appendfsync always")
    args = p.parse_args()
    binary = args.build / "examples" / "chat_server"
    runs = [{**run_once(binary, args), **single_node(binary, args)} for _ in range(args.runs)]
    print(f"cluster bench: 2 nodes (examples/c/chat_server), redis {'AOF always' if args.aof else 'no persistence'}, "
          f"{args.messages} closed-loop + {args.burst} burst messages, median of {args.runs} runs")
    for key in runs[0]:
        print(f"  {key:32s} {statistics.median(r[key] for r in runs):10.3f}")


if __name__ == "__main__":
    main()
