"""Several event loops (threads=2) from Python, with real `websockets`
clients: handlers on the library's loop threads (GIL taken per call), a
broadcast and a chat room spanning both loops, serve_forever()/start()
and a graceful stop, asyncio mode over several loops, poll()/fileno()
refused with a clear error."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Callable, List, Set

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

import chatws

from conftest import WAIT, Events, run_async


async def open_clients(url: str, n: int, **kw: object) -> List[ClientConnection]:
    return list(await asyncio.gather(*(connect(url, **kw) for _ in range(n))))  # type: ignore[arg-type]


async def recv_n(c: ClientConnection, n: int) -> List[str]:
    return [str(await asyncio.wait_for(c.recv(), WAIT)) for _ in range(n)]


def test_handlers_run_on_both_loops_and_a_broadcast_reaches_every_client(
        make_server: Callable[..., chatws.Server], events: Events) -> None:
    server = make_server(threads=2, on_open=lambda c: events.add("open", c.id, threading.get_ident()))
    assert server.threads == 2

    @server.on_message
    def relay(conn: chatws.Connection, message: chatws.Message) -> None:
        events.add("message", conn.id, threading.get_ident())
        server.broadcast(f"{conn.id}: {message}")

    server.start()
    n = 24

    async def scenario() -> None:
        clients = await open_clients(server.url, n)
        try:
            opens = events.wait_count("open", n)
            ids = {e[0] for e in opens}
            assert len(ids) == n
            assert {i % 2 for i in ids} == {0, 1}, "every connection landed on one loop"
            threads = {e[1] for e in opens}
            assert len(threads) == 2 and threading.get_ident() not in threads
            # Each connection's handlers on its own loop's thread.
            loop_thread = {e[0] % 2: e[1] for e in opens}
            await asyncio.gather(*(c.send(f"hi {k}") for k, c in enumerate(clients)))
            got = await asyncio.gather(*(recv_n(c, n) for c in clients))
            for msgs in got:
                assert sorted(m.split(": ")[1] for m in msgs) == sorted(f"hi {k}" for k in range(n))
            for conn_id, tid in events.wait_count("message", n):
                assert loop_thread[conn_id % 2] == tid
            # From this (foreign) thread too.
            server.broadcast("from the test")
            assert await asyncio.gather(*(asyncio.wait_for(c.recv(), WAIT) for c in clients)) == \
                ["from the test"] * n
        finally:
            await asyncio.gather(*(c.close() for c in clients))

    run_async(scenario())


def test_serve_forever_runs_every_loop_and_stop_closes_all_with_1001(
        make_server: Callable[..., chatws.Server], events: Events) -> None:
    server = make_server(threads=2, on_open=lambda c: events.add("open", c.id))
    done = threading.Event()

    def run() -> None:
        server.serve_forever()
        done.set()

    runner = threading.Thread(target=run)
    runner.start()

    async def scenario() -> None:
        clients = await open_clients(server.url, 16)
        opens = events.wait_count("open", 16)
        assert {e[0] % 2 for e in opens} == {0, 1}
        threading.Thread(target=server.stop).start()  # stop() waits: not on this event loop
        for c in clients:
            with pytest.raises(ConnectionClosed) as info:
                await asyncio.wait_for(c.recv(), WAIT)
            assert info.value.rcvd is not None and info.value.rcvd.code == 1001

    run_async(scenario())
    assert done.wait(WAIT)
    runner.join(WAIT)
    assert server.stopped


def test_chat_room_on_both_loops_delivers_one_order(make_server: Callable[..., chatws.Server]) -> None:
    server = make_server(threads=2, chat=True, max_messages_per_second=float("inf")).start()
    url = server.url.rstrip("/") + "/rooms/py"
    members, each = 16, 10

    async def scenario() -> None:
        clients = [await connect(url, subprotocols=["chatws.v1"]) for _ in range(members)]  # type: ignore[list-item]
        hellos = [json.loads(await asyncio.wait_for(c.recv(), WAIT)) for c in clients]
        assert [h["members"] for h in hellos] == list(range(1, members + 1))
        assert {h["you"] % 2 for h in hellos} == {0, 1}

        async def post(k: int, c: ClientConnection) -> None:
            for i in range(each):
                await c.send(json.dumps({"user": f"u{k}", "text": f"m{i}"}))

        async def read(c: ClientConnection) -> List[int]:
            ids: List[int] = []
            while len(ids) < members * each:
                f = json.loads(await asyncio.wait_for(c.recv(), WAIT))
                if f["type"] == "msg":
                    ids.append(f["id"])
            return ids

        readers = [asyncio.ensure_future(read(c)) for c in clients]
        await asyncio.gather(*(post(k, c) for k, c in enumerate(clients)))
        orders = await asyncio.gather(*readers)
        assert all(o == orders[0] for o in orders)
        assert orders[0] == sorted(orders[0])
        await asyncio.gather(*(c.close() for c in clients))

    run_async(scenario())


def test_poll_and_fileno_need_one_loop(make_server: Callable[..., chatws.Server]) -> None:
    server = make_server(threads=2)
    with pytest.raises(chatws.InvalidState, match="threads=1"):
        server.poll()
    with pytest.raises(chatws.InvalidState, match="threads=1"):
        server.fileno()


def test_asyncio_mode_runs_every_loop_and_async_handlers_on_the_event_loop() -> None:
    # With several loops asyncio mode runs them on threads of their own:
    # plain handlers on their connection's loop thread, coroutines (async
    # handlers, an async on_upgrade) as tasks on the event loop.
    async def scenario() -> None:
        main = threading.get_ident()
        seen: List[tuple] = []

        async def on_upgrade(request: chatws.UpgradeRequest) -> chatws.Accept:
            await asyncio.sleep(0)
            return chatws.Accept(user_data=threading.get_ident())

        def on_open(conn: chatws.Connection) -> None:
            seen.append(("open", conn.id % 2, threading.get_ident(), conn.user_data))

        async def on_message(conn: chatws.Connection, message: chatws.Message) -> None:
            seen.append(("message", conn.id % 2, threading.get_ident(), None))
            await asyncio.sleep(0)
            conn.send(f"async {message}")

        async with chatws.serve(port=0, threads=2, accept_mode="handoff", on_upgrade=on_upgrade,
                                on_open=on_open, on_message=on_message) as server:
            clients = [await connect(server.url) for _ in range(6)]
            try:
                await asyncio.gather(*(c.send(f"m{k}") for k, c in enumerate(clients)))
                assert [await asyncio.wait_for(c.recv(), WAIT) for c in clients] == \
                    [f"async m{k}" for k in range(6)]
            finally:
                await asyncio.gather(*(c.close() for c in clients))
        assert server.closed
        opens = [e for e in seen if e[0] == "open"]
        assert sorted(e[1] for e in opens) == [0, 0, 0, 1, 1, 1]
        loop_threads = {e[2] for e in opens}
        assert len(loop_threads) == 2 and main not in loop_threads  # each loop's thread
        assert {e[3] for e in opens} == {main}  # the async hook ran on the event loop
        assert {e[2] for e in seen if e[0] == "message"} == {main}  # the async handler's body too

    run_async(scenario())


def test_asyncio_serve_forever_with_several_loops_ends_on_stop_and_on_cancel() -> None:
    async def scenario() -> None:
        server = await chatws.serve(port=0, threads=2)
        forever = asyncio.ensure_future(server.serve_forever())
        client = await connect(server.url)
        threading.Thread(target=server.stop).start()  # from any thread
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(client.recv(), WAIT)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
        await asyncio.wait_for(forever, WAIT)  # returned once both loops stopped
        await server.aclose()
        assert server.closed

        server = await chatws.serve(port=0, threads=2)
        forever = asyncio.ensure_future(server.serve_forever())
        client = await connect(server.url)
        forever.cancel()  # a graceful stop, then CancelledError
        with pytest.raises(asyncio.CancelledError):
            await forever
        assert server.closed
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(client.recv(), WAIT)

    run_async(scenario())


@pytest.mark.parametrize("bad", [-1, 257, 1.5, True, "2"])
def test_threads_is_checked(bad: object) -> None:
    with pytest.raises(chatws.InvalidArgument, match="threads"):
        chatws.Server(port=0, threads=bad)  # type: ignore[arg-type]


def test_handoff_hands_each_connection_to_the_loop_with_fewest(
        make_server: Callable[..., chatws.Server], events: Events) -> None:
    server = make_server(threads=2, accept_mode="handoff",
                         on_open=lambda c: events.add("open", c.id),
                         on_message=lambda c, m: c.send(f"echo {m}"))
    server.start()

    async def scenario() -> None:
        # One after another: each upgraded before the next connects, so the
        # split is exact (the kernel's hash, with "reuseport", is not).
        clients = [await connect(server.url) for _ in range(10)]
        try:
            ids = [e[0] for e in events.wait_count("open", 10)]
            assert sorted(i % 2 for i in ids) == [0] * 5 + [1] * 5
            await asyncio.gather(*(c.send(f"m{k}") for k, c in enumerate(clients)))
            assert [await asyncio.wait_for(c.recv(), WAIT) for c in clients] == [f"echo m{k}" for k in range(10)]
        finally:
            await asyncio.gather(*(c.close() for c in clients))

    run_async(scenario())


def test_a_bad_accept_mode_is_refused(make_server: Callable[..., chatws.Server]) -> None:
    with pytest.raises(chatws.InvalidArgument, match="accept_mode must be 'reuseport' or 'handoff'"):
        make_server(threads=2, accept_mode="round-robin")
