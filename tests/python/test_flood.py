"""Flood control from Python (issue 12): the kwargs reach the C fields; a
chat client over the limit gets the bucket's allowance stored and an error
frame for the first message over it in each refill interval (the rest
waits, unread, for its token); a raw client is closed with 1008 or has its excess
dropped; bad values are refused."""

from __future__ import annotations

import json
import math
import time
from typing import Callable

import pytest
import websocket  # websocket-client

import chatws

from conftest import WAIT


def test_chat_flood_gets_its_allowance_and_errors(make_server: Callable[..., chatws.Server]) -> None:
    rate = 50
    server = make_server(chat=True, max_messages_per_second=rate, message_burst=3).start()
    ws = websocket.create_connection(server.url, timeout=WAIT, subprotocols=["chatws.v1"])
    t0 = time.monotonic()
    for i in range(20):
        ws.send(json.dumps({"user": "f", "text": f"m{i}"}))
    stored = limited = 0
    while stored + limited < 20:
        frame = json.loads(ws.recv())
        if frame.get("type") == "msg":
            stored += 1
        elif frame.get("type") == "error":
            assert frame["error"].startswith("rate limited")
            limited += 1
    elapsed = time.monotonic() - t0
    assert 3 <= stored <= 3 + int(rate * elapsed) + 1
    # One refusal per refill interval: the message after one waits for a token.
    assert limited <= stored - 3 + 1, (stored, limited)
    ws.close()


@pytest.mark.parametrize("policy", ["close", "drop"])
def test_raw_flood(make_server: Callable[..., chatws.Server], policy: str) -> None:
    server = make_server(max_messages_per_second=1, message_burst=2, rate_limit_policy=policy)
    server.on_message = lambda conn, msg: conn.send(msg)
    server.start()
    ws = websocket.create_connection(server.url, timeout=WAIT)
    t0 = time.monotonic()
    for _ in range(10):
        ws.send("x")
    if policy == "drop":
        ws.send_close()
    echoed = 0
    while True:
        opcode, data = ws.recv_data(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_TEXT:
            echoed += 1
        elif opcode == websocket.ABNF.OPCODE_CLOSE:
            code = int.from_bytes(data[:2], "big")
            break
    assert 2 <= echoed <= 2 + int(time.monotonic() - t0) + 1
    assert code == (1008 if policy == "close" else 1000)
    ws.close()


def test_unlimited_and_bad_values(make_server: Callable[..., chatws.Server]) -> None:
    make_server(chat=True, max_messages_per_second=math.inf)
    for bad in (0, -1, 1.5, "10"):
        with pytest.raises(chatws.InvalidArgument):
            make_server(max_messages_per_second=bad)
    with pytest.raises(chatws.InvalidArgument):
        make_server(rate_limit_policy="ignore")


def test_handshake_flood_gets_429(make_server: Callable[..., chatws.Server]) -> None:
    server = make_server(max_handshakes_per_second_per_ip=2).start()
    t0 = time.monotonic()
    answers = []
    for _ in range(8):
        try:
            websocket.create_connection(server.url, timeout=WAIT).close()
            answers.append(101)
        except websocket.WebSocketBadStatusException as exc:
            assert exc.status_code == 429
            assert exc.resp_headers["retry-after"] == "1"
            answers.append(429)
    assert 2 <= answers.count(101) <= 2 + int((time.monotonic() - t0) * 2) + 1
    assert 429 in answers
