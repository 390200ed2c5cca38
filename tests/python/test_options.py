"""Options that reach the engine through the binding: a small socket send
buffer still carries large messages; bad values are refused up front."""

from __future__ import annotations

from typing import Callable

import pytest
import websocket  # websocket-client

import chatws

from conftest import WAIT


def test_small_socket_send_buffer_still_delivers_large_messages(
    make_server: Callable[..., chatws.Server],
) -> None:
    server = make_server(socket_send_buffer=4096, max_message_size=4 << 20)

    @server.on_message
    def echo(conn: chatws.Connection, message: chatws.Message) -> None:
        conn.send(message)

    server.start()
    ws = websocket.create_connection(server.url, timeout=WAIT)
    try:
        payload = bytes(range(256)) * 4096  # 1 MiB through a 4 KiB kernel buffer
        ws.send_binary(payload)
        assert ws.recv() == payload
    finally:
        ws.close()


@pytest.mark.parametrize("value", [0, -1, 2**31, True, "8k"])
def test_bad_socket_send_buffer_is_refused(value: object) -> None:
    with pytest.raises(chatws.InvalidArgument):
        chatws.Server(port=0, socket_send_buffer=value)  # type: ignore[arg-type]
