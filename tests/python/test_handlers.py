"""Handler registration, exceptions in handlers, on_error, async handlers in
threaded mode, and handler objects' lifetime."""

from __future__ import annotations

import gc
import logging
import weakref
from typing import Any, Callable, List, Optional

import pytest
import websocket  # websocket-client

import chatws

from conftest import WAIT, Events


def connect(server: chatws.Server) -> websocket.WebSocket:
    return websocket.create_connection(server.url, timeout=WAIT)


def test_decorator_attribute_and_keyword_registration(make_server: Callable[..., chatws.Server]) -> None:
    server = make_server()

    @server.on_message
    def first(conn: chatws.Connection, msg: chatws.Message) -> None:
        conn.send("first")

    assert server.on_message.handler is first and bool(server.on_message)
    server.start()
    ws = connect(server)
    ws.send("x")
    assert ws.recv() == "first"
    server.on_message = lambda conn, msg: conn.send("second")
    ws.send("x")
    assert ws.recv() == "second"
    server.on_message = None
    assert not server.on_message
    server.on_open = lambda conn: conn.send("opened")
    ws2 = connect(server)
    assert ws2.recv() == "opened"
    ws.close()
    ws2.close()
    with pytest.raises(TypeError):
        server.on_close = "not callable"  # type: ignore[assignment]


def test_subclass_methods_are_handlers() -> None:
    class Upper(chatws.Server):
        def on_message(self, conn: chatws.Connection, msg: chatws.Message) -> None:  # type: ignore[override]
            conn.send(str(msg).upper())

    with Upper(port=0) as server:
        server.start()
        ws = connect(server)
        ws.send("shout")
        assert ws.recv() == "SHOUT"
        ws.close()


def test_exception_in_handler_is_logged_and_reported(make_server: Callable[..., chatws.Server],
                                                     events: Events,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    server = make_server(on_error=lambda exc, conn: events.add("error", exc, conn))

    @server.on_message
    def handler(conn: chatws.Connection, msg: chatws.Message) -> None:
        if msg == "boom":
            raise ValueError("handler exploded")
        conn.send(msg)

    caplog.set_level(logging.ERROR, logger="chatws")
    server.start()
    bad, good = connect(server), connect(server)
    bad.send("boom")
    ((exc, conn),) = events.wait_count("error", 1)
    assert isinstance(exc, ValueError) and str(exc) == "handler exploded"
    assert isinstance(conn, chatws.Connection) and not conn.closed
    records = [r for r in caplog.records if r.name == "chatws"]
    assert any("on_message" in r.getMessage() and r.exc_info and r.exc_info[1] is exc for r in records)
    # The server, the other connection and the failing one carry on.
    good.send("still here")
    assert good.recv() == "still here"
    bad.send("me too")
    assert bad.recv() == "me too"
    bad.close()
    good.close()


def test_exceptions_in_every_handler_kind(make_server: Callable[..., chatws.Server], events: Events) -> None:
    def fail(*args: Any) -> None:
        raise RuntimeError("fail")

    server = make_server(on_open=fail, on_message=fail,
                         on_close=lambda *a: (events.add("closed"), fail()),
                         on_error=lambda exc, conn: events.add("error", type(exc)))
    server.start()
    ws = connect(server)
    ws.send("x")
    ws.close()
    events.wait_count("closed", 1)
    assert events.wait_count("error", 3) == [(RuntimeError,)] * 3


def test_failing_on_error_is_logged_not_raised(make_server: Callable[..., chatws.Server],
                                               caplog: pytest.LogCaptureFixture, events: Events) -> None:
    def on_error(exc: BaseException, conn: Optional[chatws.Connection]) -> None:
        events.add("on_error")
        raise KeyError("on_error broke too")

    server = make_server(on_error=on_error)
    server.on_message = lambda conn, msg: (_ for _ in ()).throw(ValueError("x"))
    caplog.set_level(logging.ERROR, logger="chatws")
    server.start()
    ws = connect(server)
    ws.send("a")
    events.wait_count("on_error", 1)
    server.on_message = lambda conn, msg: conn.send("ok")
    ws.send("b")
    assert ws.recv() == "ok"
    assert any("on_error" in r.getMessage() for r in caplog.records)
    ws.close()


def test_async_handler_without_asyncio_is_reported(make_server: Callable[..., chatws.Server],
                                                   events: Events) -> None:
    server = make_server(on_error=lambda exc, conn: events.add("error", exc))

    async def handler(conn: chatws.Connection, msg: chatws.Message) -> None:
        conn.send("never")  # pragma: no cover

    server.on_message = handler
    server.start()
    ws = connect(server)
    ws.send("x")
    ((exc,),) = events.wait_count("error", 1)
    assert isinstance(exc, TypeError) and "asyncio" in str(exc)
    ws.close()


def test_handlers_referring_to_their_server_do_not_leak() -> None:
    server = chatws.Server(port=0)
    sent: List[str] = []

    @server.on_message
    def relay(conn: chatws.Connection, msg: chatws.Message) -> None:
        server.broadcast(msg)  # a closure over the server: a reference cycle
        sent.append(str(msg))

    server.start()
    ws = connect(server)
    ws.send("cycle")
    assert ws.recv() == "cycle"
    ws.close()
    server.stop()
    port = server.port
    handler_ref = weakref.ref(relay)
    server_ref = weakref.ref(server)
    del server, relay
    gc.collect()
    assert server_ref() is None and handler_ref() is None
    # Freed means closed: the port can be bound again.
    with chatws.Server(port=port):
        pass


def test_dropped_server_is_closed_by_gc() -> None:
    server = chatws.Server(port=0, on_message=lambda c, m: None)
    native = server._native
    ref = weakref.ref(server)
    del server
    gc.collect()
    assert ref() is None
    assert native.closed
