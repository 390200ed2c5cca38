"""Who is connecting: the upgrade hook's request object and its answers.

::

    @server.on_upgrade
    def auth(request):
        user = check_token(request.query.get("token", [""])[0])
        if user is None:
            return chatws.Reject(401, body="token required",
                                 headers={"WWW-Authenticate": "Bearer"})
        return chatws.Accept(identity=user)

The hook runs on the loop thread for every WebSocket upgrade that passed the
protocol checks, before the 101. It returns ``None``/``True`` (accept),
:class:`Accept`, :class:`Reject` or ``False`` (reject with 403). To decide
later without blocking the loop it returns an awaitable: in asyncio mode
(``chatws.serve()``) an ``async def`` hook is awaited as a task; in any mode a
:class:`concurrent.futures.Future` (resolved from any thread, e.g. a worker
pool) works. A decision that never comes is answered 503 at the handshake
timeout. An exception (or a bad answer) rejects with 500 and reaches
``on_error``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
from typing import (
    TYPE_CHECKING,
    Any,
    Dict,
    Iterable,
    Iterator,
    List,
    Mapping,
    Optional,
    Tuple,
    Union,
)

from . import _native

if TYPE_CHECKING:
    from ._server import Server

__all__ = ["Accept", "Reject", "UpgradeRequest", "Headers", "UpgradeVerdict"]

HeaderArg = Union[Mapping[str, str], Iterable[Tuple[str, str]], None]

_ACCEPT = _native.codes.UPGRADE_ACCEPT
_REJECT = _native.codes.UPGRADE_REJECT
_PENDING = _native.codes.UPGRADE_PENDING


def _header_pairs(headers: HeaderArg) -> List[Tuple[str, str]]:
    if headers is None:
        return []
    items = headers.items() if isinstance(headers, Mapping) else headers
    out = []
    for name, value in items:
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError("headers must map str names to str values")
        out.append((name, value))
    return out


class Accept:
    """Accept the upgrade; bind ``identity`` (a user name, for the
    connection's whole life: ``Connection.identity``, and the chat's user),
    hand ``user_data`` (any object: the account record the hook looked up)
    to the connection (``Connection.user_data``, from ``on_open`` on) and
    send extra ``headers`` (e.g. ``{"Set-Cookie": "sid=..."}``) with the
    101."""

    __slots__ = ("identity", "headers", "user_data")

    def __init__(self, identity: Optional[str] = None, headers: HeaderArg = None,
                 user_data: Any = None) -> None:
        self.identity = identity
        self.headers = _header_pairs(headers)
        self.user_data = user_data

    def _answer(self) -> Tuple[int, Optional[str], int, str, str, List[Tuple[str, str]]]:
        return (_ACCEPT, self.identity, 0, "", "", self.headers)

    def __repr__(self) -> str:
        extra = "" if self.user_data is None else f", user_data={self.user_data!r}"
        return f"Accept(identity={self.identity!r}, headers={self.headers!r}{extra})"


class Reject:
    """Refuse the upgrade with HTTP ``status`` (400-599), a reason phrase
    (default: the standard one), a short text ``body`` (at most 4096 bytes)
    and extra ``headers`` (e.g. ``WWW-Authenticate``). Header values with CR
    or LF are refused: the client gets a 500 instead, ``on_error`` the
    reason."""

    __slots__ = ("status", "reason", "body", "headers")

    def __init__(self, status: int = 403, reason: str = "", body: str = "",
                 headers: HeaderArg = None) -> None:
        self.status = status
        self.reason = reason
        self.body = body
        self.headers = _header_pairs(headers)

    def _answer(self) -> Tuple[int, Optional[str], int, str, str, List[Tuple[str, str]]]:
        return (_REJECT, None, int(self.status), self.reason, self.body, self.headers)

    def __repr__(self) -> str:
        return f"Reject({self.status!r}, reason={self.reason!r}, body={self.body!r})"


#: What an on_upgrade hook returns (or its awaitable resolves to).
UpgradeVerdict = Union[None, bool, Accept, Reject]


class Headers(Mapping[str, str]):
    """The request headers: ``headers["cookie"]`` (case-insensitive, the
    first of that name), ``get_all(name)`` (every one, in order),
    ``items()`` in the order sent with duplicates kept."""

    __slots__ = ("_items", "_first")

    def __init__(self, items: Iterable[Tuple[str, str]]) -> None:
        self._items = list(items)
        self._first: Dict[str, str] = {}
        for name, value in self._items:
            self._first.setdefault(name.lower(), value)

    def __getitem__(self, name: str) -> str:
        return self._first[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._first

    def __iter__(self) -> Iterator[str]:
        seen = set()
        for name, _ in self._items:
            if name.lower() not in seen:
                seen.add(name.lower())
                yield name

    def __len__(self) -> int:
        return len(self._first)

    def get_all(self, name: str) -> List[str]:
        key = name.lower()
        return [v for n, v in self._items if n.lower() == key]

    def items(self) -> List[Tuple[str, str]]:  # type: ignore[override]
        return list(self._items)

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


class UpgradeRequest:
    """What ``on_upgrade`` sees of one WebSocket upgrade request.

    - ``id``: the request (the connection keeps this id once open)
    - ``method``, ``path`` (percent-decoded), ``raw_path`` (as sent)
    - ``query_string`` (raw), ``query``: ``{name: [values...]}`` decoded
    - ``headers``: :class:`Headers`; ``cookies``: ``{name: value}`` (the
      first of each name)
    - ``remote_address``: ``(host, port)``
    - ``subprotocols``: offered by the client; ``subprotocol``: the one
      chatws will choose ("" if none)
    """

    __slots__ = ("id", "method", "path", "raw_path", "query_string", "query", "headers",
                 "cookies", "remote_address", "subprotocols", "subprotocol")

    def __init__(self, raw: Dict[str, Any]) -> None:
        self.id: int = raw["id"]
        self.method: str = raw["method"]
        self.path: str = raw["path"]
        self.raw_path: str = raw["raw_path"]
        self.query_string: str = raw["query"]
        query: Dict[str, List[str]] = {}
        for name, value in raw["params"]:
            query.setdefault(name, []).append(value)
        self.query = query
        self.headers = Headers(raw["headers"])
        cookies: Dict[str, str] = {}
        for name, value in raw["cookies"]:
            cookies.setdefault(name, value)
        self.cookies = cookies
        self.remote_address: Tuple[str, int] = (raw["remote_address"], raw["remote_port"])
        self.subprotocols: List[str] = list(raw["subprotocols"])
        self.subprotocol: str = raw["subprotocol"]

    def __repr__(self) -> str:
        return f"<chatws.UpgradeRequest {self.method} {self.raw_path} from {self.remote_address}>"


def _to_answer(result: object, server: Optional["Server"] = None, request_id: int = 0) -> Any:
    """A verdict -> the native answer (None: accept as is). An Accept's
    user_data waits in the server for the connection's on_open."""
    if result is None or result is True:
        return None
    if result is False:
        return Reject(403)._answer()
    if isinstance(result, (Accept, Reject)):
        answer = result._answer()
        if isinstance(result, Accept) and result.user_data is not None and server is not None:
            server._keep_user_data(request_id, result.user_data)
        return answer
    raise TypeError(
        "on_upgrade must return None/True (accept), False, chatws.Accept, chatws.Reject "
        f"or an awaitable of one, not {type(result).__name__}"
    )


