"""Cluster mode of the soak (scripts/soak.py --cluster): 3 chatws nodes on
loopback sharing rooms through one redis-server (AOF, appendfsync always),
clients spread over the nodes, one node killed (SIGKILL) and Redis killed
and restarted mid-run.

Each client is a chatws.v1 member of one room that posts "<client>.<seq>"
now and then. When its connection ends (its node killed) it reconnects to
another live node with ?since=<the last id it has> and counts a recovery;
while Redis is away its posts are answered "storage unavailable" (refused,
not lost) and it stays connected. Its view of the room is one chain across
its reconnects. Checks:
- losses: a gap in a chain (an id skipped, across a recovery too), a
  "reset" hello (recovery could not give exactly what was missed), or a
  message acknowledged to its sender (it got it back) that is missing from
  the room's history read at the end (?since=0 through a live node);
- duplicates: an id twice in a chain, or one text under two ids;
- order violations: ids going back in a chain, or a sender's sequence
  numbers going back, or two chains disagreeing on an id's text.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from .config import HOST, REPO_ROOT, V1, free_port

NODES = 3
# Every message of a run stays in its room's stream, so that the final
# ?since=0 read (a recovery from the stream) audits all of them.
RETENTION = 100000


def parse_cluster_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="soak.py --cluster", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cluster", action="store_true", help="this mode")
    p.add_argument("--clients", type=int, default=90)
    p.add_argument("--rooms", type=int, default=6)
    p.add_argument("--seconds", type=float, default=30.0, help="client phase (the run takes ~10 s more)")
    p.add_argument("--post-interval", type=float, default=0.4, help="mean seconds between a client's posts")
    p.add_argument("--server", help="node command template with {port} {url} {name} "
                                    "(default: the C example of $CHATWS_BUILD_DIR, else python -m chatws)")
    p.add_argument("--workdir", help="Redis directory and node logs (default: a temp dir)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--json", help="write the report here as JSON")
    a = p.parse_args(argv)
    if a.seed is None:
        a.seed = random.randrange(1 << 30)
    return a


def node_template() -> str:
    for d in (os.environ.get("CHATWS_BUILD_DIR", ""), "build"):
        c = (REPO_ROOT / d / "examples" / "chat_server").resolve() if d else None
        if c and os.access(c, os.X_OK):
            return f"{shlex.quote(str(c))} --no-static --port {{port}} --redis {{url}} --node-name {{name}}" \
                   f" --cluster-retention {RETENTION}"
    return f"{shlex.quote(sys.executable)} -m chatws --port {{port}} --redis {{url}} --node-name {{name}}" \
           f" --cluster-retention {RETENTION}"


def port_open(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


async def wait_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"soak: {what} exited with {proc.returncode}")
        if port_open(port):
            return
        await asyncio.sleep(0.05)  # readiness poll, bounded by the deadline
    raise SystemExit(f"soak: {what} not listening on {port} within {timeout} s")


class Redis:
    def __init__(self, directory: Path) -> None:
        self.port, self.dir, self.proc = free_port(), directory, None
        binary = shutil.which("redis-server")
        if not binary:
            raise SystemExit("soak: redis-server not found (scripts/bootstrap.sh installs it)")
        self.binary = binary

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    async def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", HOST, "--dir", str(self.dir), "--save", "",
             "--appendonly", "yes", "--appendfsync", "always", "--logfile", str(self.dir / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        await wait_port(self.port, self.proc, "redis-server")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)


@dataclass
class Stats:
    clients: int = 0
    sent: int = 0
    acked: int = 0
    acked_after_restart: int = 0  # Redis back: appends work again
    refused: int = 0            # "storage unavailable" (Redis away): the sender is told
    delivered: int = 0
    recoveries: int = 0         # reconnects with since that got exactly what was missed
    resets: int = 0
    gaps: int = 0
    dropped: int = 0            # entries a node said it lost ({"type":"dropped"}): the gap after it is counted too
    duplicates: int = 0
    order_violations: int = 0
    lost_acked: int = 0
    connect_failures: int = 0
    problems: list[str] = field(default_factory=list)

    def problem(self, text: str) -> None:
        if len(self.problems) < 50:
            self.problems.append(text)


class Cluster:
    def __init__(self, a: argparse.Namespace, work: Path) -> None:
        self.a, self.work = a, work
        self.rng = random.Random(a.seed)
        self.redis = Redis(work)
        self.ports = [free_port() for _ in range(NODES)]
        self.procs: list[subprocess.Popen | None] = [None] * NODES
        self.alive = [False] * NODES
        self.stats = Stats()
        self.stop = asyncio.Event()
        self.texts: dict[tuple[int, int], str] = {}   # (room, id) -> text, as first seen
        self.ids_of: dict[str, tuple[int, int]] = {}  # text -> (room, id)
        self.acked: dict[str, int] = {}               # text -> room, acknowledged to its sender
        self.redis_back = False

    async def start_node(self, i: int) -> None:
        cmd = (self.a.server or node_template()).format(port=self.ports[i], url=self.redis.url, name=f"n{i}")
        log = open(self.work / f"node{i}.log", "ab")
        self.procs[i] = subprocess.Popen(shlex.split(cmd), stdout=log, stderr=log)
        await wait_port(self.ports[i], self.procs[i], f"node {i}")
        self.alive[i] = True

    def kill_node(self, i: int) -> None:
        self.alive[i] = False
        p = self.procs[i]
        if p and p.poll() is None:
            p.send_signal(signal.SIGKILL)
            p.wait(10)

    def url(self, node: int, room: int, since: int | None) -> str:
        q = f"?since={since}" if since is not None else ""
        return f"ws://{HOST}:{self.ports[node]}/rooms/c{room}{q}"

    def observe(self, room: int, msg_id: int, text: str, where: str) -> None:
        key = (room, msg_id)
        seen = self.texts.setdefault(key, text)
        if seen != text:
            self.stats.order_violations += 1
            self.stats.problem(f"{where}: c{room} #{msg_id} is {text!r} here, {seen!r} elsewhere")
        first = self.ids_of.setdefault(text, key)
        if first != key:
            self.stats.duplicates += 1
            self.stats.problem(f"{where}: {text!r} stored as #{first[1]} and #{msg_id}")


class Member:
    def __init__(self, c: Cluster, cid: int) -> None:
        self.c, self.cid = c, cid
        self.room = cid % c.a.rooms
        self.node = cid % NODES
        self.last = None  # the last id in the chain (None: not joined yet)
        self.seq = 0
        self.seen_seq: dict[str, int] = {}
        self.mine: set[str] = set()

    def take(self, m: dict, from_hello: bool) -> None:
        st, msg_id, text = self.c.stats, m["id"], m["text"]
        self.c.observe(self.room, msg_id, text, f"client {self.cid}")
        if self.last is not None and msg_id <= self.last:
            if from_hello:
                return  # a hello without since repeats what we have
            st.duplicates += msg_id == self.last
            st.order_violations += msg_id < self.last
            st.problem(f"client {self.cid}: #{msg_id} after #{self.last}")
            return
        if self.last is not None and msg_id != self.last + 1:
            st.gaps += msg_id - self.last - 1
            st.problem(f"client {self.cid}: c{self.room} #{msg_id} after #{self.last}")
        self.last = msg_id
        sender, _, seq = text.partition(".")
        if seq.isdigit():
            if int(seq) <= self.seen_seq.get(sender, 0):
                st.order_violations += 1
                st.problem(f"client {self.cid}: sender {sender} seq {seq} went back")
            self.seen_seq[sender] = int(seq)
        if not from_hello:
            st.delivered += 1
            if text in self.mine:
                self.mine.discard(text)
                st.acked += 1
                st.acked_after_restart += self.c.redis_back
                self.c.acked[text] = self.room

    async def run(self) -> None:
        c = self.c
        await asyncio.sleep(c.rng.uniform(0, 1))
        while not c.stop.is_set():
            live = [i for i in range(NODES) if c.alive[i]]
            if self.node not in live:
                self.node = live[self.cid % len(live)]
            since = self.last
            try:
                async with connect(c.url(self.node, self.room, since), subprotocols=[V1], proxy=None,
                                   open_timeout=10, ping_interval=None, close_timeout=2) as ws:
                    hello = json.loads(await asyncio.wait_for(ws.recv(), 10))
                    if hello.get("reset"):
                        c.stats.resets += 1
                        c.stats.problem(f"client {self.cid}: reset on recovery from #{since}")
                        self.last = None  # a new chain from the history given
                    elif since is not None:
                        c.stats.recoveries += 1
                    for m in hello.get("history", []):
                        self.take(m, True)
                    await asyncio.gather(self.read(ws), self.post(ws))
            except (OSError, InvalidHandshake, TimeoutError, ConnectionClosed) as e:
                if not c.stop.is_set() and c.alive[self.node]:
                    c.stats.connect_failures += 1
                    c.stats.problem(f"client {self.cid}: node {self.node}: {e!r}")
            if not c.stop.is_set():
                await asyncio.sleep(c.rng.uniform(0.05, 0.3))

    async def read(self, ws) -> None:
        async for raw in ws:
            m = json.loads(raw)
            if m.get("type") == "msg":
                self.take(m, False)
            elif m.get("type") == "dropped":
                self.c.stats.dropped += m.get("count", 0)
                self.c.stats.problem(f"client {self.cid}: node {self.node} dropped {m.get('count')} message(s)")
            elif m.get("type") == "error":
                if m.get("error") == "storage unavailable":
                    self.c.stats.refused += 1
                else:
                    self.c.stats.problem(f"client {self.cid}: error {m.get('error')}")
            if self.c.stop.is_set():
                return

    async def post(self, ws) -> None:
        c = self.c
        while not c.stop.is_set():
            await asyncio.sleep(c.rng.expovariate(1.0 / c.a.post_interval))
            if c.stop.is_set():
                break
            self.seq += 1
            text = f"{self.cid}.{self.seq}"
            self.mine.add(text)
            c.stats.sent += 1
            await ws.send(json.dumps({"user": f"u{self.cid}", "text": text}))
        await ws.close()


async def final_histories(c: Cluster) -> dict[int, list[dict]]:
    """Each room's whole stream (?since=0 reads back cluster_retention) through a live node."""
    node = next(i for i in range(NODES) if c.alive[i])
    out = {}
    for room in range(c.a.rooms):
        async with connect(c.url(node, room, 0), subprotocols=[V1], proxy=None, max_size=None,
                           open_timeout=10, ping_interval=None) as ws:
            out[room] = json.loads(await asyncio.wait_for(ws.recv(), 20))["history"]
    return out


