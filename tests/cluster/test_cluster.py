"""Several chatws nodes sharing rooms through one real Redis (issue 16).

Nodes are separate processes (Python CLI and the C example), clients real
WebSocket clients speaking chatws.v1; "acknowledged" means the sender got
its own message back, which a node sends only once Redis stored it.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Dict, List

import pytest
import websocket  # websocket-client

from conftest import WAIT, Client, Node, Proxy, Redis, free_port


def ids_and_texts(msgs: List[Dict[str, Any]]) -> List[Any]:
    return [(m["id"], m["text"]) for m in msgs]


def test_unreachable_redis_at_start_fails_naming_the_url() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    proc = subprocess.run([sys.executable, "-m", "chatws", "--port", "0", "--no-static", "--redis", url],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=WAIT)
    assert proc.returncode == 1, proc.stderr
    assert url in proc.stderr and "refused" in proc.stderr, proc.stderr


def test_a_message_posted_on_a_reaches_b_in_the_same_order(nodes: Callable[..., Node],
                                                           clients: Callable[[str], Client]) -> None:
    a, b = nodes("a"), nodes("b", "c")  # the Python CLI and the C example
    on_a, on_b = clients(a.url("order")), clients(b.url("order"))
    other_b = clients(b.url("order"))
    for i in range(50):
        on_a.send("ann", f"m{i}")
    for c in (on_a, on_b, other_b):
        c.wait_until(lambda fs: sum(f["type"] == "msg" for f in fs) >= 50)
    seen = [ids_and_texts(c.msgs()) for c in (on_a, on_b, other_b)]
    assert seen[0] == seen[1] == seen[2]
    assert [t for _, t in seen[0]] == [f"m{i}" for i in range(50)]
    first = seen[0][0][0]
    assert [i for i, _ in seen[0]] == list(range(first, first + 50))  # positions, one by one


def test_history_is_shared_a_new_member_on_b_sees_a_s_messages(nodes: Callable[..., Node],
                                                               clients: Callable[[str], Client]) -> None:
    a, b = nodes("a"), nodes("b")
    poster = clients(a.url("hist"))
    for i in range(3):
        poster.send("ann", f"h{i}")
    poster.wait_until(lambda fs: sum(f["type"] == "msg" for f in fs) >= 3)
    late = clients(b.url("hist"))
    history = late.hello["history"]
    assert [(h["id"], h["text"]) for h in history] == ids_and_texts(poster.msgs())
    # And a message from B reaches A.
    late.send("bob", "from b")
    poster.wait(lambda f: f["type"] == "msg" and f["text"] == "from b")


def test_concurrent_posters_on_three_nodes_give_one_order(nodes: Callable[..., Node],
                                                          clients: Callable[[str], Client]) -> None:
    ns = [nodes("n1"), nodes("n2", "c"), nodes("n3")]
    members = [clients(n.url("busy")) for n in ns for _ in range(2)]
    per_poster = 60

    def post(c: Client, who: str) -> None:
        for i in range(per_poster):
            c.send(who, f"{who}-{i}")

    threads = [threading.Thread(target=post, args=(members[2 * k], f"p{k}")) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
    total = 3 * per_poster
    for c in members:
        c.wait_until(lambda fs: sum(f["type"] == "msg" for f in fs) >= total)
    orders = [ids_and_texts(c.msgs()) for c in members]
    assert all(o == orders[0] for o in orders), "members disagree on the order"
    ids = [i for i, _ in orders[0]]
    assert ids == list(range(ids[0], ids[0] + total))
    for k in range(3):  # each poster's own messages in the order it sent them
        mine = [t for _, t in orders[0] if t.startswith(f"p{k}-")]
        assert mine == [f"p{k}-{i}" for i in range(per_poster)]


def test_redis_restarted_mid_traffic_loses_nothing_acknowledged(redis: Redis, nodes: Callable[..., Node],
                                                               clients: Callable[[str], Client]) -> None:
    a, b = nodes("a"), nodes("b", "c")
    sender, watcher = clients(a.url("outage")), clients(b.url("outage"))
    acked: List[str] = []
    failed = [0]
    restarted = threading.Event()
    after_restart = [0]
    done = threading.Event()

    def post() -> None:
        # Closed loop: each message waits for its answer (its echo, or an
        # error), so every message sent is accounted for. One in flight
        # when Redis dies waits for the reconnect to tell which it was.
        for i in range(100000):
            if after_restart[0] >= 30:
                break
            text = f"s{i}"
            errors_before = len(sender.errors())
            sender.send("ann", text)
            sender.wait_until(lambda fs: any(f["type"] == "msg" and f["text"] == text for f in fs)
                              or sum(f["type"] == "error" for f in fs) > errors_before, 2 * WAIT)
            if any(m["text"] == text for m in sender.msgs()):
                acked.append(text)
                if restarted.is_set():
                    after_restart[0] += 1
            else:
                failed[0] += 1
                if not restarted.is_set():
                    restarted.wait(2 * WAIT)  # refused at once while Redis is away: wait for it
        done.set()

    t = threading.Thread(target=post)
    t.start()
    wait_for(lambda: len(acked) >= 30, "30 acknowledged messages")
    redis.stop()
    a.wait_line(r"cluster: Redis at \S+ unavailable")
    # While Redis is away a sender is told at once, and stays connected.
    probe = clients(a.url("outage"))
    probe.send("bob", "during the outage")
    probe.wait(lambda f: f["type"] == "error" and f["error"] == "storage unavailable")
    redis.start()  # the same directory: the AOF (appendfsync always) brings the streams back
    restarted.set()
    assert done.wait(3 * WAIT), "the sender made no progress after the restart"
    t.join(WAIT)
    assert after_restart[0] >= 30, "the node did not come back"
    print(f"acknowledged {len(acked)}, refused {failed[0]}, {after_restart[0]} after the restart")
    assert set(sender.errors()) <= {"storage unavailable"}
    # Every acknowledged message reaches the other node's member, once, in the same order.
    watcher.wait_until(lambda fs: {f["text"] for f in fs if f["type"] == "msg"} >= set(acked))
    seen_b = ids_and_texts(watcher.msgs())
    seen_a = ids_and_texts(sender.msgs())
    assert len({t for _, t in seen_b}) == len(seen_b), "duplicates on b"
    assert len({t for _, t in seen_a}) == len(seen_a), "duplicates on a"
    assert [i for i, _ in seen_b] == sorted(i for i, _ in seen_b), "b out of order"
    common = min(len(seen_a), len(seen_b))
    assert seen_a[:common] == seen_b[:common]
    assert "during the outage" not in {t for _, t in seen_b}
    # Nothing delivered that was not stored: every delivered message is in Redis.
    stored = redis.command("XLEN", "chatws:{outage}:log").strip()
    assert int(stored) >= len(seen_b)


def wait_for(cond: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)  # progress poll of another process, bounded


def test_a_lost_reply_is_settled_by_reading_the_room_again(redis: Redis, nodes: Callable[..., Node],
                                                          clients: Callable[[str], Client]) -> None:
    proxy = Proxy(redis.port)
    try:
        a = nodes("lossy", url=proxy.url)  # reaches Redis through the proxy
        b = nodes("direct")
        sender, watcher = clients(a.url("lost")), clients(b.url("lost"))
        sender.send("ann", "before")
        sender.wait(lambda f: f["type"] == "msg" and f["text"] == "before")

        # Stored, but the reply never comes back: acknowledged after the reconnect, once.
        proxy.drop_replies = True
        sender.send("ann", "stored-unanswered")
        wait_for(lambda: b"stored-unanswered" in redis.command("XRANGE", "chatws:{lost}:log", "-", "+"),
                 "the append to reach Redis")
        proxy.cut()
        sender.wait(lambda f: f["type"] == "msg" and f["text"] == "stored-unanswered")
        watcher.wait(lambda f: f["type"] == "msg" and f["text"] == "stored-unanswered")
        assert sender.errors() == []

        # Never reached Redis: the sender is told, nobody gets it.
        proxy.drop_requests = True
        sender.send("ann", "never-arrived")
        wait_for(lambda: proxy.dropped_requests > 0, "the append to be sent")
        proxy.cut()
        sender.wait(lambda f: f["type"] == "error")
        assert sender.errors() == ["storage unavailable"]
        sender.send("ann", "after")
        for c in (sender, watcher):
            c.wait(lambda f: f["type"] == "msg" and f["text"] == "after")
        for c in (sender, watcher):
            texts = [m["text"] for m in c.msgs()]
            assert texts == ["before", "stored-unanswered", "after"], texts
        assert "whether stored is known once the room is read again" in a.output()
    finally:
        proxy.close()


def test_classic_members_on_both_nodes_get_snapshots_of_one_history(nodes: Callable[..., Node]) -> None:
    a, b = nodes("a"), nodes("b", "c")
    on_a = websocket.create_connection(a.url("classic"), timeout=WAIT, subprotocols=["json"])
    on_b = websocket.create_connection(b.url("classic"), timeout=WAIT, subprotocols=["json"])
    try:
        assert json.loads(on_a.recv()) == {"msg": []}
        assert json.loads(on_b.recv()) == {"msg": []}
        for i in range(3):
            on_a.send(json.dumps({"user": "old", "text": f"c{i}"}))

        def latest(ws: Any) -> List[str]:
            while True:  # snapshots until the one that has all three (bounded by the timeout)
                texts = [m["text"] for m in json.loads(ws.recv())["msg"]]
                if len(texts) == 3:
                    return texts

        assert latest(on_a) == latest(on_b) == ["c2", "c1", "c0"]  # newest first
    finally:
        on_a.close()
        on_b.close()


def test_a_node_killed_its_clients_recover_on_another(nodes: Callable[..., Node],
                                                      clients: Callable[[str], Client]) -> None:
    a, b = nodes("doomed"), nodes("survivor")
    on_a = clients(a.url("kill"))
    for i in range(5):
        on_a.send("ann", f"k{i}")
    on_a.wait_until(lambda fs: sum(f["type"] == "msg" for f in fs) >= 5)
    a.kill()  # kill -9
    on_a.wait_until(lambda fs: on_a.closed)
    again = clients(b.url("kill"))  # the client comes back through another node
    assert [(h["id"], h["text"]) for h in again.hello["history"]] == ids_and_texts(on_a.msgs())
    again.send("ann", "after the kill")
    again.wait(lambda f: f["type"] == "msg" and f["text"] == "after the kill"
               and f["id"] == on_a.msgs()[-1]["id"] + 1)


def members_now(frames: List[Dict[str, Any]]) -> int:
    """The member count a chatws.v1 client was last told (hello, join, leave)."""
    n = -1
    for f in frames:
        if f["type"] in ("hello", "join", "leave"):
            n = f["members"]
    return n


def test_presence_counts_every_node_and_forgets_a_killed_one(nodes: Callable[..., Node],
                                                             clients: Callable[[str], Client]) -> None:
    a, b = nodes("pa"), nodes("pb", "c")
    a1, a2 = clients(a.url("pres")), clients(a.url("pres"))
    b1 = clients(b.url("pres"))
    for c in (a1, a2, b1):
        c.wait_until(lambda fs: members_now(fs) == 3)
    b2 = clients(b.url("pres"))
    assert b2.hello["members"] in (3, 4)  # ours at once; the others' as last told
    for c in (a1, a2, b1, b2):
        c.wait_until(lambda fs: members_now(fs) == 4)
    b2.close()
    for c in (a1, a2, b1):
        c.wait_until(lambda fs: members_now(fs) == 3)
    a.kill()  # kill -9: its two members leave when its heartbeat expires (10 s) and b counts again
    b1.wait_until(lambda fs: members_now(fs) == 1, 2 * WAIT)


def test_recovery_with_since_on_another_node_and_reset_beyond_the_history(
        nodes: Callable[..., Node], clients: Callable[[str], Client]) -> None:
    a = nodes("ra", "python", "--history-size", "5", "--cluster-retention", "5")
    b = nodes("rb", "c", "--history-size", "5", "--cluster-retention", "5")
    first = clients(a.url("recover"))
    for i in range(3):
        first.send("ann", f"r{i}")
    first.wait_until(lambda fs: sum(f["type"] == "msg" for f in fs) >= 3)
    last = first.msgs()[-1]["id"]
    first.close()
    poster = clients(a.url("recover"))
    for i in range(3, 5):  # what the first client misses while away
        poster.send("bob", f"r{i}")
    poster.wait_until(lambda fs: sum(f["type"] == "msg" for f in fs) >= 2)
    back = clients(b.url("recover") + f"?since={last}")  # reconnects through the other node
    assert back.hello["since"] == last and "reset" not in back.hello
    assert [(h["id"], h["text"]) for h in back.hello["history"]] == [(last + 1, "r3"), (last + 2, "r4")]
    # Older than the history and the retention (5 messages): a reset with the history, not a silent gap.
    for i in range(5, 10):
        poster.send("bob", f"r{i}")
    poster.wait_until(lambda fs: sum(f["type"] == "msg" for f in fs) >= 7)
    stale = clients(b.url("recover") + f"?since={last}")
    assert stale.hello["reset"] is True and "since" not in stale.hello
    assert [h["text"] for h in stale.hello["history"]] == [f"r{i}" for i in range(5, 10)]
    bad = clients(b.url("recover") + "?since=abc")
    assert bad.errors() == ["since must be a message id (digits)"]


@pytest.mark.parametrize("kind", ["python", "c"])
def test_since_older_than_the_history_but_within_the_retention_is_read_from_the_stream(
        kind: str, nodes: Callable[..., Node], clients: Callable[[str], Client]) -> None:
    # history_size 5 (what a node keeps and sends), cluster_retention 12 (what the stream keeps).
    a = nodes(f"wa{kind}", "python", "--history-size", "5", "--cluster-retention", "12")
    b = nodes(f"wb{kind}", kind, "--history-size", "5", "--cluster-retention", "12")
    room = f"window-{kind}"
    first = clients(a.url(room))
    first.send("ann", "w0")
    first.wait_until(lambda fs: sum(f["type"] == "msg" for f in fs) >= 1)
    last = first.msgs()[-1]["id"]
    first.close()
    poster = clients(a.url(room))
    watcher = clients(b.url(room))  # b takes the room's entries live, keeps the last 5
    for i in range(1, 10):  # 9 missed: more than history_size, within the retention
        poster.send("bob", f"w{i}")
    watcher.wait_until(lambda fs: sum(f["type"] == "msg" for f in fs) >= 9)
    back = clients(b.url(room) + f"?since={last}")
    assert back.hello["since"] == last and "reset" not in back.hello
    assert [(h["id"], h["text"]) for h in back.hello["history"]] == [(last + i, f"w{i}") for i in range(1, 10)]
    # Live messages after the hello: each once, in order.
    poster.send("bob", "after")
    back.wait_until(lambda fs: any(f["type"] == "msg" for f in fs))
    assert [(m["id"], m["text"]) for m in back.msgs()] == [(last + 10, "after")]
    # 13 behind: older than the retention: a reset with the history (the last 5).
    for i in range(11, 14):
        poster.send("bob", f"w{i}")
    watcher.wait_until(lambda fs: sum(f["type"] == "msg" for f in fs) >= 13)
    stale = clients(b.url(room) + f"?since={last}")
    assert stale.hello["reset"] is True and "since" not in stale.hello
    assert [h["text"] for h in stale.hello["history"]] == ["w9", "after", "w11", "w12", "w13"]


def post_in_steps(sender: Client, first: int, count: int, step: int = 100) -> None:
    """Posts count messages b<first>... in writes of `step`, each taken by the sender's node
    (its echo) before the next: the sender's node keeps up, whatever the others do."""
    for start in range(first, first + count, step):
        end = min(start + step, first + count)
        sender.send_all_at_once("ann", [f"b{i}" for i in range(start, end)])
        sender.wait(lambda f, last=f"b{end - 1}": f["type"] == "msg" and f["text"] == last)


