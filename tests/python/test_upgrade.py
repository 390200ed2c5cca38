"""The upgrade hook from Python (issue 12): the request object, Accept with
an identity, user data and headers, Reject seen byte for byte by a raw client, a hook
that raises (500 + on_error), a pending decision resolved from another
thread (a concurrent.futures.Future) and from a coroutine (asyncio mode), a
pending request whose client left, and the handshake timeout's 503."""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import os
import socket
import threading
from typing import Any, Callable, Dict, List, Optional

import pytest
import websocket  # websocket-client
from websockets.asyncio.client import connect

import chatws

from conftest import WAIT, Events, run_async


def _upgrade_request(path: str, extra: str = "") -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\n{extra}\r\n").encode()


def _raw_response(port: int, path: str, extra: str = "") -> bytes:
    """Everything the server sends until it closes (a rejection)."""
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as s:
        s.sendall(_upgrade_request(path, extra))
        chunks = []
        while True:
            data = s.recv(65536)
            if not data:
                return b"".join(chunks)
            chunks.append(data)


def test_request_object_and_accept_with_identity(make_server: Callable[..., chatws.Server],
                                                  events: Events) -> None:
    server = make_server(subprotocols=["json", "chat"])
    seen: Dict[str, Any] = {}

    @server.on_upgrade
    def hook(req: chatws.UpgradeRequest) -> chatws.Accept:
        seen.update(method=req.method, path=req.path, raw_path=req.raw_path,
                    query=req.query, query_string=req.query_string,
                    custom=req.headers["x-CUSTOM"], all_custom=req.headers.get_all("X-Custom"),
                    has=("cookie" in req.headers), cookies=req.cookies,
                    remote=req.remote_address, offered=req.subprotocols,
                    chosen=req.subprotocol, thread=threading.get_ident())
        return chatws.Accept(identity=req.query["user"][0], headers={"Set-Cookie": "sid=abc; Path=/"},
                             user_data={"account": 7})

    @server.on_open
    def opened(conn: chatws.Connection) -> None:
        events.add("open", conn.identity, conn.query_string, conn.path, conn.user_data)

    server.start()
    ws = websocket.create_connection(
        server.url + "rooms/a%20b?user=Zo%C3%AB&a=1&a=2&flag", timeout=WAIT,
        subprotocols=["chat", "json"],
        header=["X-Custom: one", "x-custom: two", "Cookie: sid=1; theme=\"dark\""])
    try:
        assert ws.getheaders()["set-cookie"] == "sid=abc; Path=/"
        local = ws.sock.getsockname()
    finally:
        ws.close()
    (opened_event,) = events.wait_count("open", 1)
    assert opened_event == ("Zoë", "user=Zo%C3%AB&a=1&a=2&flag", "/rooms/a%20b", {"account": 7})
    assert server._upgrade_data == {}  # handed on, not kept
    assert seen["method"] == "GET"
    assert seen["path"] == "/rooms/a b" and seen["raw_path"] == "/rooms/a%20b"
    assert seen["query"] == {"user": ["Zoë"], "a": ["1", "2"], "flag": [""]}
    assert seen["query_string"] == "user=Zo%C3%AB&a=1&a=2&flag"
    assert seen["custom"] == "one" and seen["all_custom"] == ["one", "two"] and seen["has"]
    assert seen["cookies"] == {"sid": "1", "theme": "dark"}
    assert seen["remote"] == ("127.0.0.1", local[1])
    assert seen["offered"] == ["chat", "json"] and seen["chosen"] == "json"


def test_reject_is_sent_exactly(make_server: Callable[..., chatws.Server]) -> None:
    server = make_server(on_upgrade=lambda req: chatws.Reject(
        401, reason="Who Are You", body="token required",
        headers=[("WWW-Authenticate", 'Bearer realm="chat"'), ("Set-Cookie", "a=1")]))
    server.start()
    assert _raw_response(server.port, "/") == (
        b"HTTP/1.1 401 Who Are You\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Length: 14\r\n"
        b"Connection: close\r\n"
        b'WWW-Authenticate: Bearer realm="chat"\r\n'
        b"Set-Cookie: a=1\r\n"
        b"\r\n"
        b"token required")
    # False: a plain 403.
    server.on_upgrade = lambda req: False
    assert _raw_response(server.port, "/").startswith(b"HTTP/1.1 403 Forbidden\r\n")


def test_room_authorization(make_server: Callable[..., chatws.Server]) -> None:
    server = make_server(chat=True)
    server.on_upgrade = lambda req: chatws.Reject(403, body="staff only") \
        if req.path == "/rooms/staff" else None
    server.start()
    assert _raw_response(server.port, "/rooms/staff", "Sec-WebSocket-Protocol: json\r\n") \
        .startswith(b"HTTP/1.1 403 Forbidden\r\n")
    ws = websocket.create_connection(server.url, timeout=WAIT, subprotocols=["json"])
    assert '"msg"' in ws.recv()
    ws.close()


