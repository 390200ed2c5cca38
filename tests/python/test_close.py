"""Close codes in both directions and the Connection after it closed."""

from __future__ import annotations

import asyncio
from typing import Callable

import pytest
import websocket  # websocket-client
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed as WsClosed

import chatws

from conftest import WAIT, Events, run_async


def test_client_close_code_reaches_on_close(make_server: Callable[..., chatws.Server],
                                            events: Events) -> None:
    server = make_server(on_close=lambda c, code, reason: events.add("close", c, code, reason))
    server.start()
    ws = websocket.create_connection(server.url, timeout=WAIT)
    ws.close(status=4000, reason=b"client done")
    ((conn, code, reason),) = events.wait_count("close", 1)
    assert (code, reason) == (4000, "client done")
    assert conn.closed and conn.close_code == 4000 and conn.close_reason == "client done"


def test_server_close_code_reaches_the_client(make_server: Callable[..., chatws.Server],
                                              events: Events) -> None:
    server = make_server(on_close=lambda c, code, reason: events.add("close", code, reason))

    @server.on_message
    def bye(conn: chatws.Connection, message: chatws.Message) -> None:
        conn.close(4001, "bye")

    server.start()

    async def scenario() -> None:
        async with connect(server.url) as ws:
            await ws.send("please close")
            with pytest.raises(WsClosed) as info:
                await asyncio.wait_for(ws.recv(), WAIT)
            assert info.value.rcvd is not None
            assert (info.value.rcvd.code, info.value.rcvd.reason) == (4001, "bye")

    run_async(scenario())
    assert events.wait_count("close", 1) == [(4001, "bye")]


def test_abrupt_disconnect_is_1006(make_server: Callable[..., chatws.Server], events: Events) -> None:
    server = make_server(on_close=lambda c, code, reason: events.add("close", code))
    server.start()
    ws = websocket.create_connection(server.url, timeout=WAIT)
    ws.sock.close()  # TCP close without a close frame
    assert events.wait_count("close", 1) == [(1006,)]


def test_connection_used_after_close_raises(make_server: Callable[..., chatws.Server],
                                            events: Events) -> None:
    server = make_server(on_open=lambda c: events.add("open", c),
                         on_close=lambda c, code, reason: events.add("close", c))
    server.start()
    ws = websocket.create_connection(server.url, timeout=WAIT)
    (conn,) = events.wait_count("open", 1)[0]
    ws.close()
    events.wait_count("close", 1)
    assert conn.closed
    with pytest.raises(chatws.ConnectionClosed) as info:
        conn.send("too late")
    assert isinstance(info.value, chatws.Error)
    assert str(conn.id) in str(info.value)
    conn.close()  # closing a closed connection is a no-op

    # On the loop thread the library itself refuses the stale id (from other
    # threads such a send is queued and then ignored, see chatws.h).
    @server.on_message
    def use_stale(other: chatws.Connection, msg: chatws.Message) -> None:
        try:
            server._native.send(conn.id, "stale id")
        except chatws.ConnectionClosed as exc:
            events.add("refused", exc)

    ws2 = websocket.create_connection(server.url, timeout=WAIT)
    ws2.send("go")
    ((exc,),) = events.wait_count("refused", 1)
    assert exc.code == -3
    ws2.close()


def test_server_close_closes_live_connections_cleanly(make_server: Callable[..., chatws.Server],
                                                      events: Events) -> None:
    # These clients do not answer close frames: keep the graceful wait short.
    server = make_server(drain_timeout=0.5,
                         on_open=lambda c: events.add("open", c),
                         on_close=lambda c, code, reason: events.add("close", c.id, code))
    server.start()
    clients = [websocket.create_connection(server.url, timeout=WAIT) for _ in range(3)]
    opened = events.wait_count("open", 3)
    server.close()
    closes = events.of("close")
    assert sorted(cid for cid, _ in closes) == sorted(c.id for (c,) in opened)
    assert {code for _, code in closes} == {1001}
    for ws in clients:
        opcode, frame = ws.recv_data(control_frame=True)
        assert opcode == websocket.ABNF.OPCODE_CLOSE
        assert int.from_bytes(frame[:2], "big") == 1001
        ws.sock.close()


def test_stop_sends_going_away_and_runs_on_close(make_server: Callable[..., chatws.Server],
                                                 events: Events) -> None:
    server = make_server(on_open=lambda c: events.add("open", c),
                         on_close=lambda c, code, reason: events.add("close", code))
    server.start()

    async def scenario() -> None:
        async with connect(server.url) as ws:
            events.wait_count("open", 1)
            # stop() waits for the loop, so run it off the event loop thread.
            stopper = asyncio.get_running_loop().run_in_executor(None, server.stop)
            with pytest.raises(WsClosed) as info:
                await asyncio.wait_for(ws.recv(), WAIT)
            assert info.value.rcvd is not None and info.value.rcvd.code == 1001
            await asyncio.wait_for(stopper, WAIT)

    run_async(scenario())
    assert events.of("close") == [(1001,)]
    assert server.stopped and not server.running


def test_close_timeout_inf_waits_for_the_peer(make_server: Callable[..., chatws.Server],
                                             events: Events) -> None:
    """close_timeout=math.inf (chatws.h close_timeout_ms = -1): a peer that
    never answers our close frame keeps its connection until it closes TCP
    (it used to be cut after 100 ms). The 1 s window is an observation,
    ten times that, not a synchronisation."""
    import math

    server = make_server(close_timeout=math.inf,
                         on_open=lambda c: c.close(1000, "bye"),
                         on_close=lambda c, code, reason: events.add("close", code))
    server.start()
    ws = websocket.create_connection(server.url, timeout=WAIT)
    head = ws.sock.recv(2)  # the close frame's first bytes, read raw: no automatic reply
    assert head[0] == 0x88
    with pytest.raises(AssertionError):
        events.wait_count("close", 1, timeout=1.0)
    ws.sock.close()
    assert events.wait_count("close", 1) == [(1000,)]
