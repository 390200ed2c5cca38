"""asyncio mode: chatws.serve() on the running loop, no thread."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import List

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed as WsClosed

import chatws

from conftest import WAIT, run_async


def test_echo_in_asyncio_without_a_thread() -> None:
    threads_before = threading.active_count()

    async def scenario() -> None:
        async with chatws.serve(port=0) as server:
            assert isinstance(server, chatws.AsyncServer) and server.running
            loop_thread = threading.get_ident()
            seen_on: List[int] = []

            @server.on_message
            def echo(conn: chatws.Connection, msg: chatws.Message) -> None:
                seen_on.append(threading.get_ident())
                conn.send(msg)

            async with connect(server.url, max_size=None) as ws:
                for payload in ("text", b"\x01\x02", "x" * 100_000):
                    await ws.send(payload)
                    assert await ws.recv() == payload
            assert set(seen_on) == {loop_thread}
            assert threading.active_count() == threads_before
        assert server.closed

    run_async(scenario())


def test_async_handlers_run_as_tasks() -> None:
    async def scenario() -> None:
        async with chatws.serve(port=0) as server:

            @server.on_message
            async def slow_echo(conn: chatws.Connection, msg: chatws.Message) -> None:
                await asyncio.sleep(0)
                conn.send(f"async:{msg}")

            async with connect(server.url) as ws:
                await ws.send("hi")
                assert await asyncio.wait_for(ws.recv(), WAIT) == "async:hi"

    run_async(scenario())


def test_async_handler_exception_is_reported() -> None:
    errors: List[BaseException] = []

    async def scenario() -> None:
        got_error = asyncio.Event()

        def on_error(exc: BaseException, conn: object) -> None:
            errors.append(exc)
            got_error.set()

        async with chatws.serve(port=0, on_error=on_error) as server:

            @server.on_message
            async def fail(conn: chatws.Connection, msg: chatws.Message) -> None:
                raise LookupError("async failure")

            async with connect(server.url) as ws:
                await ws.send("x")
                await asyncio.wait_for(got_error.wait(), WAIT)

    run_async(scenario())
    assert len(errors) == 1 and isinstance(errors[0], LookupError)


def test_engine_timers_fire_in_asyncio_mode() -> None:
    # A client that never sends its HTTP request is dropped after the
    # handshake timeout: the engine's timer must fire with no thread at all.
    async def scenario() -> float:
        async with chatws.serve(port=0, handshake_timeout=0.3) as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            start = time.monotonic()
            await asyncio.wait_for(reader.read(), WAIT)  # until EOF
            elapsed = time.monotonic() - start
            writer.close()
            return elapsed

    elapsed = run_async(scenario())
    assert 0.2 <= elapsed < 5.0, elapsed


def test_stop_from_another_thread_in_asyncio_mode() -> None:
    async def scenario() -> None:
        server = await chatws.serve(port=0, drain_timeout=2.0)
        try:
            async with connect(server.url) as ws:
                threading.Thread(target=server.stop).start()
                with pytest.raises(WsClosed) as info:
                    await asyncio.wait_for(ws.recv(), WAIT)
                assert info.value.rcvd is not None and info.value.rcvd.code == 1001
            await asyncio.wait_for(server.wait_stopped(), WAIT)
            assert server.stopped and not server.running
        finally:
            await server.aclose()
        assert server.closed

    run_async(scenario())


def test_serve_forever_returns_after_stop_and_cancel_stops() -> None:
    async def scenario() -> None:
        server = chatws.serve(port=0)
        server.on_open = lambda conn: server.stop()
        async with server:
            forever = asyncio.ensure_future(server.serve_forever())
            async with connect(server.url) as ws:
                with pytest.raises(WsClosed):
                    await asyncio.wait_for(ws.recv(), WAIT)
            await asyncio.wait_for(forever, WAIT)

        other = chatws.serve(port=0)
        task = asyncio.ensure_future(other.serve_forever())
        await asyncio.sleep(0)  # let it attach: not a synchronisation, just a turn
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, WAIT)
        assert other.closed

    run_async(scenario())


def test_start_is_refused_in_asyncio_mode() -> None:
    async def scenario() -> None:
        async with chatws.serve(port=0) as server:
            with pytest.raises(chatws.InvalidState):
                server.start()

    run_async(scenario())


def test_broadcast_in_asyncio_mode() -> None:
    async def scenario() -> None:
        async with chatws.serve(port=0) as server:
            opened = asyncio.Event()
            server.on_open = lambda c: opened.set() if len(server.connections) == 20 else None
            clients = await asyncio.gather(*(connect(server.url) for _ in range(20)))
            await asyncio.wait_for(opened.wait(), WAIT)
            server.broadcast("all")
            got = await asyncio.gather(*(asyncio.wait_for(c.recv(), WAIT) for c in clients))
            assert got == ["all"] * 20
            await asyncio.gather(*(c.close() for c in clients))

    run_async(scenario())
