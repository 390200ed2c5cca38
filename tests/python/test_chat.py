"""Chat mode from Python: the classic "json" wire format, the on_chat
moderation hook and host posts."""

from __future__ import annotations

import json
from typing import Any, Callable, Dict, List, Optional

import pytest
import websocket  # websocket-client

import chatws

from conftest import WAIT, Events


def chat_client(server: chatws.Server, path: str = "/") -> websocket.WebSocket:
    ws = websocket.create_connection(server.url.rstrip("/") + path, timeout=WAIT, subprotocols=["json"])
    assert ws.getsubprotocol() == "json"
    return ws


def recv_json(ws: websocket.WebSocket) -> Dict[str, Any]:
    frame = json.loads(ws.recv())
    assert isinstance(frame, dict)
    return frame


def history(ws: websocket.WebSocket) -> List[Dict[str, Any]]:
    frame = recv_json(ws)
    assert "msg" in frame, frame
    return list(frame["msg"])


def send_chat(ws: websocket.WebSocket, user: str, text: str) -> None:
    ws.send(json.dumps({"user": user, "text": text}))


def test_classic_chat_round_trip(make_server: Callable[..., chatws.Server]) -> None:
    server = make_server(chat=True).start()
    alice, bob = chat_client(server), chat_client(server)
    assert history(alice) == [] and history(bob) == []
    send_chat(alice, "alice", "hello bob")
    for ws in (alice, bob):
        (entry,) = history(ws)
        assert (entry["user"], entry["text"]) == ("alice", "hello bob")
        assert isinstance(entry["time"], int) and entry["time"] > 0
    alice.close()
    bob.close()


def test_on_chat_rejects_and_rewrites(make_server: Callable[..., chatws.Server], events: Events) -> None:
    def moderate(conn: Optional[chatws.Connection], msg: chatws.ChatMessage) -> chatws.ChatVerdict:
        events.add("chat", conn, msg)
        if not msg.text.strip():
            return False
        if msg.text == "shout":
            return msg._replace(text="SHOUT")
        if msg.text == "rename":
            return ("mallory", "renamed")
        if msg.text == "plain str":
            return "replaced text"
        return None

    server = make_server(chat=True, on_chat=moderate).start()
    ws = chat_client(server, "/rooms/lobby")
    assert history(ws) == []
    send_chat(ws, "eve", "   ")
    rejected = recv_json(ws)
    assert "error" in rejected and "msg" not in rejected
    ((conn, msg),) = events.wait_count("chat", 1)
    assert isinstance(conn, chatws.Connection) and conn.path == "/rooms/lobby"
    assert msg.room == "lobby" and msg.user == "eve" and msg.time_ms > 0

    send_chat(ws, "eve", "shout")
    assert [(e["user"], e["text"]) for e in history(ws)] == [("eve", "SHOUT")]
    send_chat(ws, "eve", "rename")
    assert [(e["user"], e["text"]) for e in history(ws)][0] == ("mallory", "renamed")
    send_chat(ws, "eve", "plain str")
    assert [(e["user"], e["text"]) for e in history(ws)][0] == ("eve", "replaced text")
    send_chat(ws, "eve", "as is")
    assert [(e["user"], e["text"]) for e in history(ws)] == [
        ("eve", "as is"), ("eve", "replaced text"), ("mallory", "renamed"), ("eve", "SHOUT")]
    ws.close()


def test_failing_or_invalid_hook_rejects(make_server: Callable[..., chatws.Server], events: Events) -> None:
    def moderate(conn: Optional[chatws.Connection], msg: chatws.ChatMessage) -> Any:
        if msg.text == "raise":
            raise RuntimeError("moderator crashed")
        return 42  # not a verdict

    server = make_server(chat=True, on_chat=moderate,
                         on_error=lambda exc, conn: events.add("error", type(exc)))
    server.start()
    ws = chat_client(server)
    assert history(ws) == []
    send_chat(ws, "x", "raise")
    assert "error" in recv_json(ws)
    send_chat(ws, "x", "other")
    assert "error" in recv_json(ws)
    assert events.wait_count("error", 2) == [(RuntimeError,), (TypeError,)]
    ws.close()


def test_rewrite_is_validated_by_the_engine(make_server: Callable[..., chatws.Server]) -> None:
    server = make_server(chat=True, max_text_length=10,
                         on_chat=lambda conn, msg: msg._replace(text=msg.text * 100))
    server.start()
    ws = chat_client(server)
    assert history(ws) == []
    send_chat(ws, "x", "long")
    assert "error" in recv_json(ws)  # the rewrite broke max_text_length
    ws.close()


def test_post_chat_before_the_loop_and_from_a_handler(make_server: Callable[..., chatws.Server]) -> None:
    server = make_server(chat=True, history_size=10)
    server.post_chat("system", "welcome")  # no loop running yet: allowed

    @server.on_open
    def greet(conn: chatws.Connection) -> None:
        server.post_chat("system", f"{conn.id} joined")  # on the loop thread

    server.start()
    ws = chat_client(server)
    seen: List[List[str]] = []
    while not seen or "joined" not in seen[-1][0]:
        seen.append([e["text"] for e in history(ws)])
        assert len(seen) < 5, seen
    assert seen[-1][-1] == "welcome"
    with pytest.raises(chatws.WrongThread):
        server.post_chat("system", "from another thread while the loop runs")
    ws.close()


def test_non_chat_connections_reach_on_message(make_server: Callable[..., chatws.Server]) -> None:
    server = make_server(chat=True, on_message=lambda conn, msg: conn.send(f"plain:{msg}")).start()
    ws = websocket.create_connection(server.url, timeout=WAIT)  # no subprotocol
    assert ws.getsubprotocol() is None
    ws.send("hi")
    assert ws.recv() == "plain:hi"
    ws.close()


def test_history_survives_a_restart(make_server: Callable[..., chatws.Server], tmp_path: Any) -> None:
    db = tmp_path / "history.sqlite3"
    with chatws.Server(port=0, chat=True, history_path=db) as first:
        first.start()
        ws = chat_client(first)
        assert history(ws) == []
        send_chat(ws, "ann", "remember me")
        assert history(ws)[0]["text"] == "remember me"
        ws.close()
    second = make_server(chat=True, history_path=db).start()
    ws = chat_client(second)
    assert [e["text"] for e in history(ws)] == ["remember me"]
    ws.close()


def test_unusable_history_path_raises_storage_error(tmp_path: Any) -> None:
    with pytest.raises(chatws.StorageError):
        chatws.Server(port=0, chat=True, history_path=tmp_path / "missing-dir" / "h.sqlite3")