@pytest.mark.parametrize("kind", ["python", "c"])
def test_a_burst_larger_than_the_retention_reaches_every_member(
        kind: str, redis: Redis, nodes: Callable[..., Node], clients: Callable[[str], Client]) -> None:
    # The stream keeps the last 100 entries and everything a live node has
    # not read yet: a burst of 1500 from one sender is not trimmed before
    # the nodes (the sender's included) took it.
    a = nodes(f"ba{kind}", "python", "--cluster-retention", "100")
    b = nodes(f"bb{kind}", kind, "--cluster-retention", "100")
    room = f"burst-{kind}"
    sender, on_a, on_b = clients(a.url(room)), clients(a.url(room)), clients(b.url(room))
    total = 1500
    # One write: the node reads many messages in one turn, so one append carries hundreds.
    sender.send_all_at_once("ann", [f"b{i}" for i in range(total)])
    for c in (sender, on_a, on_b):
        c.wait_until(lambda fs: sum(f["type"] == "msg" for f in fs) >= total)
    for c in (sender, on_a, on_b):
        assert [m["text"] for m in c.msgs()] == [f"b{i}" for i in range(total)]
        assert [f for f in c.frames if f["type"] == "dropped"] == []
    assert ids_and_texts(on_b.msgs()) == ids_and_texts(on_a.msgs())
    # Once both nodes read it, the appends trim the stream back to about the retention
    # (when positions cross a hundred; approximate: Redis trims whole nodes of 100 entries).
    for step in range(2):
        post_in_steps(sender, total + 100 * step, 100)
        on_b.wait(lambda f, last=f"b{total + 100 * step + 99}": f["type"] == "msg" and f["text"] == last)
    assert int(redis.command("XLEN", f"chatws:{{{room}}}:log").strip()) <= 100 + 3 * 100


