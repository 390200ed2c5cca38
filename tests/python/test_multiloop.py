"""Several event loops (threads=2) from Python, with real `websockets`
clients: handlers on the library's loop threads (GIL taken per call), a
broadcast and a chat room spanning both loops, serve_forever()/start()
and a graceful stop, poll()/fileno()/asyncio refused with a clear error."""

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


def test_poll_fileno_and_asyncio_need_one_loop(make_server: Callable[..., chatws.Server]) -> None:
    server = make_server(threads=2)
    with pytest.raises(chatws.InvalidState, match="threads=1"):
        server.poll()
    with pytest.raises(chatws.InvalidState, match="threads=1"):
        server.fileno()

    async def attach() -> None:
        async with chatws.serve(port=0, threads=2):
            pass

    with pytest.raises(chatws.InvalidState, match="asyncio mode"):
        run_async(attach())


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
