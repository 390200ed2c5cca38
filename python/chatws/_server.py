"""Server: a libchatws server driven from Python.

Threads: the loop runs on one thread at a time -- the one in serve_forever(),
the background thread of start(), or the asyncio loop (chatws.serve()) --
and every handler runs there. The GIL is released while the loop waits and
does socket I/O, and taken only to call handlers. send(), broadcast(),
close() and stop() may be called from any thread.
"""

from __future__ import annotations

import inspect
import logging
import os
import threading
import time
import weakref
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    List,
    Optional,
    Tuple,
    Union,
)

from . import _native
from ._connection import ChatMessage, Connection, Message
from ._errors import InvalidState, ServerStopped
from ._access import UpgradeRequest, UpgradeVerdict, _dispatch_upgrade, _FAILED
from ._dispatch import (
    _dispatch_chat,
    _dispatch_close,
    _dispatch_drain,
    _dispatch_log,
    _dispatch_message,
    _dispatch_open,
)
from ._handlers import HandlerSlot, bind_overrides
from ._options import build_options
from ._stats import ServerStats

__all__ = [
    "Server",
    "OpenHandler",
    "MessageHandler",
    "CloseHandler",
    "DrainHandler",
    "ErrorHandler",
    "ChatHandler",
    "ChatVerdict",
    "UpgradeHandler",
    "UpgradeVerdict",
]

logger = logging.getLogger("chatws")

OpenHandler = Callable[[Connection], Any]
MessageHandler = Callable[[Connection, Message], Any]
CloseHandler = Callable[[Connection, int, str], Any]
DrainHandler = Callable[[Connection], Any]
ErrorHandler = Callable[[BaseException, Optional[Connection]], Any]
#: What an on_chat hook returns: None or True (accept), False (reject), a
#: str (accept with this text), a ChatMessage or a (user, text) tuple
#: (accept rewritten).
ChatVerdict = Union[None, bool, str, ChatMessage, Tuple[str, str]]
ChatHandler = Callable[[Optional[Connection], ChatMessage], ChatVerdict]
UpgradeHandler = Callable[[UpgradeRequest], Any]


class _UpgradeSlot(HandlerSlot[UpgradeHandler]):
    """on_upgrade also tells the native layer whether to call Python at all
    (no hook: upgrades are accepted without taking the GIL)."""

    def __set__(self, obj: Any, handler: Optional[UpgradeHandler]) -> None:
        super().__set__(obj, handler)
        native = obj.__dict__.get("_native")
        if native is not None and not native.closed:
            native.set_upgrade_enabled(handler is not None)

# The loop waits at most this long between checks for Python signals, so
# Ctrl-C interrupts serve_forever() within about this time.
_SLICE_MS = 100
# Extra time allowed beyond the drain timeout for a stopping loop to return.
_STOP_MARGIN_S = 5.0
_DEFAULT_DRAIN_S = 5.0

PathArg = Union[str, "os.PathLike[str]", None]


class _Runner:
    """What the finalizer needs to shut a forgotten server down: the native
    server and the background thread, without a reference to the Server."""

    __slots__ = ("native", "thread", "wait_s")

    def __init__(self, native: _native.Server, wait_s: Optional[float]) -> None:
        self.native = native
        self.thread: Optional[threading.Thread] = None
        self.wait_s = wait_s

    def shutdown(self) -> None:
        native = self.native
        if native.closed:
            return
        if native.running():
            # Only reachable at interpreter exit (a running loop keeps its
            # Server alive): stop the daemon thread before freeing.
            try:
                native.stop()
            except Exception:  # pragma: no cover - best effort at exit
                pass
            thread = self.thread
            if thread is not None and thread is not threading.current_thread():
                thread.join(self.wait_s)
            if native.running():
                return
        native.close()


