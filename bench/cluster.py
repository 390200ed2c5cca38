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

With --throughput: deliveries/s of one room of --members (50) members, on 1
node without Redis, 1 node with Redis and 2 nodes with Redis (members and
posters split evenly), --posters (4) of them each sending --tp-messages
(40000) at once; wall time from the first send to the last delivery, CPU
seconds of each node and of Redis from /proc/<pid>/stat, and of the client
process (one Python process of plain sockets counting msg frames, stdlib
only), with the process that bounds the run by its CPU share.

    python3 bench/cluster.py --throughput [--members 50] [--posters 4] [--tp-messages 40000] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Dict, List, Tuple

try:
    import websocket  # websocket-client: the latency and burst modes (--throughput needs only the stdlib)
except ImportError:
    websocket = None

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from local_server import free_port, masked_frame, ws_upgrade  # noqa: E402


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process from /proc/<pid>/stat, in seconds (ticks of 10 ms)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
    def __init__(self, binary: Path, url: str, name: str, extra: Tuple[str, ...] = ()) -> None:
        cluster = ["--redis", url, "--node-name", name] if url else []
        self.proc = subprocess.Popen([str(binary), "--port", "0", "--no-static", *cluster,
                                      "--max-messages-per-second", "off", "--metrics-port", "0", *extra],
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
        return cpu_seconds(self.proc.pid)

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


# --- Throughput (--throughput): deliveries/s of one room, members on 1 or 2 nodes ---

# The bench raises the server's limits that would otherwise stop it: the rate
# limit is off (Node), a member may queue 256 MiB (--max-output-buffer, with
# --slow-consumer close the default 1 MiB could close a member that is behind),
# no idle pings, no permessage-deflate (the bench client does not offer it).
# The default cluster retention (1000): the stream keeps what a node has not
# read, so the burst of 160000 is not trimmed before the nodes take it.
THROUGHPUT_FLAGS = ("--max-output-buffer", str(256 << 20), "--idle-timeout", "off", "--compression", "off")
MSG_PREFIX, ERROR_PREFIX, DROPPED_PREFIX = b'{"type":"msg"', b'{"type":"error"', b'{"type":"dropped"'


class RawMember:
    """A chatws.v1 member on a plain non-blocking socket, for the throughput mode:
    it counts msg frames by their first bytes without decoding them (server
    frames are unmasked, the bench offers no permessage-deflate), so that one
    Python process can keep up with the nodes; a poster writes its messages, masked and framed beforehand, as fast
    as the socket takes them."""

    def __init__(self, port: int, room: str) -> None:
        try:
            self.sock = ws_upgrade(port, f"/rooms/{room}", "chatws.v1", timeout=10)
        except ConnectionError as e:
            raise SystemExit(f"handshake with port {port} failed: {e}")
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.msgs = self.errors = 0
        self.tail = b""
        self.out = memoryview(b"")
        self.sock.setblocking(False)

    @staticmethod
    def frame(text: str, user: str) -> bytes:
        return masked_frame(json.dumps({"user": user, "text": text}).encode(), opcode=0x1)

    def feed(self, data: bytes) -> None:
        # A msg frame's payload starts with MSG_PREFIX, which cannot occur inside
        # a JSON string (its quotes would be escaped): counting it in the bytes
        # counts the frames, at C speed. The tail of the last read (one byte
        # shorter than the prefix, so nothing counted there is counted again)
        # covers a prefix cut in two.
        def count(prefix: bytes) -> int:
            return data.count(prefix) + (self.tail[-(len(prefix) - 1):] + data[:len(prefix) - 1]).count(prefix)
        self.msgs += count(MSG_PREFIX)
        # An error, or a node that lost entries to the trim ("dropped": those never come).
        self.errors += count(ERROR_PREFIX) + count(DROPPED_PREFIX)
        keep = len(DROPPED_PREFIX) - 1
        self.tail = data[-keep:] if len(data) >= keep else (self.tail + data)[-keep:]

    def pump_out(self) -> None:
        try:
            sent = self.sock.send(self.out)
        except BlockingIOError:
            return
        self.out = self.out[sent:]


def drive(members: List[RawMember], posters: Dict[RawMember, bytes], expect: int,
          timeout: float) -> Tuple[float, float]:
    """Writes each poster's bytes and reads every member until each has `expect`
    more msg frames. Returns (time of the first send, time the last one arrived)."""
    sel = selectors.DefaultSelector()
    goal = {m: m.msgs + expect for m in members}
    left = len(members)
    for m in members:
        sel.register(m.sock, selectors.EVENT_READ | (selectors.EVENT_WRITE if m in posters else 0), m)
    t0 = time.perf_counter()
    for m, data in posters.items():
        m.out = memoryview(data)
        m.pump_out()
    last = t0
    deadline = t0 + timeout
    try:
        while left:
            if time.perf_counter() > deadline:
                got = sum(min(m.msgs, goal[m]) - (goal[m] - expect) for m in members)
                raise SystemExit(f"throughput: {got} of {expect * len(members)} deliveries in {timeout:.0f} s")
            for key, ev in sel.select(1.0):
                m = key.data
                if ev & selectors.EVENT_WRITE:
                    m.pump_out()
                    if not m.out:
                        sel.modify(m.sock, selectors.EVENT_READ, m)
                if ev & selectors.EVENT_READ:
                    try:
                        data = m.sock.recv(1 << 18)
                    except BlockingIOError:
                        continue
                    before = m.msgs < goal[m]
                    m.feed(data)
                    if not data or m.errors:
                        raise SystemExit(f"throughput: a member was closed or got an error or dropped frame ({m.errors})")
                    if before and m.msgs >= goal[m]:
                        left -= 1
                        last = time.perf_counter()
    finally:
        sel.close()
    return t0, last


def throughput_once(binary: Path, args: argparse.Namespace, setup: str) -> Dict[str, float]:
    """One run of one setup: 'single' (one node, no Redis), 'single+redis' (one
    node in cluster mode), 'cluster' (members and posters split over 2 nodes)."""
    redis = Redis(args.aof) if setup != "single" else None
    url = f"redis://127.0.0.1:{redis.port}/0" if redis else ""
    nodes: List[Node] = []
    members: List[RawMember] = []
    try:
        names = ("a", "b") if setup == "cluster" else ("a",)
        nodes = [Node(binary, url, name, THROUGHPUT_FLAGS) for name in names]
        room = "bench"
        # Member i on node i % len(nodes); the first `posters` members post, so posters are split too.
        members = [RawMember(nodes[i % len(nodes)].port, room) for i in range(args.members)]
        posters = members[:args.posters]
        # Warm-up: one message from each poster reaches everyone (every node has read the room).
        drive(members, {p: RawMember.frame(f"w{j}", f"p{j}") for j, p in enumerate(posters)}, len(posters), 30)
        per = args.tp_messages
        data = {p: b"".join(RawMember.frame(f"t{j}-{i}", f"p{j}") for i in range(per)) for j, p in enumerate(posters)}
        procs = {f"node_{name}": n.proc.pid for name, n in zip(names, nodes)}
        if redis:
            procs["redis"] = redis.proc.pid
        cpu0 = {k: cpu_seconds(pid) for k, pid in procs.items()}
        client0 = sum(os.times()[:2])
        t0, t1 = drive(members, data, per * len(posters), args.tp_timeout)
        wall = t1 - t0
        out = {"deliveries": float(per * len(posters) * len(members)), "wall_s": wall}
        out["deliveries_per_s"] = out["deliveries"] / wall
        node_cpu = 0.0
        for k, pid in procs.items():
            c = cpu_seconds(pid) - cpu0[k]
            out[f"cpu_s_{k}"] = c
            if k.startswith("node_"):
                node_cpu += c
        out["cpu_s_nodes"] = node_cpu
        out["cpu_s_client"] = sum(os.times()[:2]) - client0
        out["deliveries_per_node_cpu_s"] = out["deliveries"] / node_cpu if node_cpu else float("inf")
        return out
    finally:
        for m in members:
            m.sock.close()
        for n in nodes:
            n.stop()
        if redis:
            redis.stop()


def bound(r: Dict[str, float]) -> str:
    """Which process, by its CPU share of the wall time, most likely bounds a run (2 cores)."""
    wall = r["wall_s"]
    shares = {k[6:]: v / wall for k, v in r.items() if k.startswith("cpu_s_") and k != "cpu_s_nodes"}
    top = max(shares, key=shares.get)
    total = sum(shares.values())
    text = ", ".join(f"{k} {v:.0%}" for k, v in shares.items())
    if shares[top] > 0.85:
        verdict = f"{top} is at one core: it bounds"
    elif total > 0.85 * os.cpu_count():
        verdict = f"the {os.cpu_count()} cores are full (all processes together bound)"
    else:
        verdict = "no process at one core: the node-Redis round trips and the sharing of the cores bound"
    return f"CPU of the wall time: {text}; {verdict}"


def throughput_main(binary: Path, args: argparse.Namespace) -> None:
    setups = ["single", "single+redis", "cluster"]
    results: Dict[str, List[Dict[str, float]]] = {s: [] for s in setups}
    for _ in range(args.runs):
        for s in setups:  # interleaved, so that the machine's noise spreads over all setups
            results[s].append(throughput_once(binary, args, s))
    total = args.posters * args.tp_messages
    print(f"cluster throughput bench: one room, {args.members} members ({args.posters} of them posting "
          f"{args.tp_messages} messages each, {total} in all, all at once), redis "
          f"{'AOF always' if args.aof else 'no persistence'}, median of {args.runs} runs; one machine "
          f"({os.cpu_count()} cores): nodes, Redis and the client process share them")
    names = {"single": "1 node, no Redis", "single+redis": "1 node, Redis",
             "cluster": f"2 nodes, Redis ({(args.members + 1) // 2}+{args.members // 2} members)"}
    for s in setups:
        runs = results[s]
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(f"{names[s]}:")
        for k, v in med.items():
            lo, hi = min(r[k] for r in runs), max(r[k] for r in runs)
            print(f"  {k:28s} {v:14.3f}   (runs: {lo:.3f} .. {hi:.3f})")
        print(f"  {bound(med)}")  # of the medians


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build", type=Path, default=REPO / "build")
    p.add_argument("--messages", type=int, default=2000)
    p.add_argument("--burst", type=int, default=5000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--aof", action="store_true", help="Redis with appendonly yes, appendfsync always")
    p.add_argument("--throughput", action="store_true",
                   help="deliveries/s of one room with members on 2 nodes against 1 (and 1 without Redis)")
    p.add_argument("--members", type=int, default=50, help="--throughput: members of the room, posters included")
    p.add_argument("--posters", type=int, default=4, help="--throughput: members that post")
    p.add_argument("--tp-messages", type=int, default=40000, help="--throughput: messages per poster")
    p.add_argument("--tp-timeout", type=float, default=120, help="--throughput: seconds a run may take")
    args = p.parse_args()
    binary = args.build / "examples" / "chat_server"
    if args.throughput:
        throughput_main(binary, args)
        return
    if websocket is None:
        raise SystemExit("the latency and burst modes need websocket-client (pip install websocket-client)")
    runs = [{**run_once(binary, args), **single_node(binary, args)} for _ in range(args.runs)]
    print(f"cluster bench: 2 nodes (examples/c/chat_server), redis {'AOF always' if args.aof else 'no persistence'}, "
          f"{args.messages} closed-loop + {args.burst} burst messages, median of {args.runs} runs")
    for key in runs[0]:
        print(f"  {key:32s} {statistics.median(r[key] for r in runs):10.3f}")


if __name__ == "__main__":
    main()
