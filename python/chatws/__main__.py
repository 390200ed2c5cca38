"""``python -m chatws``: the chat server with its browser page.

Serves the chat page over HTTP and the chat over WebSocket on the same port
(subprotocols "chatws.v1" and the classic "json"; rooms at /rooms/<name>).
With --tls-cert and --tls-key the port speaks TLS (https:// and wss://), and
SIGHUP reloads the certificate and key (e.g. after certbot renewed them).
Ctrl-C or SIGTERM stops it gracefully.
"""

from __future__ import annotations

import argparse
import logging
import math
import signal
import sys
from pathlib import Path
from typing import List, Optional

from . import __version__
from ._errors import Error
from ._resources import bundled_web_dir
from ._connection import Connection
from ._server import Server

__all__ = ["main", "build_parser"]


# argparse names a bad value by its type function's __name__ ("argument
# --port: invalid port value: 'x'"), hence the names given below.
def _seconds(text: str) -> float:
    """A timeout argument: seconds, or 'off' to disable."""
    if text.lower() in ("off", "none", "inf"):
        return math.inf
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be seconds > 0 or 'off', not {text!r}")
    return value


def _send_buffer(text: str) -> object:
    if text == "auto":
        return "auto"
    value = int(text)
    if not 0 < value < 2**31:
        raise argparse.ArgumentTypeError(f"must be a positive number of bytes or 'auto', not {text!r}")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text!r}")
    return value