def test_a_node_that_stopped_reading_is_told_what_was_trimmed_never_a_silent_hole(
        nodes: Callable[..., Node], clients: Callable[[str], Client]) -> None:
    # retention 10: a live node's position holds the trim up to 64 x 10 = 640 entries behind.
    a = nodes("ta", "python", "--cluster-retention", "10")
    b = nodes("tb", "c", "--cluster-retention", "10")
    sender, watcher = clients(a.url("hole")), clients(b.url("hole"))
    post_in_steps(sender, 0, 5)
    watcher.wait(lambda f: f["type"] == "msg" and f["text"] == "b4")
    b.proc.send_signal(signal.SIGSTOP)  # b reads nothing while a's room runs 1500 ahead
    try:
        post_in_steps(sender, 5, 1500)
    finally:
        b.proc.send_signal(signal.SIGCONT)
    watcher.wait(lambda f: f["type"] == "msg" and f["text"] == "b1504")
    after = watcher.frames[[f.get("text") for f in watcher.frames].index("b4") + 1:]
    dropped = [f for f in after if f["type"] == "dropped"]
    assert len(dropped) == 1, dropped
    assert after[0]["type"] == "dropped", "the notice comes where the hole is, before the messages after it"
    rest = [f for f in after if f["type"] == "msg"]
    # The hole and what follows account for every message, once, in order, ending at the newest.
    print(f"dropped {dropped[0]['count']}, then {len(rest)} from {rest[0]['text']}")
    assert dropped[0]["count"] + len(rest) == 1500
    first = int(rest[0]["text"][1:])
    assert [m["text"] for m in rest] == [f"b{i}" for i in range(first, 1505)]
    assert dropped[0]["count"] == first - 5 >= 1500 - 640 - 100
    assert f"{dropped[0]['count']} message(s) trimmed from the stream before this node read them" in b.output()
    # b reads on, live: no hole after it.
    sender.send("ann", "later")
    watcher.wait(lambda f: f["type"] == "msg" and f["text"] == "later")
    assert watcher.msgs()[-1]["id"] == rest[-1]["id"] + 1


