"""A client that never reads costs bounded memory, kernel included (issue 12):
100 clients complete the upgrade and never read again while a broadcast
offers each of them 6 MiB (more than the autotuned kernel send buffer, about
4 MiB, plus the 1 MiB output cap). With the default socket_send_buffer the
server-side send queue (`ss -tn` Send-Q, the bytes the kernel holds for the
socket) of each stays within 256 KiB, so that one costs at most
max_output_buffer + 256 KiB. With socket_send_buffer="auto" (the kernel's
autotuning, the 0.1.0 default) the same run leaves megabytes: the test
measures the thing it bounds."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
from typing import Callable, Dict, List

import pytest
import websocket  # websocket-client

import chatws

from conftest import WAIT

NEVER_READERS = 100
MESSAGE = 16384
OFFERED = 6 << 20          # per connection
KERNEL_BOUND = 256 << 10   # the "+ 256 KiB"
WINDOW = 16


def upgrade(port: int) -> socket.socket:
    """A raw client that completes the upgrade, reading exactly the 101's head."""
    s = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        b = s.recv(1)
        assert b, f"closed during the upgrade: {head!r}"
        head += b
    assert head.startswith(b"HTTP/1.1 101"), head
    return s


def server_send_queues(port: int) -> Dict[int, int]:
    """Send-Q of the server's established sockets, by the client's port."""
    out = subprocess.run(["ss", "-tnH", "state", "established", f"( sport = :{port} )"],
                         check=True, stdout=subprocess.PIPE, text=True, timeout=WAIT).stdout
    queues: Dict[int, int] = {}
    for line in out.splitlines():
        recv_q, send_q, _local, peer = line.split()[:4]
        queues[int(peer.rsplit(":", 1)[1])] = int(send_q)
    return queues


def never_reader_queues(make_server: Callable[..., chatws.Server], **kw: object) -> List[int]:
    # Dropped, not closed, over the output cap: each stays connected with its
    # queues full, which is the state whose cost is measured.
    server = make_server(slow_consumer_policy="drop", **kw)
    server.on_message = lambda conn, msg: server.broadcast(msg)
    server.start()
    idle = [upgrade(server.port) for _ in range(NEVER_READERS)]
    pub = websocket.create_connection(server.url, timeout=WAIT)
    try:
        payload = os.urandom(MESSAGE)
        for _ in range(OFFERED // MESSAGE // WINDOW):
            for _ in range(WINDOW):
                pub.send_binary(payload)
            for _ in range(WINDOW):  # broadcasts reach everyone in order, the sender included
                assert pub.recv() == payload
        # The last message came back: the loop has offered every one to every
        # never-reader, whose kernel queue took what it would.
        queues = server_send_queues(server.port)
        ports = {s.getsockname()[1] for s in idle}
        assert ports <= set(queues), "a never-reader is not connected"
        assert server.stats().slow_consumer_drops > 0, "the never-readers' output cap was never reached"
        return [queues[p] for p in ports]
    finally:
        pub.close()
        for s in idle:
            s.close()


def test_never_readers_hold_a_bounded_kernel_queue(make_server: Callable[..., chatws.Server]) -> None:
    queues = never_reader_queues(make_server)
    assert max(queues) <= KERNEL_BOUND, sorted(queues)[-5:]
    assert min(queues) > 0, "a never-reader was sent nothing"


def test_autotuned_send_buffer_is_what_the_default_bounds(make_server: Callable[..., chatws.Server]) -> None:
    # The contrast: the kernel's autotuning lets each hold several times the bound.
    queues = never_reader_queues(make_server, socket_send_buffer="auto")
    assert max(queues) > 2 * KERNEL_BOUND, sorted(queues)[-5:]


@pytest.mark.parametrize("value", [-1, -2])
def test_socket_send_buffer_auto_is_spelled_auto(value: int) -> None:
    with pytest.raises(chatws.InvalidArgument):
        chatws.Server(port=0, socket_send_buffer=value)
