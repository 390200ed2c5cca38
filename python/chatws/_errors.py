"""The chatws.Error hierarchy: one class per error code of the C ABI.

Every failure of a libchatws call raises the subclass for its code, with the
library's chatws_last_error() text as the message.
"""

from __future__ import annotations

from typing import ClassVar, Dict, Optional, Type

__all__ = [
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
]


class Error(Exception):
    """Base class of every error raised by chatws.

    ``code`` is the negative CHATWS_E* code of chatws.h (``None`` for errors
    raised by the Python layer without a C call).
    """

    code: ClassVar[Optional[int]] = None


class InvalidArgument(Error, ValueError):
    """CHATWS_EINVAL: an argument or option is invalid (e.g. a bad close code)."""

    code = -1


class OutOfMemory(Error):
    """CHATWS_ENOMEM."""

    code = -2


class ConnectionClosed(Error):
    """CHATWS_ENOCONN: the connection has closed (or never existed)."""

    code = -3


class WrongThread(Error):
    """CHATWS_ETHREAD: a loop-thread-only call was made from another thread
    while the loop runs (e.g. post_chat() from a thread other than the one in
    serve_forever())."""

    code = -4


class InvalidState(Error):
    """CHATWS_ESTATE: not allowed now (e.g. two threads running one loop)."""

    code = -5


class SystemCallError(Error, OSError):
    """CHATWS_ESYSTEM: a system call failed (e.g. the port is in use)."""

    code = -6


class MessageTooBig(Error, ValueError):
    """CHATWS_ETOOBIG: the message is larger than max_message_size."""

    code = -7


class QueueFull(Error):
    """CHATWS_EFULL: the connection's output queue is full (slow consumer
    policy "drop"): the message was dropped; or, from post_chat, the room
    would be new and max_rooms rooms exist."""

    code = -8


class ServerStopped(Error):
    """CHATWS_ESTOPPED: the server is stopping, stopped or closed."""

    code = -9


class StorageError(Error):
    """CHATWS_ESTORAGE: the chat history store failed."""

    code = -10


class InternalError(Error):
    """CHATWS_EINTERNAL: an unexpected failure inside the library (a bug)."""

    code = -11


_BY_CODE: Dict[int, Type[Error]] = {
    cls.code: cls
    for cls in (
        InvalidArgument,
        OutOfMemory,
        ConnectionClosed,
        WrongThread,
        InvalidState,
        SystemCallError,
        MessageTooBig,
        QueueFull,
        ServerStopped,
        StorageError,
        InternalError,
    )
    if cls.code is not None
}


def _from_native(code: int, message: str) -> Error:
    """Called by chatws._native to build the exception for a failed call."""
    cls = _BY_CODE.get(code)
    if cls is None:
        exc = Error(f"{message} (code {code})")
        return exc
    return cls(message)
