"""serve_forever/start/stop/close, Ctrl-C, the GIL, and resource leaks."""

from __future__ import annotations

import gc
import select
import signal
import sys
import threading
import time
import weakref
from typing import Callable, List

import pytest
import websocket  # websocket-client

import chatws

from conftest import WAIT, Child, Events, fd_count


def test_stop_from_another_thread_ends_serve_forever(make_server: Callable[..., chatws.Server],
                                                     events: Events) -> None:
    server = make_server(on_open=lambda c: events.add("open"))
    done = threading.Event()

    def serve() -> None:
        server.serve_forever()
        done.set()

    loop_thread = threading.Thread(target=serve)
    loop_thread.start()
    ws = websocket.create_connection(server.url, timeout=WAIT)  # proves the loop runs
    events.wait_count("open", 1)
    assert server.running
    # The client answers the server's close frame only when it reads.
    closer = threading.Thread(target=lambda: (ws.recv_data(control_frame=True), ws.close()))
    closer.start()
    server.stop()  # from the main thread; waits for the loop to return
    assert done.wait(WAIT)
    loop_thread.join(WAIT)
    closer.join(WAIT)
    assert not loop_thread.is_alive() and server.stopped and not server.running


def test_stop_from_a_handler(make_server: Callable[..., chatws.Server]) -> None:
    server = make_server(drain_timeout=1.0)
    server.on_message = lambda conn, msg: server.stop()
    done = threading.Event()
    runner = threading.Thread(target=lambda: (server.serve_forever(), done.set()))
    runner.start()
    ws = websocket.create_connection(server.url, timeout=WAIT)
    ws.send("stop please")
    opcode, frame = ws.recv_data(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_CLOSE and int.from_bytes(frame[:2], "big") == 1001
    ws.close()
    assert done.wait(WAIT)
    runner.join(WAIT)


def test_close_from_a_handler_closes_after_the_loop(make_server: Callable[..., chatws.Server]) -> None:
    server = make_server(drain_timeout=1.0)
    server.on_message = lambda conn, msg: server.close()
    server.start()
    ws = websocket.create_connection(server.url, timeout=WAIT)
    ws.send("close please")
    opcode, _ = ws.recv_data(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_CLOSE
    ws.close()
    thread = server._runner.thread
    assert thread is not None
    thread.join(WAIT)
    assert server.closed


def test_start_twice_is_refused(make_server: Callable[..., chatws.Server]) -> None:
    server = make_server().start()
    with pytest.raises(chatws.InvalidState):
        server.start()
    with pytest.raises(chatws.InvalidState):
        server.serve_forever()
    server.stop()
    assert not server.running


SERVE_SCRIPT = """
import chatws, sys
server = chatws.Server(port=0)
print("listening", server.port, flush=True)
server.serve_forever()
"""


def test_sigint_raises_keyboard_interrupt_promptly_in_a_subprocess(child: Callable[..., Child]) -> None:
    proc = child("-c", SERVE_SCRIPT)
    port = int(proc.wait_line(r"listening (\d+)").group(1))
    # A completed handshake proves the loop is running (and idle) in serve_forever.
    ws = websocket.create_connection(f"ws://127.0.0.1:{port}/", timeout=WAIT)
    start = time.monotonic()
    proc.signal(signal.SIGINT)
    code, _, err = proc.finish()
    elapsed = time.monotonic() - start
    ws.sock.close()
    assert code != 0
    assert "KeyboardInterrupt" in err and "serve_forever" in err
    assert elapsed < 3.0, elapsed  # typically ~0.1 s: one loop slice (plus interpreter exit)


def test_sigint_in_process_interrupts_serve_forever_within_a_slice(make_server: Callable[..., chatws.Server],
                                                                  events: Events) -> None:
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals are delivered to the main thread only")
    server = make_server(on_open=lambda c: events.add("open"))
    sent_at: List[float] = []

    def interrupt() -> None:
        ws = websocket.create_connection(server.url, timeout=WAIT)
        events.wait_count("open", 1)  # serve_forever is running on the main thread
        sent_at.append(time.monotonic())
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)
        ws.sock.close()

    helper = threading.Thread(target=interrupt)
    helper.start()
    with pytest.raises(KeyboardInterrupt):
        server.serve_forever()
    interrupted_at = time.monotonic()
    helper.join(WAIT)
    assert sent_at and interrupted_at - sent_at[0] < 1.0, interrupted_at - sent_at[0]
    assert not server.running
    server.close()


def test_keyboard_interrupt_raised_inside_a_handler_propagates(make_server: Callable[..., chatws.Server]) -> None:
    server = make_server()

    @server.on_message
    def interrupt(conn: chatws.Connection, msg: chatws.Message) -> None:
        raise KeyboardInterrupt

    helper = threading.Thread(target=lambda: websocket.create_connection(server.url, timeout=WAIT).send("x"))
    helper.start()
    with pytest.raises(KeyboardInterrupt):
        server.serve_forever()
    helper.join(WAIT)


def test_the_gil_is_released_while_the_loop_runs(make_server: Callable[..., chatws.Server]) -> None:
    # The loop thread waits in epoll; if it held the GIL this thread could not
    # make progress at all.
    server = make_server(on_message=lambda c, m: c.send(m)).start()
    ws = websocket.create_connection(server.url, timeout=WAIT)
    counter = 0
    deadline = time.monotonic() + WAIT
    while counter < 200_000 and time.monotonic() < deadline:
        counter += 1
    assert counter == 200_000
    # And the server is busy serving meanwhile.
    for i in range(50):
        ws.send(str(i))
        assert ws.recv() == str(i)
    ws.close()


def test_other_threads_run_while_a_handler_waits_for_io(make_server: Callable[..., chatws.Server]) -> None:
    # A handler that blocks on a lock without the GIL (threading primitives
    # release it) must not stall other Python threads.
    gate = threading.Event()
    progressed = threading.Event()
    server = make_server()

    @server.on_message
    def wait_for_gate(conn: chatws.Connection, msg: chatws.Message) -> None:
        assert gate.wait(WAIT)
        conn.send("released")

    server.start()
    ws = websocket.create_connection(server.url, timeout=WAIT)
    ws.send("hold")
    worker = threading.Thread(target=lambda: (sum(range(10000)), progressed.set()))
    worker.start()
    assert progressed.wait(WAIT)
    gate.set()
    assert ws.recv() == "released"
    ws.close()
    worker.join(WAIT)


def test_no_leaks_after_100_start_stop_cycles() -> None:
    def cycle(i: int) -> "weakref.ReferenceType[chatws.Server]":
        with chatws.Server(port=0, on_message=lambda c, m: c.send(m)) as server:
            server.start()
            if i % 10 == 0:  # some cycles with a live client too
                ws = websocket.create_connection(server.url, timeout=WAIT)
                ws.send("x")
                assert ws.recv() == "x"
                ws.close()
            server.stop()
            return weakref.ref(server)

    cycle(0)  # warm up lazily created resources (imports, thread pools)
    gc.collect()
    fds_before = fd_count()
    threads_before = threading.active_count()
    refs = [cycle(i) for i in range(100)]
    gc.collect()
    assert fd_count() == fds_before
    assert threading.active_count() == threads_before
    assert all(r() is None for r in refs)


def test_no_leaks_when_servers_are_just_dropped() -> None:
    gc.collect()
    fds_before = fd_count()
    refs = []
    for _ in range(100):
        server = chatws.Server(port=0)
        server.on_message = lambda c, m: server.broadcast(m)  # noqa: B023 - a cycle on purpose
        refs.append(weakref.ref(server))
        del server
    gc.collect()
    assert all(r() is None for r in refs)
    assert fd_count() == fds_before


@pytest.mark.skipif(sys.platform != "linux", reason="/proc and epoll")
def test_fileno_and_manual_poll(make_server: Callable[..., chatws.Server], events: Events) -> None:
    import selectors

    server = make_server(on_message=lambda c, m: c.send(m), on_open=lambda c: events.add("open"))
    result: List[str] = []

    def client() -> None:
        ws = websocket.create_connection(server.url, timeout=WAIT)
        ws.send("manual")
        result.append(ws.recv())
        ws.close()

    t = threading.Thread(target=client)
    t.start()
    deadline = time.monotonic() + WAIT
    with selectors.DefaultSelector() as sel:
        sel.register(server.fileno(), selectors.EVENT_READ)
        while t.is_alive() and time.monotonic() < deadline:
            for _ in sel.select(0.1):
                assert server.poll(0)
    t.join(WAIT)
    assert result == ["manual"]


@pytest.mark.skipif(sys.platform != "linux", reason="epoll")
def test_manual_poll_host_is_woken_for_output_queued_between_polls(
        make_server: Callable[..., chatws.Server]) -> None:
    # A host loop that polls only when fileno() is readable, sending between
    # polls (asyncio code outside a handler does this): the fd must turn
    # readable at once, and stay so until a fan-out larger than one
    # iteration's share is written, not wait for the engine's timer tick.
    server = make_server()
    clients: List[websocket.WebSocket] = []

    def connect() -> None:
        for _ in range(40):
            clients.append(websocket.create_connection(server.url, timeout=WAIT))

    t = threading.Thread(target=connect)
    t.start()
    deadline = time.monotonic() + WAIT
    while (t.is_alive() or len(server.connections) < 40) and time.monotonic() < deadline:
        server.poll(0.01)
    t.join(WAIT)
    assert len(server.connections) == 40
    server.poll(0)

    server.broadcast("between polls")
    iterations = 0
    while select.select([server], [], [], 0)[0]:
        assert server.poll(0)
        iterations += 1
        assert iterations < 20
    assert iterations >= 2  # woken by the broadcast, then for the rest of the list
    for ws in clients:
        assert ws.recv() == "between polls"
        ws.sock.close()  # no one polls now to answer a close handshake