def test_a_dead_node_does_not_hold_the_trim(redis: Redis, nodes: Callable[..., Node],
                                            clients: Callable[[str], Client]) -> None:
    a = nodes("da", "python", "--cluster-retention", "10")
    b = nodes("db", "python", "--cluster-retention", "10")
    sender, watcher = clients(a.url("dead")), clients(b.url("dead"))
    post_in_steps(sender, 0, 5)
    watcher.wait(lambda f: f["type"] == "msg" and f["text"] == "b4")

    def read_positions() -> List[bytes]:
        return redis.command("HGETALL", "chatws:{dead}:read").split()

    wait_for(lambda: b"db" in read_positions(), "b's read position in Redis")
    b.kill()  # kill -9
    # Its heartbeat key would expire within 10 s: gone at once here, as if it had.
    redis.command("DEL", "chatws:node:db")
    post_in_steps(sender, 5, 600)
    assert b"db" not in read_positions()  # forgotten by a's next append
    assert int(redis.command("XLEN", "chatws:{dead}:log").strip()) <= 10 + 2 * 100


def test_a_burst_beyond_what_the_stream_keeps_for_a_lagging_node_is_held_back_not_lost(
        nodes: Callable[..., Node], clients: Callable[[str], Client]) -> None:
    # retention 10: a node 640 entries behind loses the rest to the trim. A sender writing
    # 3000 at once is read only while its node has at most 160 of the room in flight (TCP
    # holds the rest back), so the node never falls that far behind its own sender.
    a = nodes("ha", "python", "--cluster-retention", "10")
    b = nodes("hb", "c", "--cluster-retention", "10")
    sender, on_a, on_b = clients(a.url("held")), clients(a.url("held")), clients(b.url("held"))
    total = 3000
    sender.send_all_at_once("ann", [f"h{i}" for i in range(total)])
    for c in (sender, on_a, on_b):
        c.wait(lambda f: f["type"] == "msg" and f["text"] == f"h{total - 1}")
    for c in (sender, on_a, on_b):
        assert [f for f in c.frames if f["type"] == "dropped"] == []
        assert [m["text"] for m in c.msgs()] == [f"h{i}" for i in range(total)]
    assert "trimmed from the stream" not in a.output() + b.output()