class Server:
    """A WebSocket (and static HTTP) server on ``host``:``port``.

    The socket is bound when the object is created (``port=0`` picks a free
    port: see :attr:`port`). Run it with :meth:`serve_forever` (blocking),
    :meth:`start` (background thread) or ``async with chatws.serve(...)``.

    Handlers (each optional), set by decorator, attribute or keyword::

        server = chatws.Server(port=0)

        @server.on_message
        def echo(conn, message):        # str for text, bytes for binary
            conn.send(message)

    - ``on_open(conn)``: a WebSocket handshake completed.
    - ``on_message(conn, message)``: a complete message arrived.
    - ``on_close(conn, code, reason)``: the connection is gone (also for
      connections still open when the server is closed).
    - ``on_drain(conn)``: a slow reader's output queue has been written out.
    - ``on_error(exc, conn)``: a handler raised ``exc`` (already logged to the
      "chatws" logger); the server and the other connections carry on.
    - ``on_chat(conn, msg)``: chat mode moderation; see :class:`ChatMessage`
      and ``ChatVerdict``. An exception rejects the message.
    - ``on_upgrade(request)``: who may connect, as whom; see
      :class:`chatws.UpgradeRequest`, :class:`chatws.Accept`,
      :class:`chatws.Reject`. An exception rejects with 500.

    A handler may return a coroutine only in asyncio mode (chatws.serve()),
    where it runs as a task on the event loop (with ``threads`` > 1 too).

    Sizes are bytes; timeouts are seconds (``None``: the library default,
    ``math.inf``: disabled, no deadline). ``close_timeout`` is the wait for a
    peer's reply to our close frame (below 0.1 s it means 0.1 s; ``math.inf``:
    a peer that never answers stays until it closes TCP or the server stops);
    ``drain_timeout`` bounds a graceful stop (``math.inf``: the stop, and
    :meth:`stop` with ``wait``, last until every client has closed). Defaults: max_request_size 8 KiB,
    max_message_size 16 MiB, max_output_buffer 1 MiB, max_connections
    100000, max_connections_per_ip unlimited (IPv6 peers counted by their
    /``ipv6_prefix_length`` network, 64), max_buffered_input 4 x
    max_message_size (partial messages of all connections together; a frame
    over it closes its connection with 1013), handshake_timeout 10,
    idle_timeout 60, close_timeout 5, drain_timeout 5, history_size 50,
    max_rooms 10000, max_idle_room_bytes 64 MiB (see chatws.h). A new chat
    room beyond max_rooms is refused (HTTP 503 at the upgrade;
    :meth:`post_chat` raises ``QueueFull``). Flood control:
    ``max_messages_per_second`` per connection (default: 20 for chat
    connections with ``message_burst`` 40, none for raw ones; ``math.inf``:
    none): a chat message over it is refused with an error frame "rate
    limited"; a raw connection is closed with 1008, or with
    ``rate_limit_policy="drop"`` its excess messages are dropped.
    ``max_handshakes_per_second_per_ip`` (default: none): upgrades beyond it
    from one address get 429 with Retry-After. ``compression``
    (permessage-deflate, negotiated with clients that offer it): "shared"
    (default; a broadcast or chat frame is deflated once for every receiver,
    no zlib state per connection), "dedicated" (a window per connection:
    better ratios, more memory) or "off"; ``compression_threshold`` (default
    128): smaller messages go out uncompressed; ``compression_window_bits``
    (9..15, default 15) and ``compression_mem_level`` (1..9, default 8) size
    the deflate streams.

    Several event loops (``threads=N``, 2..256; 0: one per core; default
    1): the server runs N loops, each on a thread of the library's own with
    its own connections, all on the same port. ``accept_mode``: how new
    connections reach the loops: ``"reuseport"`` (default; every loop
    listens and the kernel picks one by a hash of the connection's
    addresses) or ``"handoff"`` (loop 0 accepts them all and hands each to
    the loop with the fewest connections, which evens the loops out when
    connections leave unevenly). :meth:`serve_forever` and :meth:`start` run
    them all; handlers run on the loop thread of their connection, with the
    GIL taken for each call (released while the loops wait or do I/O), so
    handlers of connections on different loops take turns at the GIL but
    the loops' I/O, framing and fan-out run in parallel. Broadcasts and chat
    rooms span every loop (a room's members get its messages in one order).
    In asyncio mode (``chatws.serve(threads=N)``) the loops run the same
    way and a coroutine a handler returns runs as a task on the event loop.
    :meth:`poll` and :meth:`fileno` need ``threads=1`` and raise
    ``InvalidState`` otherwise; so does ``cluster_url`` (``InvalidArgument``).

    Cluster mode (``cluster_url="redis://127.0.0.1:6379/0"``, with
    ``chat=True``; docs/cluster.md): servers that name the same Redis share
    their chat rooms. Each message is stored in its room's Redis Stream
    (one round trip per loop iteration) and delivered on every node only
    once stored, in one order everywhere; chatws.v1 ids are the stream
    positions. Redis must answer when the server is created (``Storage``
    error naming the URL otherwise); while it is down later, senders get
    "storage unavailable" and the server reconnects by itself.
    ``node_name`` (default ``<hostname>:<pid>``) names this node in the
    appends; ``cluster_retention`` (default: the larger of history_size and
    1000) is how many entries each room's stream keeps, and how far back a
    chatws.v1 client reconnecting with ``?since=<id>`` is given exactly what
    it missed (further back: a reset). :meth:`post_chat`
    is asynchronous in this mode.
    """

    on_open = HandlerSlot[OpenHandler]("on_open(conn): a WebSocket handshake completed.")
    on_message = HandlerSlot[MessageHandler]("on_message(conn, message): str (text) or bytes (binary).")
    on_close = HandlerSlot[CloseHandler]("on_close(conn, code, reason): the connection is gone.")
    on_drain = HandlerSlot[DrainHandler]("on_drain(conn): the output queue was written out.")
    on_error = HandlerSlot[ErrorHandler]("on_error(exc, conn): a handler raised exc.")
    on_chat = HandlerSlot[ChatHandler]("on_chat(conn, msg) -> verdict: chat moderation hook.")
    on_upgrade = _UpgradeSlot("on_upgrade(request) -> verdict: who may connect, as whom.")

    _h_open: Optional[OpenHandler] = None
    _h_message: Optional[MessageHandler] = None
    _h_close: Optional[CloseHandler] = None
    _h_drain: Optional[DrainHandler] = None
    _h_error: Optional[ErrorHandler] = None
    _h_chat: Optional[ChatHandler] = None
    _h_upgrade: Optional[UpgradeHandler] = None

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8080,
        *,
        static_dir: PathArg = None,
        subprotocols: Union[str, Iterable[str], None] = None,
        allowed_origins: Union[str, Iterable[str], None] = None,
        websocket_path_prefix: Optional[str] = None,
        max_request_size: Optional[int] = None,
        max_message_size: Optional[int] = None,
        max_fragments: Optional[int] = None,
        max_output_buffer: Optional[int] = None,
        max_connections: Optional[int] = None,
        max_connections_per_ip: Optional[int] = None,
        ipv6_prefix_length: Optional[int] = None,
        max_buffered_input: Optional[int] = None,
        socket_send_buffer: Union[int, str, None] = None,
        slow_consumer_policy: str = "close",
        handshake_timeout: Optional[float] = None,
        idle_timeout: Optional[float] = None,
        close_timeout: Optional[float] = None,
        drain_timeout: Optional[float] = None,
        chat: bool = False,
        history_path: PathArg = None,
        history_size: Optional[int] = None,
        max_user_length: Optional[int] = None,
        max_text_length: Optional[int] = None,
        max_rooms: Optional[int] = None,
        max_idle_room_bytes: Optional[int] = None,
        tls_cert: PathArg = None,
        tls_key: PathArg = None,
        tls_key_passphrase: Optional[str] = None,
        tls_min_version: str = "1.2",
        tls_ciphers: Optional[str] = None,
        tls_ciphersuites: Optional[str] = None,
        tls_session_tickets: bool = True,
        metrics_host: Optional[str] = None,
        metrics_port: Optional[int] = None,
        max_messages_per_second: Optional[float] = None,
        message_burst: Optional[int] = None,
        rate_limit_policy: str = "close",
        max_handshakes_per_second_per_ip: Optional[int] = None,
        cluster_url: Optional[str] = None,
        node_name: Optional[str] = None,
        cluster_retention: Optional[int] = None,
        compression: str = "shared",
        compression_threshold: Optional[int] = None,
        compression_window_bits: Optional[int] = None,
        compression_mem_level: Optional[int] = None,
        threads: int = 1,
        accept_mode: str = "reuseport",
        on_open: Optional[OpenHandler] = None,
        on_message: Optional[MessageHandler] = None,
        on_close: Optional[CloseHandler] = None,
        on_drain: Optional[DrainHandler] = None,
        on_error: Optional[ErrorHandler] = None,
        on_chat: Optional[ChatHandler] = None,
        on_upgrade: Optional[UpgradeHandler] = None,
    ) -> None:
        # Every keyword but the handlers is an option: the signature above is
        # their one list (build_options takes exactly these names).
        given = {k: v for k, v in locals().items() if k != "self" and not k.startswith("on_")}
        for name, handler in (
            ("on_open", on_open),
            ("on_message", on_message),
            ("on_close", on_close),
            ("on_drain", on_drain),
            ("on_error", on_error),
            ("on_chat", on_chat),
            ("on_upgrade", on_upgrade),
        ):
            if handler is not None:
                setattr(self, name, handler)
        bind_overrides(self, Server)

        options = build_options(**given)
        self._host = host
        self._tls = tls_cert is not None
        self._chat = bool(chat)
        self._threads = threads
        self._conns: Dict[int, Connection] = {}
        # chatws.Accept(user_data=...) by request id, until its on_open
        # (the same id): (when kept, the object).
        self._upgrade_data: Dict[int, Tuple[float, Any]] = {}
        self._lock = threading.Lock()
        self._loop_active = False
        self._loop_done = threading.Event()
        self._loop_done.set()
        self._close_after_loop = False
        # How long stop()/close() wait for the loop: the drain plus a margin;
        # without limit when the drain has none (math.inf: the engine waits
        # for every client's close, chatws.h drain_timeout_ms = -1).
        self._stop_wait_s: Optional[float] = None
        if drain_timeout != float("inf"):
            drain_s = _DEFAULT_DRAIN_S if drain_timeout is None else drain_timeout
            self._stop_wait_s = drain_s + _STOP_MARGIN_S
        # The native server holds module-level dispatch functions and a weak
        # reference to self: no cycle through the extension object.
        self._native = _native.Server(
            options,
            weakref.ref(self),
            _dispatch_open,
            _dispatch_message,
            _dispatch_close,
            _dispatch_drain,
            _dispatch_chat,
            _dispatch_log,
            _dispatch_upgrade,
        )
        self._native.set_upgrade_enabled(self._h_upgrade is not None)
        self._port = self._native.port
        self._runner = _Runner(self._native, self._stop_wait_s)
        self._finalizer = weakref.finalize(self, self._runner.shutdown)

    # ------------------------------------------------------------ properties

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        """The port listened on (the real one when 0 was asked)."""
        return self._port

    @property
    def url(self) -> str:
        """``ws://host:port/`` (``wss://`` with TLS) for clients on this
        machine (a wildcard host such as 0.0.0.0 is shown as the loopback
        address)."""
        return f"{'wss' if self._tls else 'ws'}://{self._netloc()}/"

    @property
    def http_url(self) -> str:
        """``http://host:port/`` (``https://`` with TLS): where the static
        files (the chat page) are."""
        return f"{'https' if self._tls else 'http'}://{self._netloc()}/"

    @property
    def tls(self) -> bool:
        """True if the port speaks TLS (tls_cert and tls_key were given)."""
        return self._tls

    def reload_tls(self, cert: PathArg = None, key: PathArg = None,
                   passphrase: Optional[str] = None) -> None:
        """Load a new certificate and key for the connections that start
        from now on; open connections keep theirs. With no arguments the
        files in use are read again (a renewal replaced them in place). Any
        thread. A pair that does not load raises InvalidArgument with the
        file and OpenSSL's reason, and the pair in use stays; a server
        without TLS raises InvalidState."""
        self._check_open()
        self._native.reload_tls(
            None if cert is None else os.fspath(cert),
            None if key is None else os.fspath(key),
            passphrase,
        )

    def _netloc(self) -> str:
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self._host, self._host)
        if ":" in host:
            host = f"[{host}]"
        return f"{host}:{self.port}"

    def stats(self) -> ServerStats:
        """The engine's counters and gauges, a consistent snapshot as of the
        end of the loop's last iteration. Any thread."""
        self._check_open()
        return ServerStats._from_native(self._native.stats())

    @property
    def metrics_port(self) -> Optional[int]:
        """The port of the metrics listener (``/metrics``, ``/healthz``,
        ``/readyz``), or None if there is none (metrics_host/metrics_port
        not given, or the server stopped)."""
        return None if self._native.closed else self._native.metrics_port()

    @property
    def connections(self) -> List[Connection]:
        """The open WebSocket connections (a snapshot, oldest first)."""
        return list(self._conns.values())

    def connection(self, conn_id: int) -> Optional[Connection]:
        """The open connection with this id, or None."""
        return self._conns.get(conn_id)

    @property
    def closed(self) -> bool:
        """True once close() freed the server."""
        return self._native.closed

    @property
    def stopped(self) -> bool:
        """True once a stop has completed (or the server is closed)."""
        return self._native.stopped()

    @property
    def running(self) -> bool:
        """True while some thread runs the loop."""
        return self._loop_active

    def fileno(self) -> int:
        """A file descriptor that becomes readable when :meth:`poll` has work
        (for hosts with their own event loop: select, selectors, ...).
        ``InvalidState`` with ``threads`` other than 1."""
        self._check_open()
        self._check_one_loop("fileno()")
        return self._native.fd

    @property
    def threads(self) -> int:
        """The ``threads`` option (event loops; 0: one per core)."""
        return self._threads

    def _check_one_loop(self, what: str) -> None:
        if self._threads != 1:
            raise InvalidState(f"{what} needs threads=1: with threads={self._threads} each loop runs "
                               "on its own thread (use serve_forever(), start() or chatws.serve())")

    # ------------------------------------------------------------ messaging

    def broadcast(self, message: Union[str, bytes, bytearray, memoryview],
                  exclude: Union[Connection, int, None] = None) -> None:
        """Send ``message`` to every open WebSocket connection except
        ``exclude`` (a Connection or its id). The frame is encoded once for
        all. Any thread. Does nothing once the server is stopping."""
        exclude_id = 0 if exclude is None else (exclude.id if isinstance(exclude, Connection) else int(exclude))
        try:
            self._native.broadcast(message, exclude_id)
        except ServerStopped:
            pass  # nobody left to receive it

    def post_chat(self, user: str, text: str, room: str = "") -> None:
        """Chat mode: post a message from the host (e.g. a notice) to
        ``room`` as if a client had sent it: stored and broadcast. From the
        loop thread (a handler, or the asyncio loop), or while no loop runs."""
        self._native.chat_post(room, user, text)

    # ------------------------------------------------------------- the loop

    def serve_forever(self) -> None:
        """Run the loop on this thread until :meth:`stop` (from any thread,
        or a handler) has completed. The GIL is released while waiting; on
        the main thread Ctrl-C raises KeyboardInterrupt within ~0.1 s."""
        self._claim_loop()
        try:
            self._native.run(_SLICE_MS)
        finally:
            self._release_loop()

    def start(self) -> Server:
        """Run the loop on a background (daemon) thread; returns self."""
        self._start_thread(self._thread_main)
        return self

    def _start_thread(self, target: Callable[[], object]) -> None:
        """Claims the loop and runs ``target`` (which ends in
        :meth:`_thread_main`) on a daemon thread: start(), and asyncio
        mode with several loops."""
        self._claim_loop()
        thread = threading.Thread(target=target, name=f"chatws-{self.port}", daemon=True)
        self._runner.thread = thread
        try:
            thread.start()
        except BaseException:
            self._release_loop()
            raise

    def _thread_main(self) -> Optional[BaseException]:
        """The loop thread of start() (and of asyncio mode with several
        loops): the loop's failure, if it failed, is logged and returned."""
        try:
            self._native.run(_SLICE_MS)
            return None
        except BaseException as exc:
            logger.exception("chatws: the server loop failed; stopping the server")
            self._drain_after_failure()
            return exc
        finally:
            self._release_loop()

    def _drain_after_failure(self) -> None:
        # A failed loop leaves connections half-served: finish a graceful
        # stop, bounded, so that clients get their close frames.
        try:
            self._native.stop()
            wait_s = self._stop_wait_s if self._stop_wait_s is not None else _DEFAULT_DRAIN_S + _STOP_MARGIN_S
            for _ in range(int(wait_s * 1000 / _SLICE_MS) + 1):
                if self._native.poll(_SLICE_MS) is None:
                    break
        except BaseException:
            logger.exception("chatws: could not stop the server cleanly")

    def poll(self, timeout: float = 0.0) -> bool:
        """Run one loop iteration, waiting at most ``timeout`` seconds for
        events (for hosts with their own loop; see :meth:`fileno`). Returns
        False once the server has stopped. ``InvalidState`` with ``threads``
        other than 1."""
        self._check_open()
        self._check_one_loop("poll()")
        return self._native.poll(int(timeout * 1000)) is not None

    def stop(self, wait: bool = True) -> None:
        """Begin a graceful stop: stop accepting, send close 1001 to every
        client, wait up to drain_timeout for their replies, then the loop
        returns. Any thread; idempotent. With ``wait`` (and when not called
        from the loop thread itself) returns once the loop has returned."""
        native = self._native
        if native.closed:
            return
        native.stop()
        if wait and self._loop_active and not native.on_loop_thread():
            if threading.current_thread() is not self._runner.thread:
                self._wait_loop_done()

    def close(self) -> None:
        """Stop if running, close every connection that is still open (their
        on_close handlers run) and free the server and its port. Idempotent.
        From a handler, the server is closed once its loop returns."""
        native = self._native
        if native.closed:
            return
        if native.on_loop_thread():
            self._close_after_loop = True
            native.stop()
            return
        if self._loop_active:
            native.stop()
            self._wait_loop_done()
        thread = self._runner.thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(self._stop_wait_s)
        native.close()
        self._finalizer.detach()

    def _wait_loop_done(self) -> None:
        if not self._loop_done.wait(self._stop_wait_s):
            raise InvalidState(f"the server loop did not stop within {self._stop_wait_s or 0:.1f} s")

    def _claim_loop(self) -> None:
        with self._lock:
            self._check_open()
            if self._loop_active:
                raise InvalidState("the server loop is already running")
            self._loop_active = True
            self._loop_done.clear()

    def _release_loop(self) -> None:
        with self._lock:
            self._loop_active = False
            self._loop_done.set()
        if self._close_after_loop and not self._native.closed:
            self._close_after_loop = False
            self.close()

    def _check_open(self) -> None:
        if self._native.closed:
            raise ServerStopped("the server is closed")

    # ---------------------------------------------------- context manager

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else ("running" if self._loop_active else "idle")
        return f"<chatws.Server {self.url} {state} connections={len(self._conns)}>"

    # ----------------------------------------------------- error handling

    # An accepted upgrade opens within a loop iteration of its answer, or
    # never (its client left, or the answer was refused): what waits longer
    # than this is dropped, so that the map stays bounded.
    _USER_DATA_TTL = 60.0

    def _keep_user_data(self, request_id: int, data: Any) -> None:
        """Any thread (a resolve from a worker), under the GIL."""
        now = time.monotonic()
        for rid, (kept, _) in list(self._upgrade_data.items()):
            if now - kept > self._USER_DATA_TTL:
                self._upgrade_data.pop(rid, None)
        self._upgrade_data[request_id] = (now, data)

    def _report(self, exc: BaseException, conn: Optional[Connection], where: str) -> None:
        """A handler raised: log it, then tell on_error."""
        logger.error("chatws: %s handler raised %s: %s", where, type(exc).__name__, exc,
                     exc_info=(type(exc), exc, exc.__traceback__))
        hook = self._h_error
        if hook is None:
            return
        try:
            hook(exc, conn)
        except Exception:
            logger.exception("chatws: the on_error handler raised")

    def _pending_upgrade(self, request: UpgradeRequest, awaitable: Any) -> Any:
        """on_upgrade returned an awaitable: asyncio mode awaits it (see
        AsyncServer); here it is an error (a 500)."""
        if inspect.iscoroutine(awaitable):
            awaitable.close()
        self._report(
            TypeError("on_upgrade returned an awaitable: async hooks need asyncio mode "
                      "(chatws.serve()); return a concurrent.futures.Future instead"),
            None,
            "on_upgrade",
        )
        return _FAILED

    def _spawn(self, result: Any, conn: Optional[Connection], where: str) -> None:
        """A handler returned something; a coroutine needs asyncio mode."""
        if inspect.iscoroutine(result):
            result.close()
            self._report(
                TypeError(f"{where} returned a coroutine: async handlers need asyncio mode (chatws.serve())"),
                conn,
                where,
            )