def test_hook_exception_and_bad_answers_reject_with_500(make_server: Callable[..., chatws.Server],
                                                        events: Events) -> None:
    server = make_server(on_error=lambda exc, conn: events.add("error", type(exc).__name__, str(exc)))

    @server.on_upgrade
    def hook(req: chatws.UpgradeRequest) -> Any:
        if req.path == "/raise":
            raise RuntimeError("auth backend down")
        if req.path == "/crlf":
            return chatws.Reject(401, headers={"X-Note": "a\r\nX-Evil: 1"})
        return 42  # not an answer

    server.start()
    for path in ("/raise", "/wrongtype"):
        assert _raw_response(server.port, path).startswith(b"HTTP/1.1 500 ")
    resp = _raw_response(server.port, "/crlf")
    assert resp.startswith(b"HTTP/1.1 500 ") and b"X-Evil" not in resp
    errors = events.wait_count("error", 2)
    assert ("RuntimeError", "auth backend down") in errors
    assert any(e[0] == "TypeError" and "on_upgrade must return" in e[1] for e in errors)


def test_pending_resolved_from_another_thread(make_server: Callable[..., chatws.Server],
                                              events: Events) -> None:
    server = make_server()
    pool = concurrent.futures.ThreadPoolExecutor(1)
    release = threading.Event()

    def lookup(token: str) -> chatws.Accept:
        # A slow auth service: the loop keeps serving meanwhile (GIL released).
        assert release.wait(WAIT)
        return chatws.Accept(identity=f"user-{token}", user_data=("account", int(token)))

    @server.on_upgrade
    def hook(req: chatws.UpgradeRequest) -> "concurrent.futures.Future[chatws.Accept]":
        if req.path == "/fast":
            return None  # type: ignore[return-value]
        events.add("asked", threading.get_ident())
        return pool.submit(lookup, req.query["token"][0])

    @server.on_message
    def who(conn: chatws.Connection, msg: chatws.Message) -> None:
        conn.send(f"{conn.identity} {conn.user_data}")

    server.start()
    result: List[str] = []

    def slow_client() -> None:
        ws = websocket.create_connection(server.url + "?token=7", timeout=WAIT)
        ws.send("?")
        result.append(ws.recv())
        ws.close()

    t = threading.Thread(target=slow_client)
    t.start()
    events.wait_count("asked", 1)
    # While the decision is pending, other clients are served.
    fast = websocket.create_connection(server.url + "fast", timeout=WAIT)
    fast.send("?")
    assert fast.recv() == "None None"
    fast.close()
    release.set()
    t.join(WAIT)
    assert result == ["user-7 ('account', 7)"]
    pool.shutdown()


def test_pending_resolved_by_a_coroutine() -> None:
    async def scenario() -> None:
        async with chatws.serve(port=0, chat=True) as server:
            gate = asyncio.Event()

            @server.on_upgrade
            async def hook(req: chatws.UpgradeRequest) -> chatws.UpgradeVerdict:
                await gate.wait()  # e.g. an async database lookup
                if req.query.get("token") != ["good"]:
                    return chatws.Reject(401, body="bad token")
                return chatws.Accept(identity="ann", user_data=["row", 1])

            opened: List[Any] = []
            server.on_open = lambda conn: opened.append((conn.identity, conn.user_data))
            loop = asyncio.get_running_loop()
            loop.call_later(0.05, gate.set)
            async with connect(server.url + "?token=good", subprotocols=["json"]) as ws:
                await asyncio.wait_for(ws.recv(), WAIT)
            assert opened == [("ann", ["row", 1])]
            with pytest.raises(Exception) as info:
                async with connect(server.url + "?token=bad", subprotocols=["json"]):
                    pass
            assert "401" in str(info.value)

    run_async(scenario())


def test_pending_client_left_resolves_into_a_no_op(make_server: Callable[..., chatws.Server],
                                                   events: Events) -> None:
    server = make_server()
    futures: List["concurrent.futures.Future[Any]"] = []
    server.on_error = lambda exc, conn: events.add("error", exc)

    @server.on_upgrade
    def hook(req: chatws.UpgradeRequest) -> "concurrent.futures.Future[Any]":
        f: "concurrent.futures.Future[Any]" = concurrent.futures.Future()
        futures.append(f)
        events.add("asked", req.id)
        return f

    # Poll-driven: the test knows when the loop has handled the client's EOF.
    s = socket.create_connection(("127.0.0.1", server.port), timeout=WAIT)
    s.sendall(_upgrade_request("/"))
    for _ in range(100):
        if futures:
            break
        server.poll(0.1)
    ((req_id,),) = events.of("asked")
    s.close()
    assert server.poll(WAIT)  # the EOF: the only event left
    assert server._native.resolve_upgrade(req_id, None) is False
    futures[0].set_result(chatws.Accept(identity="late", user_data=object()))  # a no-op too
    assert events.of("error") == []
    assert server._upgrade_data == {}  # nobody will open: not kept


def test_pending_never_resolved_gets_503(make_server: Callable[..., chatws.Server]) -> None:
    server = make_server(handshake_timeout=0.3)
    server.on_upgrade = lambda req: concurrent.futures.Future()
    server.start()
    resp = _raw_response(server.port, "/")
    assert resp.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert b"Retry-After: 1\r\n" in resp