@pytest.mark.parametrize("kind", ["python", "c"])
def test_a_node_that_only_reads_notices_redis_lost_the_stream(
        kind: str, tmp_path, nodes: Callable[..., Node], clients: Callable[[str], Client]) -> None:
    # Redis without persistence, restarted: the room's stream and its
    # positions start again from 1, behind what the reading node took.
    volatile = Redis(tmp_path, aof=False)
    volatile.start()
    try:
        a = nodes("va", "python", url=volatile.url)
        b = nodes("vb", kind, url=volatile.url)
        sender, watcher = clients(a.url("lost")), clients(b.url("lost"))
        post_in_steps(sender, 0, 20, step=10)
        watcher.wait(lambda f: f["type"] == "msg" and f["text"] == "b19")
        volatile.stop()
        volatile.start()
        for node in (a, b):
            node.wait_line(r"connected again to Redis")
        acked: List[str] = []
        for i in range(200):  # bounded: refused ones (a still reconnecting) are sent again
            if len(acked) == 5:
                break
            text = f"after{i}"
            errors_before = len(sender.errors())
            sender.send("ann", text)
            sender.wait_until(lambda fs: any(f["type"] == "msg" and f["text"] == text for f in fs)
                              or len([f for f in fs if f["type"] == "error"]) > errors_before)
            if any(m["text"] == text for m in sender.msgs()):
                acked.append(text)
        assert len(acked) == 5, sender.errors()
        # b only reads the room, and gets every message posted after the loss, in order.
        watcher.wait(lambda f: f["type"] == "msg" and f["text"] == acked[-1])
        after = [m["text"] for m in watcher.msgs() if m["text"].startswith("after")]
        assert after == acked
        assert "its stream went back to position" in b.output()
    finally:
        volatile.stop()


