"""chatws: an embeddable real-time WebSocket chat engine (libchatws) for Python.

::

    import chatws

    with chatws.Server(port=8080) as server:
        @server.on_message
        def echo(conn, message):
            conn.send(message)

        server.serve_forever()

See :class:`Server` (threads), :func:`serve` (asyncio) and ``python -m chatws``
(the chat server with its browser page).
"""

from __future__ import annotations

from . import _native
from ._access import Accept, Headers, Reject, UpgradeRequest, UpgradeVerdict
from ._asyncio import AsyncServer, serve
from ._connection import ChatMessage, Connection, Message
from ._errors import (
    ConnectionClosed,
    Error,
    InternalError,
    InvalidArgument,
    InvalidState,
    MessageTooBig,
    OutOfMemory,
    QueueFull,
    ServerStopped,
    StorageError,
    SystemCallError,
    WrongThread,
)
from ._options import CHAT_SUBPROTOCOLS
from ._resources import bundled_web_dir
from ._server import ChatVerdict, Server
from ._stats import Histogram, ServerStats

try:
    from ._version import __version__
except ImportError:  # pragma: no cover - a build always generates _version.py
    __version__ = _native.HEADER_VERSION

# The wheel's metadata version, the header the extension was compiled with
# and the library linked in must all agree.
if _native.version() != __version__ or _native.HEADER_VERSION != __version__:
    raise ImportError(
        f"chatws {__version__} was built against libchatws {_native.HEADER_VERSION} "
        f"but links libchatws {_native.version()}; rebuild the package"
    )

# Close codes (RFC 6455 section 7.4.1), as in chatws.h.
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_UNSUPPORTED = 1003
CLOSE_NO_STATUS = 1005
CLOSE_ABNORMAL = 1006
CLOSE_INVALID_DATA = 1007
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL_ERROR = 1011
CLOSE_TRY_AGAIN = 1013

__all__ = [
    "__version__",
    "Server",
    "ServerStats",
    "Histogram",
    "AsyncServer",
    "serve",
    "Connection",
    "ChatMessage",
    "ChatVerdict",
    "Accept",
    "Reject",
    "UpgradeRequest",
    "UpgradeVerdict",
    "Headers",
    "Message",
    "CHAT_SUBPROTOCOLS",
    "bundled_web_dir",
    "Error",
    "InvalidArgument",
    "OutOfMemory",
    "ConnectionClosed",
    "WrongThread",
    "InvalidState",
    "SystemCallError",
    "MessageTooBig",
    "QueueFull",
    "ServerStopped",
    "StorageError",
    "InternalError",
    "CLOSE_NORMAL",
    "CLOSE_GOING_AWAY",
    "CLOSE_PROTOCOL_ERROR",
    "CLOSE_UNSUPPORTED",
    "CLOSE_NO_STATUS",
    "CLOSE_ABNORMAL",
    "CLOSE_INVALID_DATA",
    "CLOSE_POLICY",
    "CLOSE_TOO_BIG",
    "CLOSE_INTERNAL_ERROR",
    "CLOSE_TRY_AGAIN",
]
