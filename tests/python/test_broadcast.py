"""Broadcast to many clients, with the asyncio `websockets` client."""

from __future__ import annotations

import asyncio
from typing import Callable, List

import websockets
from websockets.asyncio.client import ClientConnection, connect

import chatws

from conftest import WAIT, Events, run_async

N_CLIENTS = 50


async def open_clients(url: str, n: int) -> List[ClientConnection]:
    return list(await asyncio.gather(*(connect(url, max_size=None) for _ in range(n))))


def test_broadcast_from_another_thread_reaches_50_clients(make_server: Callable[..., chatws.Server],
                                                          events: Events) -> None:
    server = make_server(on_open=lambda c: events.add("open", c)).start()

    async def scenario() -> None:
        clients = await open_clients(server.url, N_CLIENTS)
        try:
            events.wait_count("open", N_CLIENTS)
            assert len(server.connections) == N_CLIENTS
            # This coroutine runs on the test's thread, not the loop thread.
            server.broadcast("to everyone")
            server.broadcast(b"\x00binary\xff")
            texts = await asyncio.gather(*(asyncio.wait_for(c.recv(), WAIT) for c in clients))
            binaries = await asyncio.gather(*(asyncio.wait_for(c.recv(), WAIT) for c in clients))
            assert texts == ["to everyone"] * N_CLIENTS
            assert binaries == [b"\x00binary\xff"] * N_CLIENTS
        finally:
            await asyncio.gather(*(c.close() for c in clients))

    run_async(scenario())


def test_broadcast_from_a_handler_excludes_the_sender(make_server: Callable[..., chatws.Server],
                                                      events: Events) -> None:
    server = make_server(on_open=lambda c: events.add("open", c))

    @server.on_message
    def relay(conn: chatws.Connection, message: chatws.Message) -> None:
        server.broadcast(f"{conn.id}: {message}", exclude=conn)
        conn.send("sent")

    server.start()

    async def scenario() -> None:
        clients = await open_clients(server.url, N_CLIENTS)
        try:
            events.wait_count("open", N_CLIENTS)
            sender, others = clients[0], clients[1:]
            await sender.send("hello all")
            assert await asyncio.wait_for(sender.recv(), WAIT) == "sent"
            got = await asyncio.gather(*(asyncio.wait_for(c.recv(), WAIT) for c in others))
            assert len(set(got)) == 1 and got[0].endswith(": hello all")
            # Had the sender been sent the broadcast, it would arrive before
            # the acknowledgement of its next message (one ordered stream).
            await sender.send("again")
            assert await asyncio.wait_for(sender.recv(), WAIT) == "sent"
        finally:
            await asyncio.gather(*(c.close() for c in clients))

    run_async(scenario())


def test_broadcast_many_messages_keeps_order(make_server: Callable[..., chatws.Server],
                                             events: Events) -> None:
    server = make_server(on_open=lambda c: events.add("open", c)).start()
    n_messages = 200

    async def scenario() -> None:
        clients = await open_clients(server.url, 10)
        try:
            events.wait_count("open", 10)
            for i in range(n_messages):
                server.broadcast(str(i))

            async def drain(c: ClientConnection) -> List[str]:
                return [str(await asyncio.wait_for(c.recv(), WAIT)) for _ in range(n_messages)]

            results = await asyncio.gather(*(drain(c) for c in clients))
            assert all(r == [str(i) for i in range(n_messages)] for r in results)
        finally:
            await asyncio.gather(*(c.close() for c in clients))

    run_async(scenario())


def test_websockets_version_is_modern() -> None:
    # The tests use the websockets >= 13 asyncio client API.
    assert int(websockets.__version__.split(".")[0]) >= 13
