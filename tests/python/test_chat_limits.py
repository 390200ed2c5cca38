"""Chat limits from Python with a real client (the websockets library):
max_rooms (503 at the upgrade, QueueFull from post_chat), the history file
kept at history_size rows per room, and the user-name rule."""

from __future__ import annotations

import json
import sqlite3
import signal
from pathlib import Path
from typing import Callable

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

import chatws

from conftest import WAIT, Child


def room_url(server: chatws.Server, room: str) -> str:
    return server.url.rstrip("/") + "/rooms/" + room


def rows(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT count(*) FROM messages").fetchone()[0])


def test_max_rooms_refuses_new_rooms(make_server: Callable[..., chatws.Server], tmp_path: Path) -> None:
    server = make_server(chat=True, history_path=tmp_path / "h.db", max_rooms=2)
    # No loop runs yet: the host may post from here.
    server.post_chat("host", "in a", room="a")
    server.post_chat("host", "in b", room="b")
    with pytest.raises(chatws.QueueFull, match="too many rooms"):
        server.post_chat("host", "in c", room="c")
    server.start()
    with pytest.raises(InvalidStatus) as refused:
        connect(room_url(server, "c"), subprotocols=["json"], open_timeout=WAIT)  # type: ignore[list-item]
    assert refused.value.response.status_code == 503
    assert b"too many rooms" in refused.value.response.body
    with connect(room_url(server, "b"), subprotocols=["json"], open_timeout=WAIT) as ws:  # type: ignore[list-item]
        assert [m["text"] for m in json.loads(ws.recv(timeout=WAIT))["msg"]] == ["in b"]


@pytest.mark.parametrize("name,value", [("max_rooms", 0), ("max_rooms", 2**32), ("max_idle_room_bytes", -1),
                                        ("max_idle_room_bytes", "64M")])
def test_bad_room_limits_are_refused(name: str, value: object) -> None:
    with pytest.raises(chatws.InvalidArgument):
        chatws.Server(port=0, chat=True, **{name: value})  # type: ignore[arg-type]


def test_history_file_keeps_history_size_rows(make_server: Callable[..., chatws.Server], tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    server = make_server(chat=True, history_path=db, history_size=3, max_idle_room_bytes=1 << 20)
    for i in range(100):
        server.post_chat("host", f"m{i}", room="r")
    server.close()
    assert rows(db) == 3


def test_user_names_are_trimmed_and_invisible_ones_refused(make_server: Callable[..., chatws.Server]) -> None:
    server = make_server(chat=True)
    for bad in ("", "   ", "\u0000", "adm\u202ein", "ad\u200bmin", "\ufeff"):
        with pytest.raises(chatws.InvalidArgument):
            server.post_chat(bad, "text")
    server.start()
    with connect(server.url, subprotocols=["chatws.v1"], open_timeout=WAIT) as ws:  # type: ignore[list-item]
        assert json.loads(ws.recv(timeout=WAIT))["type"] == "hello"
        ws.send(json.dumps({"user": "\u2067evil\u2069", "text": "x"}))
        assert json.loads(ws.recv(timeout=WAIT)) == {
            "type": "error", "error": '"user" must not contain bidirectional formatting characters'}
        ws.send(json.dumps({"user": "\u3000 ann\t", "text": " hi "}))
        msg = json.loads(ws.recv(timeout=WAIT))
        assert (msg["type"], msg["user"], msg["text"]) == ("msg", "ann", " hi ")


def test_python_m_chatws_max_rooms(child: Callable[..., Child]) -> None:
    proc = child("-m", "chatws", "--port", "0", "--no-static", "--max-rooms", "1",
                 "--max-idle-room-bytes", "1000000")
    url = proc.wait_line(r"\(WebSocket (ws://127\.0\.0\.1:\d+/)\)").group(1)
    with connect(url + "rooms/one", subprotocols=["json"], open_timeout=WAIT) as ws:  # type: ignore[list-item]
        assert json.loads(ws.recv(timeout=WAIT)) == {"msg": []}
        with pytest.raises(InvalidStatus) as refused:
            connect(url + "rooms/two", subprotocols=["json"], open_timeout=WAIT)  # type: ignore[list-item]
        assert refused.value.response.status_code == 503
    proc.signal(signal.SIGTERM)
    code, _, err = proc.finish()
    assert code == 0, err
