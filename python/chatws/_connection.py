"""Connection: a client connected to a Server over WebSocket."""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any, NamedTuple, Optional, Tuple, Union

from ._errors import ConnectionClosed

if TYPE_CHECKING:
    from . import _native
    from ._server import Server

__all__ = ["Connection", "ChatMessage", "Message"]

#: A WebSocket message: ``str`` for text, ``bytes`` for binary.
Message = Union[str, bytes]


class Connection:
    """One open WebSocket connection of a :class:`Server`.

    Created by the server when the handshake completes and handed to every
    handler. Its identity is its ``id`` (unique for the server's life, never
    reused): two Connection objects are equal when they name the same
    connection of the same server, and hash by id, so they can be kept in
    sets and dicts. Arbitrary attributes may be set on it to keep per-client
    state (``conn.user = "ann"``).

    After the connection has closed (``closed`` is true, ``on_close`` has run),
    ``send()`` raises :class:`ConnectionClosed`; ``close()`` is a no-op.

    ``send()`` and ``close()`` may be called from any thread.
    """

    # The native server is held, not the Python Server: a Connection kept by
    # the host never makes a reference cycle with its server.
    def __init__(
        self,
        native: _native.Server,
        server: Server,
        conn_id: int,
        remote_address: Tuple[str, int],
        path: str,
        subprotocol: str,
        identity: Optional[str] = None,
        query_string: str = "",
    ) -> None:
        self._native = native
        self._server_ref = weakref.ref(server)
        self.id: int = conn_id
        self.remote_address: Tuple[str, int] = remote_address
        self.path: str = path
        self.subprotocol: str = subprotocol
        #: The user name the upgrade hook bound (chatws.Accept(identity=...)),
        #: None if none: fixed for the connection's life.
        self.identity: Optional[str] = identity
        #: The upgrade request's query string, as sent ("" if none).
        self.query_string: str = query_string
        #: What the upgrade hook handed on (chatws.Accept(user_data=...)),
        #: None if nothing; the host's to change.
        self.user_data: Any = None
        self.closed: bool = False
        self.close_code: Optional[int] = None
        self.close_reason: Optional[str] = None

    @property
    def server(self) -> Optional[Server]:
        """The server this connection belongs to (None once it was freed)."""
        return self._server_ref()

    def send(self, message: Union[str, bytes, bytearray, memoryview]) -> bool:
        """Queue one message: ``str`` is sent as text, bytes-like as binary.

        Returns True, or False when the connection's output queue is now
        above its soft limit (a slow reader: consider waiting for the
        server's ``on_drain`` before sending more). Raises
        :class:`ConnectionClosed` once the connection has closed,
        :class:`MessageTooBig`, :class:`QueueFull` (slow consumer policy
        "drop") or :class:`ServerStopped`.
        """
        if self.closed:
            raise ConnectionClosed(
                f"connection {self.id} is closed (code {self.close_code})"
            )
        return self._native.send(self.id, message) == 0

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake with ``code`` and ``reason`` (at most
        123 UTF-8 bytes). ``on_close`` follows once the client answers or the
        close timeout passes. A no-op if the connection is already closed."""
        if self.closed:
            return
        try:
            self._native.close_connection(self.id, code, reason)
        except ConnectionClosed:
            pass  # closed meanwhile: closing it is done

    def _closed_with(self, code: int, reason: str) -> None:
        self.closed = True
        self.close_code = code
        self.close_reason = reason

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Connection):
            return NotImplemented
        return self.id == other.id and self._native is other._native

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        host, port = self.remote_address
        state = f" closed={self.close_code}" if self.closed else ""
        return f"<chatws.Connection id={self.id} from {host}:{port} path={self.path!r}{state}>"

    def __getstate__(self) -> Any:
        raise TypeError("a chatws.Connection cannot be pickled")


class ChatMessage(NamedTuple):
    """A chat message about to be stored and broadcast (the ``on_chat`` hook).

    Return a rewritten copy from the hook to change it, e.g.
    ``msg._replace(text=msg.text.strip())``; room and time cannot be changed.
    """

    room: str
    """The room ("" for the default room, "lobby" for /rooms/lobby)."""
    user: str
    text: str
    time_ms: int
    """Server time when the message was accepted, ms since the Unix epoch."""