def _threads(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 256:
        raise argparse.ArgumentTypeError(f"must be an integer 0..256 (0: one per core), not {text!r}")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be 0..65535, not {text!r}")
    return value


def _prefix_bits(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 128:
        raise argparse.ArgumentTypeError(f"must be 1..128, not {text!r}")
    return value


_seconds.__name__ = "seconds"
_positive.__name__ = "positive integer"
_port.__name__ = "port"
_prefix_bits.__name__ = "prefix length"

# The close a WebSocket client without a chat subprotocol gets (a plain
# terminal client): it is told what to offer rather than ignored.
NO_SUBPROTOCOL_REASON = "no subprotocol: this chat server speaks chatws.v1 or json"


def _rate(text: str) -> float:
    """A rate argument: a positive int, or 'off' for no limit."""
    if text.lower() in ("off", "none", "inf"):
        return math.inf
    return _positive(text)


_rate.__name__ = "rate"


def build_parser() -> argparse.ArgumentParser:
    """The command line; every option's help ends with its default."""
    p = argparse.ArgumentParser(
        prog="python -m chatws",
        description="Run the chatws chat server: the browser chat page over HTTP and the "
        "chat over WebSocket (subprotocols chatws.v1 and json; rooms at /rooms/NAME), on one port. "
        "Sizes are in bytes, timeouts in seconds. Installed as the `chatws` command too.",
    )
    p.add_argument("--version", action="version", version=f"chatws {__version__}")
    p.add_argument("--host", default="127.0.0.1", help="address to bind, 0.0.0.0 or :: for all (default: 127.0.0.1)")
    p.add_argument("--port", type=_port, default=8080, help="TCP port; 0 picks a free one (default: 8080)")
    static = p.add_mutually_exclusive_group()
    static.add_argument("--static-dir", type=Path, help="directory to serve over HTTP (default: the bundled chat page)")
    static.add_argument("--no-static", action="store_true", help="serve no files, WebSocket only (default: off)")
    p.add_argument("--history", metavar="PATH", help="SQLite file for durable chat history (default: in memory)")
    p.add_argument("--history-size", type=_positive, help="messages kept per room (default: 50)")
    p.add_argument("--redis", metavar="URL",
                   help="cluster mode: share rooms, order and history with every server on this Redis, "
                        "redis://[:password@]host[:port][/db] (default: off, one node)")
    p.add_argument("--node-name", metavar="NAME", help="this node's name in the cluster (default: <hostname>:<pid>)")
    p.add_argument("--cluster-retention", type=_positive, metavar="N",
                   help="entries kept per room stream in Redis, the since recovery window "
                        "(default: max(history size, 1000))")
    p.add_argument("--max-connections", type=_positive, help="open connections; beyond: HTTP 503 (default: 100000)")
    p.add_argument("--max-connections-per-ip", type=_positive,
                   help="per client address, IPv6 clients per network prefix; beyond: HTTP 503 (default: unlimited)")
    p.add_argument("--ipv6-prefix-length", type=_prefix_bits, metavar="BITS",
                   help="IPv6 clients count against --max-connections-per-ip by this prefix (default: 64)")
    p.add_argument("--max-message-size", type=_positive, help="bytes per WebSocket message (default: 16 MiB)")
    p.add_argument("--max-output-buffer", type=_positive, help="queued bytes per connection (default: 1 MiB)")
    p.add_argument("--socket-send-buffer", type=_send_buffer, metavar="BYTES|auto",
                   help="SO_SNDBUF per connection (bounds what a client that never reads holds in the "
                   "kernel); 'auto': the kernel's autotuning (default: 96 KiB)")
    p.add_argument("--max-buffered-input", type=_positive,
                   help="bytes of unfinished messages held for all clients together (default: 4 x max message size)")
    p.add_argument("--max-user-length", type=_positive, help="characters in a user name (default: 64)")
    p.add_argument("--max-text-length", type=_positive, help="characters in a message (default: 4096)")
    p.add_argument("--max-rooms", type=_positive, help="chat rooms at once; new ones beyond get 503 (default: 10000)")
    p.add_argument("--max-idle-room-bytes", type=_positive,
                   help="memory for rooms nobody is in, least recently used dropped beyond it (default: 64 MiB)")
    p.add_argument("--max-messages-per-second", type=_rate,
                   help="chat messages per connection per second; more get an error frame "
                   "(default: 20; 'off': no limit)")
    p.add_argument("--message-burst", type=_positive,
                   help="chat messages a connection may send at once (default: 40)")
    p.add_argument("--auth-secret", type=Path, metavar="FILE",
                   help="admit only upgrades with a token HMAC-SHA256(secret, '<user>.<expiry>') "
                   "(?token= or the chatws_token cookie) and post as <user>; see 'python -m chatws token' (default: off)")
    p.add_argument("--allowed-origin", action="append", metavar="ORIGIN",
                   help="accept WebSocket handshakes only from this Origin, others get 403; repeatable (default: any)")
    p.add_argument("--slow-consumer", choices=("close", "drop"), default="close",
                   help="a client past --max-output-buffer: close it (1008) or drop its messages (default: close)")
    p.add_argument("--compression", choices=("shared", "dedicated", "off"), default="shared",
                   help="permessage-deflate: shared (one deflate per broadcast frame, no zlib state "
                        "per connection), dedicated (a window per connection) or off (default: shared)")
    p.add_argument("--compression-threshold", type=_positive, metavar="BYTES",
                   help="messages below this many bytes go out uncompressed (default: 128)")
    p.add_argument("--threads", type=_threads, default=1, metavar="N",
                   help="event loops, one thread each; 0: one per core (default: 1)")
    p.add_argument("--accept-mode", choices=("reuseport", "handoff"), default="reuseport",
                   help="with --threads > 1: every loop listens and the kernel picks one (reuseport), "
                        "or loop 0 hands each connection to the loop with the fewest (handoff) "
                        "(default: reuseport)")
    p.add_argument("--handshake-timeout", type=_seconds, help="the HTTP request must arrive within (408) (default: 10)")
    p.add_argument("--idle-timeout", type=_seconds, help="seconds without traffic before a ping, or 'off' (default: 60)")
    p.add_argument("--close-timeout", type=_seconds, help="seconds to wait for a client's close reply, or 'off' (default: 5)")
    p.add_argument("--drain-timeout", type=_seconds, help="seconds a graceful stop waits for clients, or 'off' (default: 5)")
    tls = p.add_argument_group("TLS (https:// and wss:// on the same port)")
    tls.add_argument("--tls-cert", metavar="FILE", help="PEM certificate chain (leaf first); turns TLS on (default: none, plain)")
    tls.add_argument("--tls-key", metavar="FILE", help="PEM private key of the certificate (default: none)")
    tls.add_argument("--tls-key-passphrase", metavar="SOURCE",
                     help="where the key's passphrase is: pass:TEXT, env:VARIABLE or file:PATH (default: none)")
    tls.add_argument("--tls-min-version", choices=("1.2", "1.3"), default="1.2",
                     help="oldest TLS version accepted (default: 1.2)")
    tls.add_argument("--tls-ciphers", metavar="LIST",
                     help="TLS 1.2 cipher list, OpenSSL syntax (default: ECDHE with AES-GCM or ChaCha20)")
    tls.add_argument("--tls-ciphersuites", metavar="LIST",
                     help="TLS 1.3 cipher suites (default: AES-128-GCM, AES-256-GCM, ChaCha20)")
    tls.add_argument("--no-tls-session-tickets", action="store_true",
                     help="turn session resumption by ticket off (default: tickets on)")
    p.add_argument("--metrics-port", type=_port, metavar="N",
                   help="serve /metrics, /healthz and /readyz on --metrics-host:N, 0 picks a free one (default: off)")
    p.add_argument("--metrics-host", default="127.0.0.1", help="address of the metrics listener (default: 127.0.0.1)")
    p.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                   help="least important log lines shown (default: INFO)")
    return p


def _token_main(argv: List[str]) -> int:
    """``python -m chatws token --auth-secret FILE --user NAME --ttl SECONDS``"""
    from ._token import load_secret, make_token

    p = argparse.ArgumentParser(prog="python -m chatws token",
                                description="Print a token for a server run with --auth-secret.")
    p.add_argument("--auth-secret", type=Path, required=True, metavar="FILE")
    p.add_argument("--user", required=True)
    p.add_argument("--ttl", type=_positive, default=3600, help="seconds the token is valid (default 3600)")
    args = p.parse_args(argv)
    try:
        print(make_token(load_secret(args.auth_secret), args.user, args.ttl))
    except (OSError, ValueError) as exc:
        print(f"chatws token: {exc}", file=sys.stderr)
        return 2
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["token"]:
        return _token_main(argv[1:])
    args = build_parser().parse_args(argv)  # a bad command line exits 2, naming the option
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("chatws")

    parser = build_parser()
    if (args.tls_cert is None) != (args.tls_key is None):
        parser.error("--tls-cert and --tls-key go together")  # exits 2
    if args.redis is not None and args.history is not None:
        parser.error("--redis and --history exclude each other: the cluster's history is in Redis")

    static_dir: Optional[Path] = None
    if not args.no_static:
        static_dir = args.static_dir if args.static_dir is not None else bundled_web_dir()
        if static_dir is None:
            log.warning("no chat page is bundled with this installation: serving WebSocket only")
        elif not static_dir.is_dir():
            log.error("--static-dir %s is not a directory", static_dir)
            return 2

    try:
        server = Server(
            args.host,
            args.port,
            chat=True,
            static_dir=static_dir,
            history_path=args.history,
            history_size=args.history_size,
            cluster_url=args.redis,
            node_name=args.node_name,
            cluster_retention=args.cluster_retention,
            max_connections=args.max_connections,
            max_connections_per_ip=args.max_connections_per_ip,
            ipv6_prefix_length=args.ipv6_prefix_length,
            max_buffered_input=args.max_buffered_input,
            max_message_size=args.max_message_size,
            max_output_buffer=args.max_output_buffer,
            socket_send_buffer=args.socket_send_buffer,
            max_user_length=args.max_user_length,
            max_text_length=args.max_text_length,
            max_rooms=args.max_rooms,
            max_idle_room_bytes=args.max_idle_room_bytes,
            max_messages_per_second=args.max_messages_per_second,
            message_burst=args.message_burst,
            allowed_origins=args.allowed_origin,
            slow_consumer_policy=args.slow_consumer,
            compression=args.compression,
            compression_threshold=args.compression_threshold,
            threads=args.threads,
            accept_mode=args.accept_mode,
            handshake_timeout=args.handshake_timeout,
            idle_timeout=args.idle_timeout,
            close_timeout=args.close_timeout,
            drain_timeout=args.drain_timeout,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            tls_key_passphrase=args.tls_key_passphrase,
            tls_min_version=args.tls_min_version,
            tls_ciphers=args.tls_ciphers,
            tls_ciphersuites=args.tls_ciphersuites,
            tls_session_tickets=not args.no_tls_session_tickets,
            metrics_host=args.metrics_host if args.metrics_port is not None else None,
            metrics_port=args.metrics_port,
        )
    except Error as exc:
        log.error("cannot start the server: %s", exc)
        return 1
    if args.auth_secret is not None:
        from ._token import load_secret, token_hook

        try:
            server.on_upgrade = token_hook(load_secret(args.auth_secret))
        except (OSError, ValueError) as exc:
            server.close()
            log.error("--auth-secret: %s", exc)
            return 2

    @server.on_open
    def tell_plain_clients(conn: Connection) -> None:
        # Only the chat subprotocols are offered, so a connection without
        # one is a client that offered none: close it with the reason
        # (1008) instead of ignoring what it sends.
        if not conn.subprotocol:
            conn.close(1008, NO_SUBPROTOCOL_REASON)

    with server:
        # SIGTERM: graceful stop (close 1001 to every client, flush history);
        # the handler runs on this thread between two loop slices.
        signal.signal(signal.SIGTERM, lambda signum, frame: server.stop(wait=False))
        if server.tls:
            # SIGHUP: read the certificate and key files again (renewal).
            def reload(signum: int, frame: object) -> None:
                try:
                    server.reload_tls()
                    log.info("TLS certificate reloaded from %s", args.tls_cert)
                except Error as exc:
                    log.error("TLS reload failed, keeping the certificate in use: %s", exc)

            signal.signal(signal.SIGHUP, reload)
        where = server.http_url if static_dir is not None else server.url
        # One line (readers wait for it): the metrics URL, if any, at its end.
        metrics = f", metrics on http://{args.metrics_host}:{server.metrics_port}/metrics" \
            if server.metrics_port is not None else ""
        print(f"chatws {__version__}: chat server running, open {where} (WebSocket {server.url}){metrics}",
              flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            print("chatws: interrupted, closing", file=sys.stderr, flush=True)
    print("chatws: stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
