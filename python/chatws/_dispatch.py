"""The native layer's callbacks into a Server: chatws._native calls them on
the loop thread with the GIL held, as fn(server, ...). They never raise (an
escaping exception would only be reported as unraisable): handler failures
go to Server._report."""

from __future__ import annotations

import inspect
import logging
from typing import TYPE_CHECKING, Optional, Tuple, Union

from ._connection import ChatMessage, Connection, Message

if TYPE_CHECKING:  # only for annotations: _server imports this module
    from ._server import Server

logger = logging.getLogger("chatws")

def _dispatch_open(server: Server, conn_id: int, address: str, port: int, path: str,
                   subprotocol: str, identity: Optional[str] = None, query: str = "") -> None:
    conn = Connection(server._native, server, conn_id, (address, port), path, subprotocol,
                      identity, query)
    if server._upgrade_data:
        conn.user_data = server._upgrade_data.pop(conn_id, (0.0, None))[1]
    server._conns[conn_id] = conn
    handler = server._h_open
    if handler is None:
        return
    try:
        result = handler(conn)
    except Exception as exc:
        server._report(exc, conn, "on_open")
        return
    if result is not None:
        server._spawn(result, conn, "on_open")


def _dispatch_message(server: Server, conn_id: int, message: Message) -> None:
    # The per-message path: one dict lookup and the handler call.
    handler = server._h_message
    if handler is None:
        return
    conn = server._conns.get(conn_id)
    if conn is None:
        return
    try:
        result = handler(conn, message)
    except Exception as exc:
        server._report(exc, conn, "on_message")
        return
    if result is not None:
        server._spawn(result, conn, "on_message")


def _dispatch_close(server: Server, conn_id: int, code: int, reason: str) -> None:
    conn = server._conns.pop(conn_id, None)
    if conn is None:
        return
    conn._closed_with(code, reason)
    handler = server._h_close
    if handler is None:
        return
    try:
        result = handler(conn, code, reason)
    except Exception as exc:
        server._report(exc, conn, "on_close")
        return
    if result is not None:
        server._spawn(result, conn, "on_close")


def _dispatch_drain(server: Server, conn_id: int) -> None:
    handler = server._h_drain
    conn = server._conns.get(conn_id)
    if handler is None or conn is None:
        return
    try:
        result = handler(conn)
    except Exception as exc:
        server._report(exc, conn, "on_drain")
        return
    if result is not None:
        server._spawn(result, conn, "on_drain")


# CHATWS_LOG_* -> logging levels.
_LOG_LEVELS = (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR)


def _dispatch_log(server: Server, level: int, message: str) -> None:
    logger.log(_LOG_LEVELS[level] if 0 <= level < len(_LOG_LEVELS) else logging.ERROR, "%s", message)


def _dispatch_chat(server: Server, conn_id: int, room: str, user: str, text: str,
                   time_ms: int) -> Union[None, bool, Tuple[str, str]]:
    handler = server._h_chat
    if handler is None:
        return None
    conn = server._conns.get(conn_id)
    msg = ChatMessage(room, user, text, time_ms)
    try:
        return _verdict(handler(conn, msg), msg)
    except Exception as exc:
        # Moderation fails closed: a broken hook lets nothing through.
        server._report(exc, conn, "on_chat")
        return False


def _verdict(result: object, msg: ChatMessage) -> Union[None, bool, Tuple[str, str]]:
    """The hook's answer -> None (accept), False (reject) or (user, text)."""
    if result is None or result is True:
        return None
    if result is False:
        return False
    if isinstance(result, ChatMessage):
        rewritten = (result.user, result.text)
    elif isinstance(result, str):
        rewritten = (msg.user, result)
    elif isinstance(result, tuple) and len(result) == 2 and all(isinstance(x, str) for x in result):
        rewritten = (result[0], result[1])
    else:
        if inspect.iscoroutine(result):
            result.close()
        raise TypeError(
            "on_chat must return None/True (accept), False (reject), a str, a ChatMessage "
            f"or a (user, text) tuple, not {type(result).__name__}"
        )
    return None if rewritten == (msg.user, msg.text) else rewritten

