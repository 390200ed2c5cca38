#!/usr/bin/env python3
"""A WebSocket echo server on chatws: every message comes back as it came
(text as text, binary as binary).

    python examples/python/echo_server.py --port 9001

Also the Python peer of the benchmarks (bench/): it prints
"listening on ws://HOST:PORT/" once it accepts connections, and stops
cleanly on SIGINT (Ctrl-C) or SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import sys

import chatws


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9001, help="0 picks a free port")
    parser.add_argument("--max-message-size", type=int, default=None, help="bytes (default 16 MiB)")
    args = parser.parse_args()

    with chatws.Server(args.host, args.port, max_message_size=args.max_message_size) as server:

        @server.on_message
        def echo(conn: chatws.Connection, message: chatws.Message) -> None:
            conn.send(message)

        signal.signal(signal.SIGTERM, lambda signum, frame: server.stop(wait=False))
        print(f"listening on {server.url}", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
