"""The chatws Python package as a benchmark server (the Python-package comparison).

    python chatws_server.py --mode echo|broadcast --port N [--max-message-size B]

Handlers are plain Python functions, as a Python host would write them; the
loop runs on the library's background thread.
"""
import signal
import threading

import chatws

from peer_args import parse_args


def main() -> None:
    args = parse_args("chatws_server.py")
    server = chatws.Server("127.0.0.1", args.port, max_message_size=args.max_message_size)

    if args.mode == "echo":
        @server.on_message
        def echo(conn, message):
            conn.send(message)
    else:
        @server.on_message
        def relay(conn, message):
            server.broadcast(message)

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    server.start()
    print(f"chatws (Python) {args.mode} server on 127.0.0.1:{server.port}", flush=True)
    while not stop.wait(0.5):
        pass
    server.stop()
    server.close()


if __name__ == "__main__":
    main()
