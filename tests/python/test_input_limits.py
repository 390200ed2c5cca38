"""Limits on client input through the Python API (issue 19): chat
connections are bounded by the longest valid chat message (close 1009 at
the frame header), the server-wide budget of partial input
(``max_buffered_input``, close 1013), and the IPv6 prefix of the
per-address limit (``ipv6_prefix_length``)."""

from __future__ import annotations

import json
import socket
import struct
from typing import Callable

import pytest
import websocket  # websocket-client

import chatws
from chatws.__main__ import build_parser

from conftest import WAIT

KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def raw_client(port: int) -> socket.socket:
    """A raw WebSocket client after its handshake (for partial frames)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
    s.sendall((f"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        assert chunk, "closed during the handshake"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    return s


def partial_frame(opcode: int, length: int, sent: int) -> bytes:
    """A masked frame header announcing `length` bytes (zero mask), then `sent` of them."""
    return bytes([0x80 | opcode, 0x80 | 127]) + struct.pack(">Q", length) + b"\0" * 4 + b"a" * sent


def read_close_code(s: socket.socket) -> int:
    data = b""
    while True:
        while len(data) < 2:
            chunk = s.recv(65536)
            if not chunk:
                return 0
            data += chunk
        op, n = data[0] & 0x0F, data[1] & 0x7F
        hdr = 2 + (2 if n == 126 else 8 if n == 127 else 0)
        while len(data) < hdr:
            data += s.recv(65536)
        if n >= 126:
            n = int.from_bytes(data[2:hdr], "big")
        while len(data) < hdr + n:
            data += s.recv(65536)
        payload, data = data[hdr:hdr + n], data[hdr + n:]
        if op == 0x8:
            return int.from_bytes(payload[:2], "big")


def test_chat_message_over_the_chat_bound_is_closed_1009(make_server: Callable[..., chatws.Server]) -> None:
    server = make_server(chat=True).start()
    ws = websocket.create_connection(server.url + "rooms/lobby", timeout=WAIT, subprotocols=["chatws.v1"])
    try:
        assert json.loads(ws.recv())["type"] == "hello"
        # 100 KB: far below max_message_size (16 MiB), above any chat message.
        ws.send(json.dumps({"user": "u", "text": "x" * 100_000}))
        opcode, frame = ws.recv_data(control_frame=True)
        assert opcode == websocket.ABNF.OPCODE_CLOSE
        assert int.from_bytes(frame[:2], "big") == 1009
    finally:
        ws.close()


def test_partial_input_over_the_budget_is_closed_1013(make_server: Callable[..., chatws.Server]) -> None:
    server = make_server(max_message_size=1 << 20, max_buffered_input=128 * 1024, drain_timeout=0.3)

    @server.on_message
    def echo(conn: chatws.Connection, message: chatws.Message) -> None:
        conn.send(message)

    server.start()
    holder, sync, refused = raw_client(server.port), raw_client(server.port), raw_client(server.port)
    try:
        holder.sendall(partial_frame(2, 100_000, 1000))  # held: 100,000 of 131,072
        ws_sync = bytes([0x81, 0x84, 0, 0, 0, 0]) + b"sync"  # a round trip after it
        sync.sendall(ws_sync)
        assert sync.recv(64)[-4:] == b"sync"
        refused.sendall(partial_frame(2, 100_000, 1000))
        assert read_close_code(refused) == 1013
    finally:
        for s in (holder, sync, refused):
            s.close()


@pytest.mark.parametrize("value", [0, 129, -1, True, "64"])
def test_bad_ipv6_prefix_length_is_refused(value: object) -> None:
    with pytest.raises(chatws.InvalidArgument):
        chatws.Server(port=0, ipv6_prefix_length=value)  # type: ignore[arg-type]


@pytest.mark.parametrize("bits", [1, 48, 64, 128])
def test_ipv6_prefix_lengths_are_accepted(bits: int) -> None:
    with chatws.Server(port=0, max_connections_per_ip=2, ipv6_prefix_length=bits):
        pass


@pytest.mark.parametrize("value", [0, -1, True])
def test_bad_max_buffered_input_is_refused(value: object) -> None:
    with pytest.raises(chatws.InvalidArgument):
        chatws.Server(port=0, max_buffered_input=value)  # type: ignore[arg-type]


def test_cli_flags_for_the_input_limits() -> None:
    args = build_parser().parse_args(["--ipv6-prefix-length", "48", "--max-buffered-input", "1000000"])
    assert args.ipv6_prefix_length == 48
    assert args.max_buffered_input == 1_000_000