async def run_cluster(a: argparse.Namespace) -> dict:
    work = Path(a.workdir) if a.workdir else Path(tempfile.mkdtemp(prefix="chatws-soak-cluster-"))
    work.mkdir(parents=True, exist_ok=True)
    c = Cluster(a, work)
    t0 = time.monotonic()
    events: list[str] = []
    try:
        await c.redis.start()
        for i in range(NODES):
            await c.start_node(i)
        members = [Member(c, i) for i in range(a.clients)]
        c.stats.clients = len(members)
        tasks = [asyncio.create_task(m.run()) for m in members]
        await asyncio.sleep(a.seconds / 3)
        c.kill_node(1)
        events.append(f"{time.monotonic() - t0:.1f}s node 1 killed (SIGKILL)")
        await asyncio.sleep(a.seconds / 3)
        c.redis.kill()
        events.append(f"{time.monotonic() - t0:.1f}s redis-server killed (SIGKILL)")
        await asyncio.sleep(1.0)  # the nodes notice, senders are refused
        await c.redis.start()
        c.redis_back = True
        events.append(f"{time.monotonic() - t0:.1f}s redis-server restarted from its AOF")
        await asyncio.sleep(a.seconds / 3)
        c.stop.set()
        await asyncio.wait(tasks, timeout=15)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # Acknowledged messages must all be in the room's stream.
        histories = await final_histories(c)
        st = c.stats
        stored: dict[int, set[str]] = {}
        for room, hist in histories.items():
            ids = [m["id"] for m in hist]
            if any(y != x + 1 for x, y in zip(ids, ids[1:])):
                st.gaps += 1
                st.problem(f"stream of c{room}: ids not contiguous")
            for m in hist:
                c.observe(room, m["id"], m["text"], "final history")
            stored[room] = {m["text"] for m in hist}
        for text, room in c.acked.items():
            if text not in stored.get(room, set()):
                st.lost_acked += 1
                st.problem(f"acknowledged {text!r} of c{room} missing from the stream")
    finally:
        c.stop.set()
        for i in range(NODES):
            c.kill_node(i)
        c.redis.kill()
    st = c.stats
    losses = st.gaps + st.resets + st.lost_acked
    checks = [("losses", losses == 0), ("duplicates", st.duplicates == 0),
              ("order violations", st.order_violations == 0),
              ("recovered through another node", st.recoveries > 0),
              ("Redis outage seen by senders (refused)", st.refused > 0),
              ("acknowledged after the Redis restart", st.acked_after_restart > 0)]
    return dict(
        mode="cluster", seed=a.seed, nodes=NODES, seconds=round(time.monotonic() - t0, 1), events=events,
        clients=st.clients, rooms=a.rooms, messages=dict(
            sent=st.sent, acked=st.acked, refused=st.refused, acked_after_restart=st.acked_after_restart,
            unsettled=st.sent - st.acked - st.refused, delivered=st.delivered),
        losses=losses, gaps=st.gaps, dropped=st.dropped, resets=st.resets, lost_acked=st.lost_acked, duplicates=st.duplicates,
        order_violations=st.order_violations, recoveries=st.recoveries, connect_failures=st.connect_failures,
        checks=[dict(name=n, ok=ok) for n, ok in checks], ok=all(ok for _, ok in checks),
        problems=st.problems, workdir=str(work))


def print_cluster_report(r: dict) -> None:
    m = r["messages"]
    print(f"soak --cluster: {r['nodes']} nodes, {r['clients']} clients in {r['rooms']} rooms, "
          f"{r['seconds']} s, seed {r['seed']}")
    for e in r["events"]:
        print(f"  {e}")
    print(f"  messages: sent {m['sent']}, acknowledged {m['acked']} ({m['acked_after_restart']} after the "
          f"Redis restart), refused (Redis away) {m['refused']}, unsettled (in flight at a kill or the end) "
          f"{m['unsettled']}, delivered {m['delivered']}")
    print(f"  losses {r['losses']} (gaps {r['gaps']}, of which told as dropped {r['dropped']}, resets "
          f"{r['resets']}, acknowledged missing {r['lost_acked']}), duplicates {r['duplicates']}, order violations {r['order_violations']}, "
          f"recoveries {r['recoveries']}")
    for ch in r["checks"]:
        print(f"  [{'ok' if ch['ok'] else 'FAIL'}] {ch['name']}")
    for p in r["problems"][:10]:
        print(f"  problem: {p}")
