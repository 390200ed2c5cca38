"""permessage-deflate (RFC 7692) with real clients: the `websockets` client
(which offers it by default) and raw sockets for the wire-level checks."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct
import zlib
from typing import Callable, List, Optional, Tuple

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedError

import chatws

from conftest import WAIT, Events, run_async

CHAT_LINE = '{"user": "alice", "text": "%s"}' % ("the quick brown fox jumps over the lazy dog " * 4)


def echo(make_server: Callable[..., chatws.Server], **kwargs) -> chatws.Server:
    server = make_server(**kwargs)

    @server.on_message
    def back(conn: chatws.Connection, message: chatws.Message) -> None:
        conn.send(message)

    return server.start()


# --------------------------------------------------------------- raw socket

class RawClient:
    """A client speaking the wire by hand: the handshake with a chosen
    Sec-WebSocket-Extensions offer, masked frames with chosen RSV bits."""

    def __init__(self, port: int, extensions: Optional[str]) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        key = base64.b64encode(os.urandom(16)).decode()
        head = (f"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n")
        if extensions is not None:
            head += f"Sec-WebSocket-Extensions: {extensions}\r\n"
        self.sock.sendall((head + "\r\n").encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            assert chunk, "closed during the handshake"
            self.buf += chunk
        raw, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = raw.decode().split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {k.lower(): v for k, v in (l.split(": ", 1) for l in lines[1:])}

    def send(self, opcode: int, payload: bytes, rsv1: bool = False, fin: bool = True) -> None:
        b0 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
        n = len(payload)
        if n < 126:
            hdr = struct.pack("!BB", b0, 0x80 | n)
        elif n < 65536:
            hdr = struct.pack("!BBH", b0, 0x80 | 126, n)
        else:
            hdr = struct.pack("!BBQ", b0, 0x80 | 127, n)
        mask = os.urandom(4)
        masked = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
        self.sock.sendall(hdr + mask + masked)

    def _read(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def frame(self) -> Tuple[int, bool, bytes]:
        """(opcode, rsv1, payload) of the next frame."""
        b0, b1 = self._read(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._read(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._read(8))[0]
        return b0 & 0x0F, bool(b0 & 0x40), self._read(n)

    def close_code(self) -> int:
        while True:
            op, _, payload = self.frame()
            if op == 8:
                return struct.unpack("!H", payload[:2])[0]

    def close(self) -> None:
        self.sock.close()


def deflate(data: bytes) -> bytes:
    c = zlib.compressobj(wbits=-15)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def inflate(data: bytes) -> bytes:
    return zlib.decompressobj(wbits=-15).decompress(data + b"\x00\x00\xff\xff")


# -------------------------------------------------------------------- tests

def test_websockets_client_negotiates_shared_mode_and_round_trips(
        make_server: Callable[..., chatws.Server]) -> None:
    server = echo(make_server, max_message_size=4 << 20)

    async def scenario() -> None:
        async with connect(server.url, max_size=None) as ws:
            assert ws.response.headers["Sec-WebSocket-Extensions"] == (
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
                "client_max_window_bits=15")
            for n in (0, 1, 127, 128, 1000, 70000, 2 << 20):
                text = (CHAT_LINE * (n // len(CHAT_LINE) + 1))[:n]
                await ws.send(text)
                assert await asyncio.wait_for(ws.recv(), WAIT) == text
                data = os.urandom(n // 2) + bytes(n - n // 2)
                await ws.send(data)
                assert await asyncio.wait_for(ws.recv(), WAIT) == data

    run_async(scenario())
    st = server.stats()
    assert st.deflate_calls > 0 and st.deflate_bytes_out < st.deflate_bytes_in
    assert st.inflate_bytes_in > 0 and st.inflate_bytes_out > st.inflate_bytes_in


def test_dedicated_mode_keeps_context_both_ways(make_server: Callable[..., chatws.Server]) -> None:
    server = echo(make_server, compression="dedicated", compression_window_bits=10)

    async def scenario() -> None:
        async with connect(server.url, max_size=None) as ws:
            # The client keeps its context (no client_no_context_takeover) and
            # is asked for a 1 KiB window.
            assert ws.response.headers["Sec-WebSocket-Extensions"] == (
                "permessage-deflate; client_max_window_bits=10")
            for i in range(50):
                await ws.send(CHAT_LINE + str(i))
                assert await asyncio.wait_for(ws.recv(), WAIT) == CHAT_LINE + str(i)

    run_async(scenario())
    st = server.stats()
    # Context takeover: the repeated line costs far less than the first one.
    assert st.deflate_calls == 50
    assert st.deflate_bytes_out * 5 < st.deflate_bytes_in


def test_off_does_not_negotiate(make_server: Callable[..., chatws.Server]) -> None:
    server = echo(make_server, compression="off")
    c = RawClient(server.port, "permessage-deflate")
    try:
        assert c.status == 101
        assert "sec-websocket-extensions" not in c.headers
        # RSV1 is then a protocol error.
        c.send(1, deflate(CHAT_LINE.encode()), rsv1=True)
        assert c.close_code() == 1002
    finally:
        c.close()


def test_rsv1_without_negotiation_closes_1002(make_server: Callable[..., chatws.Server]) -> None:
    server = echo(make_server)
    c = RawClient(server.port, None)
    try:
        assert "sec-websocket-extensions" not in c.headers
        c.send(1, deflate(b"hello"), rsv1=True)
        assert c.close_code() == 1002
    finally:
        c.close()


def test_threshold_and_incompressible_frames_go_out_plain(
        make_server: Callable[..., chatws.Server]) -> None:
    server = echo(make_server, compression_threshold=64)
    c = RawClient(server.port, "permessage-deflate")
    try:
        assert c.headers["sec-websocket-extensions"].startswith("permessage-deflate")
        small = b"x" * 63
        c.send(1, small)
        assert c.frame() == (1, False, small)
        big = b"y" * 64
        c.send(1, big)
        op, rsv1, payload = c.frame()
        assert (op, rsv1) == (1, True) and inflate(payload) == big and len(payload) < 64
        noise = os.urandom(4000)
        c.send(2, deflate(noise), rsv1=True)  # a compressed message in, the echo plain
        assert c.frame() == (2, False, noise)
    finally:
        c.close()


def test_bomb_closes_1009_at_the_limit(make_server: Callable[..., chatws.Server]) -> None:
    server = echo(make_server, max_message_size=1 << 20)
    c = RawClient(server.port, "permessage-deflate")
    try:
        # 64 MiB of zeros in about 64 KiB, well under the limit on the wire.
        bomb = deflate(bytes(64 << 20))
        assert len(bomb) < (1 << 20)
        c.send(2, bomb, rsv1=True)
        assert c.close_code() == 1009
    finally:
        c.close()
    # Fragmented, the same.
    c = RawClient(server.port, "permessage-deflate")
    try:
        bomb = deflate(bytes(8 << 20))
        parts = [bomb[i:i + 1000] for i in range(0, len(bomb), 1000)]
        for i, part in enumerate(parts):
            c.send(2 if i == 0 else 0, part, rsv1=i == 0, fin=i == len(parts) - 1)
        assert c.close_code() == 1009
    finally:
        c.close()


def test_bad_deflate_data_closes_1007(make_server: Callable[..., chatws.Server]) -> None:
    server = echo(make_server)
    c = RawClient(server.port, "permessage-deflate")
    try:
        c.send(1, b"\xff\xff\xff\xff", rsv1=True)
        assert c.close_code() == 1007
    finally:
        c.close()


def test_malformed_extensions_header_is_400(make_server: Callable[..., chatws.Server]) -> None:
    server = echo(make_server)
    c = RawClient(server.port, "permessage-deflate; =")
    try:
        assert c.status == 400
    finally:
        c.close()


def test_broadcast_to_1000_shared_connections_deflates_once(
        make_server: Callable[..., chatws.Server], events: Events) -> None:
    n = 1000
    server = make_server(on_open=lambda c: events.add("open", c), max_connections=2 * n).start()
    line = CHAT_LINE * 3

    async def scenario() -> None:
        clients: List = []
        try:
            for i in range(0, n, 100):
                clients += await asyncio.gather(*(connect(server.url) for _ in range(100)))
            events.wait_count("open", n)
            before = server.stats()
            server.broadcast(line)
            got = await asyncio.gather(*(asyncio.wait_for(c.recv(), WAIT) for c in clients))
            assert got == [line] * n
            after = server.stats()
            assert after.deflate_calls - before.deflate_calls == 1
            assert after.compressed_messages_sent - before.compressed_messages_sent == n
        finally:
            await asyncio.gather(*(c.close() for c in clients))

    run_async(scenario(), timeout=120)


def test_chat_over_compression(make_server: Callable[..., chatws.Server]) -> None:
    import json
    server = make_server(chat=True).start()

    async def scenario() -> None:
        async with connect(server.url, subprotocols=["chatws.v1"]) as a, \
                connect(server.url, subprotocols=["json"]) as b:
            assert "permessage-deflate" in a.response.headers["Sec-WebSocket-Extensions"]
            json.loads(await asyncio.wait_for(a.recv(), WAIT))  # hello
            json.loads(await asyncio.wait_for(b.recv(), WAIT))  # history snapshot
            text = "compressed chat " * 20
            await a.send(json.dumps({"user": "alice", "text": text}))
            while True:
                ev = json.loads(await asyncio.wait_for(a.recv(), WAIT))
                if ev.get("type") == "msg":
                    assert ev["text"] == text
                    break
            snap = json.loads(await asyncio.wait_for(b.recv(), WAIT))
            assert snap["msg"][0]["text"] == text

    run_async(scenario())
    assert server.stats().compressed_messages_sent >= 2


@pytest.mark.parametrize("kwargs", [
    {"compression": "gzip"},
    {"compression_window_bits": 8},
    {"compression_window_bits": 16},
    {"compression_mem_level": 0},
    {"compression_mem_level": 10},
    {"compression_threshold": 0},
])
def test_invalid_compression_options(kwargs) -> None:
    with pytest.raises(chatws.InvalidArgument):
        chatws.Server(port=0, **kwargs)


def test_dedicated_mode_survives_dropped_messages(make_server: Callable[..., chatws.Server],
                                                  events: Events) -> None:
    # A reader too slow for the sender under the drop policy: messages
    # deflated with its own context are dropped; the ones that get through
    # must still inflate (the context starts afresh after a drop).
    lines = [f"{i:05d} " + CHAT_LINE for i in range(3000)]
    END = "end " + lines[-1]
    server = make_server(compression="dedicated", slow_consumer_policy="drop",
                         max_output_buffer=16384, socket_send_buffer=4096)

    @server.on_message
    def burst(conn: chatws.Connection, message: chatws.Message) -> None:
        dropped = 0
        for line in lines:  # on the loop thread: a drop raises here
            try:
                conn.send(line)
            except chatws.QueueFull:
                dropped += 1
        events.add("dropped", dropped)

    @server.on_drain
    def drained(conn: chatws.Connection) -> None:
        if events.of("dropped") and not events.of("end"):
            events.add("end")
            # Compressed, and most like the last (dropped) line: a stream
            # that still held the dropped lines would point into them.
            conn.send(END)

    server.start()

    async def scenario() -> None:
        async with connect(server.url, max_size=None, max_queue=4) as ws:
            await ws.send("go")
            got = []
            while not (m := await asyncio.wait_for(ws.recv(), WAIT)).startswith("end "):
                got.append(m)
            assert m == END, "the message after the drops did not inflate to what was sent"
            (dropped,), = events.of("dropped")
            assert dropped > 0, "the reader was never slow enough: nothing was dropped"
            assert len(got) == len(lines) - dropped
            assert all(g in lines for g in got) and got == sorted(got)

    run_async(scenario())
