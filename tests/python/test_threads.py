"""Back-pressure (slow consumers) and calls from many threads at once."""

from __future__ import annotations

import threading
from typing import Callable, List

import websocket  # websocket-client

import chatws

from conftest import WAIT, Events

CHUNK = b"x" * 8192


def test_slow_consumer_drop_policy_and_on_drain(make_server: Callable[..., chatws.Server],
                                                events: Events) -> None:
    # A small fixed kernel send buffer: what the kernel takes of the backlog
    # is bounded, so the queue's cap, not autotuned buffers, decides.
    server = make_server(max_output_buffer=256 * 1024, slow_consumer_policy="drop",
                         socket_send_buffer=16 * 1024,
                         on_drain=lambda conn: events.add("drain", conn.id))

    @server.on_message
    def flood(conn: chatws.Connection, msg: chatws.Message) -> None:
        # Queued within one callback while the client does not read: at the
        # cap the queue is written through to the kernel; once the kernel
        # takes no more, the cap drops what follows.
        for i in range(1000):
            try:
                below_soft_limit = conn.send(CHUNK)
            except chatws.QueueFull:
                events.add("full", i, conn.id)
                return
            if not below_soft_limit and not events.of("over"):
                events.add("over", i)

    server.start()
    ws = websocket.create_connection(server.url, timeout=WAIT)
    ws.send("flood")
    ((full_at, conn_id),) = events.wait_count("full", 1)
    ((over_at,),) = events.of("over")
    assert 0 < over_at < full_at
    for _ in range(full_at):  # everything queued arrives, nothing after
        assert ws.recv_data() == (websocket.ABNF.OPCODE_BINARY, CHUNK)
    assert events.wait_count("drain", 1) == [(conn_id,)]
    ws.send("still open")  # the connection survived: dropping is the policy
    ws.close()


def test_slow_consumer_close_policy_closes_with_1008(make_server: Callable[..., chatws.Server],
                                                     events: Events) -> None:
    server = make_server(max_output_buffer=64 * 1024, close_timeout=0.5, socket_send_buffer=16 * 1024,
                         on_close=lambda conn, code, reason: events.add("close", code))

    @server.on_message
    def flood(conn: chatws.Connection, msg: chatws.Message) -> None:
        for _ in range(100):
            try:
                conn.send(CHUNK)
            except chatws.Error:
                return

    server.start()
    ws = websocket.create_connection(server.url, timeout=WAIT)
    ws.send("flood")
    assert events.wait_count("close", 1) == [(1008,)]
    ws.sock.close()


def test_many_threads_sending_while_the_server_closes(make_server: Callable[..., chatws.Server],
                                                      events: Events) -> None:
    # The clients never read: keep the graceful part of close() short.
    server = make_server(drain_timeout=0.5, on_open=lambda c: events.add("open", c)).start()
    clients = [websocket.create_connection(server.url, timeout=WAIT) for _ in range(4)]
    conns = [c for (c,) in events.wait_count("open", 4)]
    unexpected: List[BaseException] = []
    go = threading.Event()
    busy = [threading.Event() for _ in range(8)]

    def hammer(k: int) -> None:
        go.wait(WAIT)
        for i in range(3000):
            try:
                if k % 2:
                    server.broadcast(f"b{k}:{i}")
                else:
                    conns[k % 4].send(f"s{k}:{i}")
                if i == 100:
                    busy[k].set()
            except (chatws.ServerStopped, chatws.ConnectionClosed):
                return
            except BaseException as exc:  # pragma: no cover - the failure being tested
                unexpected.append(exc)
                return

    threads = [threading.Thread(target=hammer, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    go.set()
    for flag in busy:
        assert flag.wait(WAIT)
    server.close()  # while the others keep calling in
    for t in threads:
        t.join(WAIT)
        assert not t.is_alive()
    assert unexpected == []
    assert server.closed and all(c.closed for c in conns)
    for ws in clients:
        ws.sock.close()


def test_concurrent_close_from_several_threads(make_server: Callable[..., chatws.Server]) -> None:
    for _ in range(10):
        # The client does not answer close frames: keep the graceful wait short.
        server = make_server(drain_timeout=0.2).start()
        ws = websocket.create_connection(server.url, timeout=WAIT)
        errors: List[BaseException] = []

        def close() -> None:
            try:
                server.close()
            except BaseException as exc:  # pragma: no cover - the failure being tested
                errors.append(exc)

        closers = [threading.Thread(target=close) for _ in range(4)]
        for t in closers:
            t.start()
        for t in closers:
            t.join(WAIT)
        assert errors == [] and server.closed
        ws.sock.close()
