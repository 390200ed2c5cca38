#!/usr/bin/env python3
"""permessage-deflate benchmarks (issue 14), printed as Markdown rows:

    python bench/compression.py [--build-dir build] [--runs 3] [--only bytes,broadcast,idle]

- bytes: bytes on the wire per chat delivery, compression shared vs off: an
  in-process chat server (the chatws Python package), 20 members of one
  room ("chatws.v1", `websockets` clients, which offer permessage-deflate),
  200 messages of 80-300 characters of chat-like text; the server's
  bytes_sent over its chat deliveries.
- broadcast: deliveries/s to 1000 connections (chatws-loadgen --deflate,
  200-byte and 2048-byte text messages, window 16) for chatws-bench-server
  --compression shared and off, and Node ws with perMessageDeflate: true
  (if node and bench/peers/node/node_modules are there).
- idle: server RSS growth per connection with 10,000 idle connections that
  negotiated permessage-deflate, per mode.

Medians of --runs runs. The server runs on CPU 0 and the load generator on
CPU 1 when the machine has two (taskset).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORDS = ("hello the meeting is moved to three o'clock see you there thanks for letting me know "
         "what about lunch today I can bring the slides tomorrow morning sounds good to me "
         "did anyone review the pull request yet the build is green again").split()


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def pinned(cpu: int, cmd: list[str]) -> list[str]:
    return (["taskset", "-c", str(cpu)] + cmd) if shutil.which("taskset") and os.cpu_count() >= 2 else cmd


def chat_text(rng: random.Random) -> str:
    n = rng.randint(80, 300)
    out = []
    while sum(len(w) + 1 for w in out) < n:
        out.append(rng.choice(WORDS))
    return " ".join(out)[:n]


# ------------------------------------------------------------------- bytes

def bytes_per_delivery(compression: str, members: int = 20, messages: int = 200) -> dict:
    import chatws
    from websockets.asyncio.client import connect

    server = chatws.Server(port=0, chat=True, compression=compression,
                           max_messages_per_second=float("inf")).start()
    rng = random.Random(14)
    texts = [chat_text(rng) for _ in range(messages)]

    async def scenario() -> None:
        clients = [await connect(server.url + "rooms/bench", subprotocols=["chatws.v1"])
                   for _ in range(members)]
        for c in clients:
            await c.recv()  # hello with the (empty) history
        await asyncio.sleep(0)
        before = server.stats()
        for t in texts:
            await clients[0].send(json.dumps({"user": "alice", "text": t}))
            for c in clients:  # every member gets the msg event
                while json.loads(await c.recv()).get("type") != "msg":
                    pass
        after = server.stats()
        scenario.delta = (after.bytes_sent - before.bytes_sent,
                          after.chat_deliveries - before.chat_deliveries,
                          after.deflate_calls - before.deflate_calls)
        for c in clients:
            await c.close()

    asyncio.run(scenario())
    server.close()
    sent, deliveries, calls = scenario.delta
    avg_text = sum(len(t) for t in texts) / len(texts)
    return {"bytes_per_delivery": sent / deliveries, "deliveries": deliveries,
            "deflate_calls": calls, "avg_text": avg_text}


# --------------------------------------------------------------- broadcast

def start_server(kind: str, build: Path, port: int, mode: str) -> subprocess.Popen:
    if kind.startswith("chatws-"):
        comp = kind.split("-", 1)[1]
        cmd = [str(build / "bench" / "chatws-bench-server"), "--mode", mode, "--port", str(port),
               "--compression", comp]
    else:
        cmd = ["node", str(REPO / "bench" / "peers" / "node" / "server.js"), "--mode", mode,
               "--port", str(port), "--per-message-deflate"]
    p = subprocess.Popen(pinned(0, cmd), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return p


def stop(p: subprocess.Popen) -> None:
    p.terminate()
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def loadgen(build: Path, port: int, pid: int, args: list[str]) -> dict:
    cmd = pinned(1, [str(build / "bench" / "chatws-loadgen"), "--port", str(port),
                     "--server-pid", str(pid), "--json", "--deflate"] + args)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=180).stdout
    return json.loads(out.strip().splitlines()[-1])


def broadcast(build: Path, kind: str, size: int, runs: int) -> dict:
    vals, errors = [], 0
    for _ in range(runs):
        port = free_port()
        p = start_server(kind, build, port, "broadcast")
        try:
            r = loadgen(build, port, p.pid, ["--mode", "broadcast", "--connections", "1000",
                                            "--size", str(size), "--window", "16",
                                            "--duration", "5", "--warmup", "1"])
        finally:
            stop(p)
        vals.append(r["deliveries_per_s"])
        errors += r["errors"] + r["unexpected_closes"]
    return {"median": statistics.median(vals), "runs": vals, "errors": errors}


def idle(build: Path, kind: str, runs: int, n: int = 10000) -> dict:
    vals = []
    for _ in range(runs):
        port = free_port()
        p = start_server(kind, build, port, "echo")
        try:
            r = loadgen(build, port, p.pid, ["--mode", "idle", "--connections", str(n)])
        finally:
            stop(p)
        vals.append(r["rss_bytes_per_conn"])
    return {"median": statistics.median(vals), "runs": vals}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build-dir", default=str(REPO / "build"))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--only", default="bytes,broadcast,idle")
    args = ap.parse_args()
    build = Path(args.build_dir)
    only = set(args.only.split(","))
    print(f"load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} CPUs")
    if "bytes" in only:
        print("\n| chat delivery (chatws.v1, 20 members, 80-300 chars) | bytes on the wire per delivery | deflate calls |")
        print("| --- | --- | --- |")
        res = {c: bytes_per_delivery(c) for c in ("off", "shared")}
        for c, r in res.items():
            print(f"| compression {c} | {r['bytes_per_delivery']:.1f} | {r['deflate_calls']} "
                  f"(for {r['deliveries']} deliveries) |")
        print(f"\nsaved: {100 * (1 - res['shared']['bytes_per_delivery'] / res['off']['bytes_per_delivery']):.0f}% "
              f"(average text {res['off']['avg_text']:.0f} chars)")
    if "broadcast" in only:
        kinds = ["chatws-shared", "chatws-off"]
        if shutil.which("node") and (REPO / "bench/peers/node/node_modules/ws").exists():
            kinds.append("node-ws")
        print("\n| broadcast to 1000, deflate offered | size | deliveries/s (median) | runs | errors |")
        print("| --- | --- | --- | --- | --- |")
        for size in (200, 2048):
            base = None
            for k in kinds:
                r = broadcast(build, k, size, args.runs)
                base = base or r["median"]
                print(f"| {k} | {size} | {r['median']:,.0f} ({r['median'] / base:.2f}x) | "
                      f"{', '.join(f'{v:,.0f}' for v in r['runs'])} | {r['errors']} |", flush=True)
    if "idle" in only:
        print("\n| 10,000 idle connections, deflate negotiated | RSS bytes per connection (median) | runs |")
        print("| --- | --- | --- |")
        for k in ("chatws-shared", "chatws-dedicated", "chatws-off"):
            r = idle(build, k, args.runs)
            print(f"| {k} | {r['median']:.0f} | {', '.join(f'{v:.0f}' for v in r['runs'])} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
