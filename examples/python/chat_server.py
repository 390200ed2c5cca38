#!/usr/bin/env python3
"""The chatws chat server as a Python host program.

It is what ``python -m chatws`` runs, written out as an example: the engine
serves the browser chat page and the chat (rooms, history, broadcast); this
program adds a moderation hook and logs who comes and goes.

    python examples/python/chat_server.py --port 8080 --history chat.sqlite3

then open http://127.0.0.1:8080/ in two browser tabs.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path
from typing import Optional

import chatws

log = logging.getLogger("chat_server")

# Words the moderation hook masks (a deliberately tiny example list).
BLOCKED_WORDS = {"spam"}


def moderate(conn: Optional[chatws.Connection], msg: chatws.ChatMessage) -> chatws.ChatVerdict:
    """The on_chat hook: runs for every chat message before it is stored and
    broadcast. Return None to accept, False to reject, or a rewrite."""
    text = msg.text.strip()
    if not text:
        return False  # blank once trimmed: the sender gets an error frame
    words = [("*" * len(w) if w.lower() in BLOCKED_WORDS else w) for w in text.split(" ")]
    return msg._replace(user=msg.user.strip() or "anonymous", text=" ".join(words))


def main() -> int:
    parser = argparse.ArgumentParser(description="chatws chat server (Python host example)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    parser.add_argument("--static-dir", type=Path, default=None,
                        help="the chat page (default: the one bundled with chatws)")
    parser.add_argument("--history", default=None, help="SQLite file for durable history")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    static_dir = args.static_dir or chatws.bundled_web_dir()
    server = chatws.Server(args.host, args.port, chat=True, static_dir=static_dir,
                           history_path=args.history, on_chat=moderate)

    @server.on_open
    def joined(conn: chatws.Connection) -> None:
        log.info("%s:%d joined %s (%s)", *conn.remote_address, conn.path, conn.subprotocol or "-")

    @server.on_close
    def left(conn: chatws.Connection, code: int, reason: str) -> None:
        log.info("%s:%d left (%d %s)", *conn.remote_address, code, reason)

    @server.on_message
    def not_chat(conn: chatws.Connection, message: chatws.Message) -> None:
        # Connections without a chat subprotocol land here; this server has
        # nothing else to offer them.
        conn.close(chatws.CLOSE_POLICY, "use the json or chatws.v1 subprotocol")

    with server:
        signal.signal(signal.SIGTERM, lambda signum, frame: server.stop(wait=False))
        print(f"chat server running, open {server.http_url}", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
