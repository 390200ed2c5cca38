"""Kernel memory held by clients that never read (issue 12): the server-side
send queue (`ss -tn` Send-Q) of never-reading clients next to a broadcast.

  .venv/bin/python bench/sendq.py [--readers 900] [--idle 100] \\
      [--message-bytes 16384] [--mib 6] [--socket-send-buffer N|auto] [--runs 3]

A chatws.Server (the Python package, in a child process, slow consumers
dropped so that they stay connected) broadcasts every message of one
publisher to every connection. --readers clients read everything; --idle
clients complete the upgrade and never read again. The publisher sends
--mib MiB in messages of --message-bytes, in windows of 16 that every reader
has received before the next (so no reader is ever a slow consumer). Once
the last message has reached every reader, the loop has offered all of it to
the never-readers too, and `ss -tn` gives each server-side socket's Send-Q:
the bytes the kernel holds for it. Printed: max and sum over the
never-readers, the sum over all sockets, and the server's queued output
(user space, chatws stats). A measurement tool, not a test.

--socket-send-buffer: unset = the library's default, "auto" = the kernel's
autotuning (socket_send_buffer=-1), N = SO_SNDBUF N.
"""
from __future__ import annotations

import argparse
import json
import os
import selectors
import socket
import statistics
import subprocess
import sys
import time
from typing import Dict, List, Optional, Tuple

from local_server import masked_frame, ws_upgrade

SERVER = r"""
import json, sys, time, chatws
kw = json.loads(sys.argv[1])
server = chatws.Server(host="127.0.0.1", port=0, slow_consumer_policy="drop", **kw)
server.on_message = lambda conn, msg: server.broadcast(msg)
server.start()
print(server.port, flush=True)
for line in sys.stdin:
    time.sleep(0.6)  # the queued-output gauge is summed every 250 ms
    st = server.stats()
    print(json.dumps({"queued": st.queued_output_bytes, "drops": st.slow_consumer_drops}), flush=True)
server.stop()
"""


def server_side_sendq(port: int) -> Dict[int, int]:
    """Send-Q by client port, of the server's established sockets."""
    out = subprocess.run(["ss", "-tnH", "state", "established", "( sport = :%d )" % port],
                         check=True, stdout=subprocess.PIPE, text=True).stdout
    queues: Dict[int, int] = {}
    for line in out.splitlines():
        f = line.split()
        # Recv-Q Send-Q Local:Port Peer:Port
        queues[int(f[3].rsplit(":", 1)[1])] = int(f[1])
    return queues


def one_run(args: argparse.Namespace, kw: dict) -> Tuple[int, int, int, int, int]:
    srv = subprocess.Popen([sys.executable, "-c", SERVER, json.dumps(kw)], stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, text=True)
    try:
        assert srv.stdout and srv.stdin
        port = int(srv.stdout.readline())
        readers = [ws_upgrade(port) for _ in range(args.readers)]
        idle = [ws_upgrade(port) for _ in range(args.idle)]
        frame_len = len(masked_frame(b"x" * args.message_bytes)) - 4  # server frames: no mask
        sel = selectors.DefaultSelector()
        got: Dict[int, int] = {}
        for r in readers:
            r.setblocking(False)
            sel.register(r, selectors.EVENT_READ)
            got[r.fileno()] = 0
        pub = readers[0]
        total = (args.mib << 20) // args.message_bytes
        payload = os.urandom(args.message_bytes)
        frame = masked_frame(payload)
        buf = bytearray(1 << 20)
        sent = 0
        deadline = time.monotonic() + 600
        while sent < total:
            w = min(16, total - sent)
            pub.setblocking(True)
            pub.sendall(frame * w)
            pub.setblocking(False)
            sent += w
            want = sent * frame_len
            while min(got.values()) < want:
                if time.monotonic() > deadline:
                    raise RuntimeError("readers stalled")
                for key, _ in sel.select(timeout=5):
                    n = key.fileobj.recv_into(buf)  # type: ignore[union-attr]
                    if n == 0:
                        raise RuntimeError("a reader was closed")
                    got[key.fileobj.fileno()] += n  # type: ignore[union-attr]
        queues = server_side_sendq(port)
        idle_ports = {s.getsockname()[1] for s in idle}
        idle_q = [q for p, q in queues.items() if p in idle_ports]
        srv.stdin.write("stats\n")
        srv.stdin.flush()
        st = json.loads(srv.stdout.readline())
        for s in readers + idle:
            s.close()
        return max(idle_q), sum(idle_q), sum(queues.values()), st["queued"], st["drops"]
    finally:
        if srv.stdin:
            srv.stdin.close()
        srv.wait(timeout=30)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--readers", type=int, default=900)
    ap.add_argument("--idle", type=int, default=100)
    ap.add_argument("--message-bytes", type=int, default=16384)
    ap.add_argument("--mib", type=int, default=6, help="MiB offered to every connection")
    ap.add_argument("--socket-send-buffer", default=None)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    kw: dict = {}
    if args.socket_send_buffer == "auto":
        kw["socket_send_buffer"] = "auto"
    elif args.socket_send_buffer is not None:
        kw["socket_send_buffer"] = int(args.socket_send_buffer)
    rows: List[Tuple[int, int, int, int, int]] = []
    for i in range(args.runs):
        r = one_run(args, kw)
        rows.append(r)
        print(f"run {i + 1}: never-reader Send-Q max {r[0]} B, sum {r[1] / 2**20:.1f} MiB; "
              f"all sockets {r[2] / 2**20:.1f} MiB; user-space queued {r[3] / 2**20:.1f} MiB; "
              f"drops {r[4]}", flush=True)
    med = [statistics.median(c) for c in zip(*rows)]
    print(f"median of {args.runs} (socket_send_buffer={args.socket_send_buffer or 'default'}, "
          f"{args.readers} readers, {args.idle} never-readers, {args.mib} MiB offered): "
          f"never-reader Send-Q max {med[0] / 1024:.0f} KiB, sum {med[1] / 2**20:.1f} MiB, "
          f"all sockets {med[2] / 2**20:.1f} MiB, user-space {med[3] / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
