#!/usr/bin/env python3
"""A flooder next to 100 normal clients, with the chat's rate limit (issue 12):
the normal clients' delivery rate and latency alone, with a flooder posting
at full speed (default limit, 20/s burst 40), and with the same flooder and
no limit (what the limit buys).

    .venv/bin/python bench/flood_neighbours.py [--build build] [--runs 3] [--duration 5]

The C chat server (`examples/chat_server`, CPU 0) serves 100 normal clients
in 10 rooms of 10 (chatws.v1, one asyncio process on CPU 1): each posts
--rate messages per second on a fixed schedule (open loop), stamped with its
send time; every member of its room receives each one, the sender included.
Figures: deliveries per second over the measured interval (after a 1 s
warm-up) against the schedule's, and the send-to-delivery latency (p50,
p99). The flooder is another process (CPU 1): a raw socket writing one
pre-encoded chat message after another into /rooms/flood for the whole run,
and a thread reading and counting its answers (stored messages and "rate
limited" errors). A measurement tool, not a test.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import selectors
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
from local_server import free_port, stop_server, wait_ready, ws_upgrade  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SERVER_CPU, CLIENT_CPU = "0", "1"


def pinned(cpu: str, cmd: List[str]) -> List[str]:
    return ["taskset", "-c", cpu, *cmd] if shutil.which("taskset") and (os.cpu_count() or 1) > 1 else cmd


# ------------------------------------------------------------ the flooder

def flood_connect(port: int) -> socket.socket:
    s = ws_upgrade(port, "/rooms/flood", "chatws.v1", timeout=None)
    s.setblocking(False)
    return s


def flood_main(port: int, seconds: float) -> None:
    """Posts as fast as the server takes it and reads every answer, in one
    thread (a reader thread would wait for the GIL behind the writer). If the
    server closes it anyway (1008 "too slow": it fell behind reading its
    answers), it reconnects, as a real flooder would."""
    payload = json.dumps({"user": "flood", "text": "x" * 32}).encode()
    mask = os.urandom(4)
    frame = bytes([0x81, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    batch = frame * 256
    counts = {"msg": 0, "error": 0}
    end = time.monotonic() + seconds
    sent = reconnects = 0
    sel = selectors.DefaultSelector()
    while time.monotonic() < end:
        s = flood_connect(port)
        sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE)
        pending = memoryview(b"")
        tail = b""
        alive = True
        while alive and time.monotonic() < end:
            for _, events in sel.select(timeout=0.5):
                if events & selectors.EVENT_READ:
                    try:
                        data: Optional[bytes] = s.recv(1 << 20)
                    except BlockingIOError:
                        data = None
                    except OSError:
                        data = b""
                    if data == b"":
                        alive = False
                        break
                    if data:
                        chunk = tail + data
                        # Markers wholly in the tail were counted with the previous read.
                        for kind in ("msg", "error"):
                            marker = b'"type":"%s"' % kind.encode()
                            counts[kind] += chunk.count(marker) - tail.count(marker)
                        tail = chunk[-16:]
                if events & selectors.EVENT_WRITE:
                    if not pending:
                        pending = memoryview(batch)
                        sent += 256
                    try:
                        pending = pending[s.send(pending):]
                    except BlockingIOError:
                        pass
                    except OSError:
                        alive = False
                        break
        sel.unregister(s)
        s.close()
        reconnects += not alive
    print(json.dumps({"sent": sent, "stored": counts["msg"], "errors": counts["error"],
                      "reconnects": reconnects}), flush=True)


# ------------------------------------------------------- the normal clients

async def normal_main(port: int, clients: int, room_size: int, rate: float, warmup: float,
                      duration: float) -> dict:
    import websockets

    conns = []
    for i in range(clients):
        ws = await websockets.connect(f"ws://127.0.0.1:{port}/rooms/n{i // room_size}",
                                      subprotocols=["chatws.v1"], max_queue=None,  # type: ignore[list-item]
                                      ping_interval=None)
        json.loads(await ws.recv())  # hello
        conns.append(ws)
    start = time.monotonic() + 0.5
    measure_from, measure_to = start + warmup, start + warmup + duration
    latencies: List[float] = []
    delivered = 0

    async def post(ws: "websockets.ClientConnection", i: int) -> None:
        k = 0
        while True:
            at = start + (k + (i % 10) / 10) / rate  # spread over the period
            if at >= measure_to:
                return
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            await ws.send(json.dumps({"user": f"n{i}", "text": f"{time.monotonic():.6f}"}))
            k += 1

    async def read(ws: "websockets.ClientConnection") -> None:
        nonlocal delivered
        while True:
            try:
                raw = await asyncio.wait_for(ws.recv(), timeout=max(0.1, measure_to + 2 - time.monotonic()))
            except asyncio.TimeoutError:
                return
            now = time.monotonic()
            if now > measure_to + 2:
                return
            m = json.loads(raw)
            if m.get("type") != "msg":
                continue
            sent = float(m["text"])
            if measure_from <= sent < measure_to:
                delivered += 1
                latencies.append(now - sent)

    await asyncio.gather(*(post(ws, i) for i, ws in enumerate(conns)), *(read(ws) for ws in conns))
    for ws in conns:
        await ws.close()
    latencies.sort()
    expected = clients * room_size * rate * duration
    return {"deliveries_per_s": delivered / duration, "expected_per_s": expected / duration,
            "p50_ms": 1000 * latencies[len(latencies) // 2] if latencies else 0.0,
            "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)] if latencies else 0.0}


# ------------------------------------------------------------------ driver

def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def one(args: argparse.Namespace, flood: bool, limit: bool) -> dict:
    port = free_port()
    cmd = [str(args.build / "examples" / "chat_server"), "--port", str(port), "--no-static"]
    if not limit:
        cmd += ["--max-messages-per-second", "off"]
    server = subprocess.Popen(pinned(SERVER_CPU, cmd), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    flooder: Optional[subprocess.Popen] = None
    try:
        if not wait_ready(server, port, 20):
            raise RuntimeError("the chat server did not start")
        total = 0.5 + args.warmup + args.duration + 2
        if flood:
            fcmd = [sys.executable, __file__, "--flooder", str(port), str(total + 1)]
            if args.flood_nice:  # its client CPU, not the server's, is what nice takes from it
                fcmd = ["nice", "-n", str(args.flood_nice), *fcmd]
            flooder = subprocess.Popen(pinned(args.flood_cpu, fcmd),
                                       stdout=subprocess.PIPE, text=True)
        normal = subprocess.run(pinned(CLIENT_CPU, [sys.executable, __file__, "--normal", str(port),
                                                    json.dumps(vars(args), default=str)]),
                                stdout=subprocess.PIPE, text=True, check=True, timeout=total + 60)
        out: dict = {"normal": json.loads(normal.stdout.strip().splitlines()[-1])}
        if flooder is not None:
            fout, _ = flooder.communicate(timeout=60)
            out["flood"] = json.loads(fout.strip().splitlines()[-1])
        out["server_cpu_s"] = cpu_seconds(server.pid)  # the whole run: what the flood cost the server
        return out
    finally:
        if flooder is not None and flooder.poll() is None:
            flooder.kill()
        stop_server(server)


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--flooder":
        flood_main(int(sys.argv[2]), float(sys.argv[3]))
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "--normal":
        a = json.loads(sys.argv[3])
        r = asyncio.run(normal_main(int(sys.argv[2]), a["clients"], a["room_size"], a["rate"], a["warmup"],
                                    a["duration"]))
        print(json.dumps(r), flush=True)
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", type=Path, default=REPO / "build")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--room-size", type=int, default=10)
    ap.add_argument("--rate", type=float, default=1.0, help="messages per second per normal client")
    ap.add_argument("--flood-cpu", default=CLIENT_CPU,
                    help="CPU of the flooder's process (default 1, the normal clients'; 0: the server's)")
    ap.add_argument("--flood-nice", type=int, default=0,
                    help="nice the flooder's process (it shares CPU 1 with the normal clients' process)")
    args = ap.parse_args()
    cases = [("alone", False, True), ("flooder, limit on", True, True), ("flooder, limit off", True, False)]
    rows: Dict[str, List[dict]] = {name: [] for name, _, _ in cases}
    for run in range(args.runs):
        for name, flood, limit in cases:  # interleaved: drift hits every case alike
            r = one(args, flood, limit)
            rows[name].append(r)
            n = r["normal"]
            extra = ""
            if "flood" in r:
                f = r["flood"]
                extra = (f" | flooder: {f['stored'] + f['errors']} answered ({f['stored']} stored, "
                         f"{f['errors']} rate limited) of {f['sent']} written, "
                         f"{f['reconnects']} reconnects after a close")
            print(f"run {run + 1} {name:>18}: {n['deliveries_per_s']:.0f}/{n['expected_per_s']:.0f} "
                  f"deliveries/s, p50 {n['p50_ms']:.2f} ms, p99 {n['p99_ms']:.2f} ms, "
                  f"server CPU {r['server_cpu_s']:.2f} s{extra}", flush=True)
    base = rows["alone"]
    b_rate = statistics.median(r["normal"]["deliveries_per_s"] for r in base)
    b_p50 = statistics.median(r["normal"]["p50_ms"] for r in base)
    b_p99 = statistics.median(r["normal"]["p99_ms"] for r in base)
    for name, _, _ in cases:
        rate = statistics.median(r["normal"]["deliveries_per_s"] for r in rows[name])
        p50 = statistics.median(r["normal"]["p50_ms"] for r in rows[name])
        p99 = statistics.median(r["normal"]["p99_ms"] for r in rows[name])
        cpu = statistics.median(r["server_cpu_s"] for r in rows[name])
        print(f"median {name:>18}: {rate:.0f} deliveries/s ({100 * rate / b_rate:.1f}%), "
              f"p50 {p50:.2f} ms (x{p50 / b_p50:.2f}), p99 {p99:.2f} ms (x{p99 / b_p99:.2f}), "
              f"server CPU {cpu:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