def xrange_calls(redis: Redis) -> int:
    """How many XRANGE (the nodes' reads of a room) Redis has served."""
    for line in redis.command("INFO", "commandstats").decode().splitlines():
        if line.startswith("cmdstat_xrange:"):
            return int(line.split("calls=")[1].split(",")[0])
    return 0


@pytest.mark.parametrize("kind", ["python", "c"])
def test_a_notification_beyond_the_stream_costs_a_read_not_a_read_loop(
        kind: str, redis: Redis, nodes: Callable[..., Node], clients: Callable[[str], Client]) -> None:
    # A notification of a position the stream never reaches (its entries
    # lost with a Redis that kept the channel, or a stray PUBLISH): the node
    # reads to the stream's end once, stops wanting that position, and goes
    # on with the room. Without that it would read the room again and again.
    # (One notification also told while the first read of the stray one was
    # in flight used to be dropped with it: "marker" never reached b.)
    a = nodes("ga", "python")
    b = nodes("gb", kind)
    room = f"gap-{kind}"
    sender, watcher = clients(a.url(room)), clients(b.url(room))

    def post(text: str) -> None:
        sender.send("ann", text)
        watcher.wait(lambda f: f["type"] == "msg" and f["text"] == text)

    post("before")
    redis.command("PUBLISH", "chatws:notify", f"1000000 {room}")
    # Its notification reaches b after the stray one (one subscription, in
    # order): once b delivered it, b has taken the stray one too.
    post("marker")
    reads_before = xrange_calls(redis)
    posts = 20
    for i in range(posts):
        post(f"after{i}")
    # Each post is read back by both nodes, about once each.
    reads = xrange_calls(redis) - reads_before
    assert reads <= 3 * posts, f"{reads} reads of the room for {posts} posts"
    assert [m["text"] for m in watcher.msgs()] == ["before", "marker"] + [f"after{i}" for i in range(posts)]
