"""The checks on what was recorded: losses, gaps, durability, the server's policy closes."""

from __future__ import annotations

import asyncio
import bisect
import json
import re
from pathlib import Path

from websockets.asyncio.client import connect

from .config import V1
from .model import Sent, Soak, room_name
from .client import bisect_contains

# ----------------------------------------------------------------- checks

async def hello_histories(soak: Soak, port: int) -> dict[int, list[dict]]:
    """Each room's hello history (the last N messages), through a fresh v1 client."""
    out = {}
    for room in range(soak.a.rooms + 1):
        async with connect(soak.url(room, port), subprotocols=[V1], proxy=None, compression=None,
                           max_size=None, open_timeout=20, ping_interval=None) as ws:
            out[room] = json.loads(await asyncio.wait_for(ws.recv(), 60))["history"]
    return out


def stored_histories(soak: Soak, db: Path) -> dict[int, list[dict]]:
    """The stored messages of each room, read from the SQLite file (the
    server stopped): the last history_size of each (the store deletes older
    ones), checked like a hello's last N."""
    import sqlite3
    out = {}
    con = sqlite3.connect(db)
    try:
        for room in range(soak.a.rooms + 1):
            rows = con.execute("SELECT id, user, text FROM messages WHERE room = ? ORDER BY id",
                               (room_name(soak, room),)).fetchall()
            out[room] = [dict(id=i, user=u, text=t) for i, u, t in rows]
    finally:
        con.close()
    return out


def check_history(soak: Soak, histories: dict[int, list[dict]], full: bool) -> dict:
    """Checks stored histories against what clients saw: every acknowledged or
    delivered message that belongs there (all of them when `full`, else those
    not older than the hello's oldest entry) must be there,
    intact and once, with contiguous ids."""
    out = dict(rooms=0, stored=0, missing_acked=0, missing_delivered=0, holes=0)
    acked_by_room: dict[int, list[int]] = {}
    for rec in soak.sent.values():
        if rec.t_ack:
            acked_by_room.setdefault(rec.room, []).append(rec.msg_id)
    seen_by_room: dict[int, list[int]] = {}
    for room, msg_id in list(soak.by_id):
        seen_by_room.setdefault(room, []).append(msg_id)
    for room, hist in histories.items():
        ids = [m["id"] for m in hist]
        out["rooms"] += 1
        out["stored"] += len(ids)
        holes = sum(1 for x, y in zip(ids, ids[1:]) if y != x + 1) + (1 if full and ids and ids[0] != 1 else 0)
        if holes:
            soak.stats.problem(f"history of r{room}: ids not contiguous: {ids[:5]}..{ids[-5:]}")
        out["holes"] += holes
        have = set(ids)
        # A hello carries the newest entries that fit a byte budget (a quarter
        # of the output cap), so it may hold fewer than history_size even when
        # older messages exist: from its oldest entry on it must be complete
        # (contiguity is checked above); the audit reads the store in full.
        lo = 1 if full or not ids else ids[0]
        for name, wanted in (("missing_acked", acked_by_room.get(room, [])),
                             ("missing_delivered", seen_by_room.get(room, []))):
            lost = sorted(i for i in wanted if i >= lo and i not in have)
            out[name] += len(lost)
            if lost:
                soak.stats.problem(f"history of {room_name(soak, room)} lacks {name[8:]} ids {lost[:10]}")
        for m in hist:  # checks each stored message is intact and stored once
            soak.observe(room, m["id"], m["user"], m["text"])
    return out


CLOSE_LINE = re.compile(r"close #(\d+) code (\d+)")


def server_policy_closes(soak: Soak, logs: list[Path]) -> dict | None:
    """Who the server closed with 1008, from its log ("close #<id> code <n>",
    the C example's format; None if the log has no such lines), matched to
    sessions through the hello's "you"."""
    who = {sess.conn: sess for sess in soak.sessions}
    out, found = dict(slow=0, well_behaved=0, unknown=0), False
    for index, path in enumerate(logs):
        for line in path.read_text(errors="replace").splitlines():
            m = CLOSE_LINE.search(line)
            if not m:
                continue
            found = True
            if m.group(2) != "1008":
                continue
            sess = who.get((index, int(m.group(1))))
            key = "unknown" if sess is None else "slow" if sess.slow else "well_behaved"
            out[key] += 1
            if key != "slow":
                soak.stats.problem(f"server closed {key} connection #{m.group(1)} with 1008")
    return out if found else None


def check_losses(soak: Soak) -> tuple[int, int, int, int]:
    """(checked, losses, unacked, in_flight_at_kill) for well-behaved senders:
    each acked message must be in every graceful well-behaved session of its
    room that joined before it was sent and left after it was acked."""
    msgs: dict[int, list[Sent]] = {}
    unacked = in_flight = 0
    for rec in soak.sent.values():
        if rec.slow:
            continue
        if rec.t_ack:
            msgs.setdefault(rec.room, []).append(rec)
        elif rec.session.end == "crash":
            in_flight += 1
        elif rec.session.end == "left":  # acked before its bye came back, or lost
            unacked += 1
            soak.stats.problem(f"message of client {rec.session.cid} never acknowledged")
    for lst in msgs.values():
        lst.sort(key=lambda r: r.t_send)
    sends = {room: [r.t_send for r in lst] for room, lst in msgs.items()}
    checked = losses = 0
    for sess in soak.sessions:
        if sess.slow or sess.end != "left" or sess.room not in msgs:
            continue
        lst, times = msgs[sess.room], sends[sess.room]
        for i in range(bisect.bisect_right(times, sess.t_join), len(lst)):
            rec = lst[i]
            if rec.t_send >= sess.t_left:
                break
            if rec.t_ack < sess.t_left:
                checked += 1
                if not bisect_contains(sess.ids, rec.msg_id):
                    losses += 1
                    soak.stats.problem(f"client {sess.cid} in r{sess.room} missed #{rec.msg_id}")
    return checked, losses, unacked, in_flight
