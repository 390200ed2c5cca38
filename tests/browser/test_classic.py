"""A page forced to the classic "json" subprotocol renders full snapshots."""

import json

from websockets.sync.client import connect

DELIVERY_TIMEOUT_S = 1.0


def classic_client(server):
    ws = connect(f"ws://127.0.0.1:{server.port}/", subprotocols=["json"], open_timeout=5)
    assert ws.subprotocol == "json"
    return ws


def next_snapshot(ws) -> list[dict]:
    frame = json.loads(ws.recv(timeout=5))
    assert "msg" in frame, frame
    return frame["msg"]


def test_classic_snapshot_is_rendered(open_page, chat_server):
    sent = [("dave", "first classic"), ("erin", "second classic"), ("dave", "third classic")]
    with classic_client(chat_server) as raw:
        next_snapshot(raw)  # the join snapshot
        for user, text in sent:
            raw.send(json.dumps({"user": user, "text": text}))
            assert next_snapshot(raw)[0]["text"] == text  # newest first

        page = open_page(0, proto="json")
        assert page.protocol() == "json"
        assert page.member_count() is None  # the classic format has no presence
        # Snapshots are newest first; the page shows oldest at the top.
        assert [(m["user"], m["text"]) for m in page.messages()] == sent
        assert all(m["time"] for m in page.messages())

        # A message from the page reaches the classic client...
        page.set_name("frank")
        page.send("from the classic page")
        snapshot = next_snapshot(raw)
        assert (snapshot[0]["user"], snapshot[0]["text"]) == ("frank", "from the classic page")
        # ...and the next snapshot replaces the page's list, without duplicates.
        raw.send(json.dumps({"user": "dave", "text": "fourth classic"}))
        page.wait_text("fourth classic", DELIVERY_TIMEOUT_S)
        assert page.texts() == [t for _, t in sent] + ["from the classic page", "fourth classic"]
