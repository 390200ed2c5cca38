#!/usr/bin/env python3
"""Soak test of the chat server: many real WebSocket clients, a kill -9, checks.

Runs the chat server as a child process on 127.0.0.1 and drives N clients
(asyncio + `websockets`, subprotocol chatws.v1) that join and leave rooms
(/rooms/r0.. at random) and post messages with a unique text
"<client>.<seq>:<padding>". 10% are slow readers (a tiny receive buffer, a
few frames read every few seconds); half of them lurk in the room "hot",
where a few well-behaved "bulk" clients post big messages fast, so that the
server's slow-consumer policy (close 1008 once a connection's output queue
passes its cap) hits them; they reconnect later. Halfway, the server is
killed with SIGKILL and restarted on the same port and history file; the
clients reconnect and the run goes on.

Checks (a line of the report each; any failure: exit status 1):
- losses: a message acknowledged to a well-behaved sender (it got its own
  message back as a v1 "msg") reaches, exactly once, every well-behaved
  session that was in the room from before the message was sent until after
  the ack. A session's end is its "leave barrier": before leaving, a client
  posts a last message and reads until it gets it back, so it has read
  everything the server delivered to it before that.
- gaps: every session (slow ones too) sees its room's ids contiguously after
  its hello history: the policy closes a connection, it never skips for it.
- duplicates (in a session; one text stored under two ids), order (ids and
  each sender's sequence numbers increase), id conflicts (one id, one text),
  corrupted texts, error frames, unexpected closes of well-behaved clients,
  well-behaved clients closed as slow (from the server's log).
- durability: right after the restart, each room's hello history (last N)
  holds every acknowledged or delivered message that belongs there; at the
  end the SQLite file holds the last history_size messages of each room (the
  store deletes older ones) and every acknowledged or delivered one among
  them, once, ids contiguous.
- resources: after every client has left, the server's descriptors are back
  to the (restarted) process's baseline and its VmRSS is within 10% of the
  baseline plus --rss-allowance-mb (the engine gives its memory back when
  its last client leaves: see docs/soak.md); SIGTERM then exits with status 0.

  scripts/soak.py --short                 # CI: 300 clients, ~45 s, one kill -9
  scripts/soak.py --cluster               # 3 nodes + Redis, a node and Redis killed (soaklib/cluster.py)
  scripts/soak.py --minutes 30 --clients 2000 --json report.json
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from soaklib.config import parse_args  # noqa: E402
from soaklib.report import print_report  # noqa: E402
from soaklib.supervisor import run  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--cluster" in argv:
        from soaklib.cluster import parse_cluster_args, print_cluster_report, run_cluster
        ca = parse_cluster_args(argv)
        report = asyncio.run(run_cluster(ca))
        print_cluster_report(report)
        if ca.json:
            Path(ca.json).write_text(json.dumps(report, indent=2) + "\n")
        return 0 if report["ok"] else 1
    a = parse_args(argv)
    # The ledger holds millions of objects: full collections of the cyclic
    # GC would stall the clients' event loop for hundreds of ms at a time.
    gc.set_threshold(200_000, 20, 1_000_000)
    report = asyncio.run(run(a))
    print_report(report)
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
