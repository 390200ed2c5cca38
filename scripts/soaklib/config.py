"""The soak's options, constants and small process helpers."""

from __future__ import annotations

import argparse
import os
import random
import resource
import shlex
import socket
from pathlib import Path




REPO_ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
V1 = "chatws.v1"
SLOW_PAUSE_S = (1.0, 6.0)  # a slow reader's pauses between bursts of 1..7 frames
BULK_ALPHABET = "😀🎉€中"  # 3.5 bytes per code point
BULK_BYTES_PER_CP = 3.5
PAD_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789 éжλ€中😀"  # 1- to 4-byte UTF-8


# ----------------------------------------------------------------- options

def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--short", action="store_true", help="CI mode: 300 clients, about 45 s in all")
    p.add_argument("--clients", type=int, help="clients (default 2000; --short: 300)")
    p.add_argument("--rooms", type=int, help="rooms /rooms/r0.. (default 40; --short: 10)")
    p.add_argument("--minutes", type=float, help="length of the client phase (default 5)")
    p.add_argument("--seconds", type=float, help="same, in seconds (overrides --minutes)")
    p.add_argument("--slow-fraction", type=float, default=0.10, help="share of slow readers")
    p.add_argument("--post-interval", type=float, help="mean seconds between a client's posts")
    p.add_argument("--session-mean", type=float, help="mean seconds a client stays in a room")
    p.add_argument("--pad-mean", type=int, help="mean padding (code points) per message")
    p.add_argument("--bulk-posters", type=int, default=4,
                   help="well-behaved clients that post big messages fast in the room 'hot'")
    p.add_argument("--bulk-rate", type=float, help="messages/s they post together (short: 60, else 30)")
    p.add_argument("--hot-mb", type=float, default=150.0,
                   help="bound on the bytes posted to 'hot' in a run (sizes the bulk messages)")
    p.add_argument("--kill-at", type=float, default=0.5,
                   help="kill -9 + restart at this fraction of the run (<=0: never)")
    p.add_argument("--history-size", type=int, default=50, help="the server's history size")
    p.add_argument("--rss-allowance-mb", type=float, default=2.0,
                   help="absolute RSS allowance above baseline+10%% (see docs/soak.md)")
    p.add_argument("--trim-probe", dest="trim_probe", action="store_true",
                   help="also call malloc_trim(0) in the server through gdb after the clients left "
                        "(the engine already trims when its last connection closes; this only "
                        "shows what the allocator could still give back)")
    p.add_argument("--server", help="server command template with {port} {history} "
                   "{history_size} (default: the C example chat_server)")
    p.add_argument("--port", type=int, default=0, help="server port (default: a free one)")
    p.add_argument("--workdir", help="history file and server logs (default: a temp dir)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--json", help="write the report here as JSON")
    a = p.parse_args(argv)
    short = a.short
    defaults = dict(clients=300 if short else 2000, rooms=10 if short else 40,
                    post_interval=2.5 if short else 15.0, session_mean=12.0 if short else 60.0,
                    pad_mean=1000, bulk_rate=60.0 if short else 30.0)
    for k, v in defaults.items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    if a.seconds is None:
        a.seconds = 30.0 if short and a.minutes is None else 60.0 * (a.minutes or 5.0)
    if a.seed is None:
        a.seed = random.randrange(1 << 30)
    # Bulk messages as big as the text limit allows, within the byte budget.
    a.bulk_pad = int(min(3500, a.hot_mb * 1e6 / max(1.0, a.bulk_rate * a.seconds) / BULK_BYTES_PER_CP))
    return a


def default_server_template() -> str:
    binary = os.environ.get("CHATWS_CHAT_SERVER", "").strip()
    candidates = [Path(binary)] if binary else []
    for d in (os.environ.get("CHATWS_BUILD_DIR", ""), "build", "build-soak"):
        if d:
            candidates.append((REPO_ROOT / d / "examples" / "chat_server").resolve())
    for c in candidates:
        if os.access(c, os.X_OK):
            return f"{shlex.quote(str(c))} --port {{port}} --history {{history}} " \
                   f"--history-size {{history_size}}"
    raise SystemExit("soak: no chat server: build the chat_server example or pass --server")


def raise_nofile(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = need if hard == resource.RLIM_INFINITY else min(need, hard)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]
