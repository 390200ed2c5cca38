"""Room explosion and one-room flood against the C chat server: the steady
state of its memory (RSS) and of its history file.

  python3 bench/room_explosion.py --server build/examples/chat_server \\
      [--rooms 20000] [--text-bytes 4096] [--history FILE] [--max-rooms N] \\
      [--flood 0] [--workers 8]

Each of --rooms clients joins its own new room (/rooms/x<i>, chatws.v1),
posts one message of --text-bytes, reads it back and leaves; refused joins
(HTTP 503 at max_rooms) are counted. Then, with --flood N, one client posts
N messages into the first room (/rooms/x0) as fast as its echoes come back. RSS (VmRSS) and
the file sizes (database + WAL) are sampled as it goes and printed at the
end, with the server idle and no client connected. Loopback only; bounded
by the counts given. A measurement tool, not a test.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parent))
from local_server import free_port, wait_ready  # noqa: E402


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return -1


def file_bytes(path: Path | None) -> int:
    if path is None:
        return 0
    return sum(p.stat().st_size for p in (path, Path(str(path) + "-wal")) if p.exists())


def one_room(url: str, i: int, text: str) -> str:
    try:
        with connect(f"{url}rooms/x{i}", subprotocols=["chatws.v1"], open_timeout=10) as ws:  # type: ignore[list-item]
            json.loads(ws.recv(timeout=10))  # hello
            ws.send(json.dumps({"user": "u", "text": text}))
            while json.loads(ws.recv(timeout=10)).get("type") != "msg":
                pass
        return "ok"
    except InvalidStatus as e:
        return str(e.response.status_code)


def flood(url: str, n: int, text: str) -> None:
    with connect(f"{url}rooms/x0", subprotocols=["chatws.v1"], open_timeout=10,  # type: ignore[list-item]
                 max_size=None) as ws:
        json.loads(ws.recv(timeout=10))
        msg = json.dumps({"user": "f", "text": text})
        window = 64  # messages in flight
        sent = got = 0
        while got < n:
            while sent < n and sent - got < window:
                ws.send(msg)
                sent += 1
            if json.loads(ws.recv(timeout=10)).get("type") == "msg":
                got += 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", required=True, help="path of the chat_server program")
    ap.add_argument("--rooms", type=int, default=20000)
    ap.add_argument("--text-bytes", type=int, default=4096)
    ap.add_argument("--history", help="SQLite file (default: in-memory history)")
    ap.add_argument("--max-rooms", type=int)
    ap.add_argument("--flood", type=int, default=0, help="messages of the one-room flood")
    ap.add_argument("--workers", type=int, default=8)
    args = ap.parse_args()

    port = free_port()
    cmd = [args.server, "--port", str(port), "--static-dir", tempfile.gettempdir()]
    history = Path(args.history) if args.history else None
    if history:
        cmd += ["--history", str(history)]
    if args.max_rooms:
        cmd += ["--max-rooms", str(args.max_rooms)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if not wait_ready(proc, port, 10):
            print("server did not start", file=sys.stderr)
            return 1
        url = f"ws://127.0.0.1:{port}/"
        text = "x" * args.text_bytes
        start_rss = rss_kb(proc.pid)
        print(f"start: RSS {start_rss / 1024:.1f} MB, file {file_bytes(history) / 1e6:.2f} MB")
        outcomes: dict[str, int] = {}
        peak = start_rss
        t0 = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(args.workers) as pool:
            step = max(1, args.rooms // 10)
            for base in range(0, args.rooms, step):
                for r in pool.map(lambda i: one_room(url, i, text), range(base, min(base + step, args.rooms))):
                    outcomes[r] = outcomes.get(r, 0) + 1
                peak = max(peak, rss_kb(proc.pid))
                print(f"  {min(base + step, args.rooms):6d} rooms: RSS {rss_kb(proc.pid) / 1024:.1f} MB, "
                      f"file {file_bytes(history) / 1e6:.2f} MB, {outcomes}", flush=True)
        print(f"explosion: {args.rooms} rooms in {time.monotonic() - t0:.1f} s, outcomes {outcomes}")
        if args.flood:
            t0 = time.monotonic()
            flood(url, args.flood, text)
            peak = max(peak, rss_kb(proc.pid))
            print(f"flood: {args.flood} messages in {time.monotonic() - t0:.1f} s")
        time.sleep(1)  # idle: nothing connected
        print(f"steady: RSS {rss_kb(proc.pid) / 1024:.1f} MB (peak {peak / 1024:.1f} MB), "
              f"file {file_bytes(history) / 1e6:.2f} MB")
    finally:
        proc.terminate()
        proc.wait(10)
    if history:
        print(f"after stop: file {file_bytes(history) / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