_FAILED = (_REJECT, None, 500, "", "", [])


def _resolve(server: "Server", request: UpgradeRequest, get: Any) -> None:
    """Resolve the pending request with the verdict `get()` gives (any thread)."""
    try:
        answer = _to_answer(get(), server, request.id)
    except BaseException as exc:  # noqa: BLE001 - a failed decision still answers
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        if not isinstance(exc, (concurrent.futures.CancelledError, asyncio.CancelledError)):
            server._report(exc, None, "on_upgrade")
        answer = _FAILED
    try:
        if not server._native.resolve_upgrade(request.id, answer):
            server._upgrade_data.pop(request.id, None)  # its client left: nobody opens
    except Exception as exc:  # an answer chatws refuses (e.g. CR/LF in a header)
        server._upgrade_data.pop(request.id, None)
        server._report(exc, None, "on_upgrade")
        if not server._native.closed:
            server._native.resolve_upgrade(request.id, _FAILED)


def _dispatch_upgrade(server: "Server", raw: Dict[str, Any]) -> Any:
    """Called by the native layer on the loop thread; never raises."""
    handler = server._h_upgrade
    if handler is None:
        return None
    try:
        request = UpgradeRequest(raw)
        result = handler(request)
        if isinstance(result, concurrent.futures.Future):
            result.add_done_callback(lambda f: _resolve(server, request, f.result))
            return (_PENDING, None, 0, "", "", [])
        if inspect.isawaitable(result):
            return server._pending_upgrade(request, result)
        return _to_answer(result, server, request.id)
    except Exception as exc:
        server._report(exc, None, "on_upgrade")
        return _FAILED
