"""A flooder next to 100 normal clients (issue 12), the chat's default rate
limit (20 messages/s, burst 40) on: one client of the room posts 120
messages (three bursts) as fast as it can while 100 others each post 10. Checked, on counts
and order (the rate and latency figures are a benchmark's, in BENCHMARKS.md
"Flood control"):

- every normal client receives every normal message, exactly once, in the
  room's order (contiguous ids): the same 1000 as in a run without the
  flooder, none refused, none lost;
- the flooder gets one answer per message: exactly the bucket's allowance
  stored (the burst, plus what refilled while it sent) and an error frame
  saying "rate limited" for the others, at most one per refill interval
  (after one, its input waits unread for the next token, so the message
  read next is stored); what was stored is what the others received of it.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Dict, List, Tuple

import websockets

import chatws

from conftest import WAIT, run_async

NORMAL = 100
PER_CLIENT = 10          # below the burst: a normal client is never limited
FLOOD = 120            # the burst, then about 2 s of refusals and refills
RATE, BURST = 20, 40     # the chat's documented defaults


async def join(url: str, fresh: bool = True) -> websockets.ClientConnection:
    ws = await websockets.connect(url, subprotocols=["chatws.v1"], max_queue=None,  # type: ignore[list-item]
                                  open_timeout=WAIT, ping_interval=None)
    hello = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
    assert hello["type"] == "hello" and (hello["history"] == [] or not fresh)
    return ws


async def next_msg(ws: websockets.ClientConnection) -> dict:
    """The next message or error frame (presence updates skipped)."""
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), 3 * WAIT))
        if frame["type"] in ("msg", "error"):
            return frame


async def normal_client(ws: websockets.ClientConnection, i: int, sent: asyncio.Event,
                        end: asyncio.Event) -> List[Tuple[int, str, str]]:
    """Posts PER_CLIENT messages, sets `sent` once they came back, then reads
    until the end marker; returns (id, user, text) of every msg received."""
    me = f"n{i}"
    for k in range(PER_CLIENT):
        await ws.send(json.dumps({"user": me, "text": f"{k}"}))
    got: List[Tuple[int, str, str]] = []
    mine = 0
    while True:
        frame = await next_msg(ws)
        assert frame["type"] == "msg", f"{me} was refused: {frame}"
        got.append((frame["id"], frame["user"], frame["text"]))
        if frame["user"] == me:
            mine += 1
            if mine == PER_CLIENT:
                sent.set()
        if frame["user"] == "end":
            return got


async def flooder(url: str) -> Tuple[List[str], int, float]:
    """Sends FLOOD messages at full speed while reading every answer; returns
    the texts stored (echoed to it), the error count, and the time from the
    first send to the last answer."""
    ws = await join(url, fresh=False)  # the normal clients may have posted already
    stored: List[str] = []
    errors = 0

    async def send_all() -> None:
        for k in range(FLOOD):
            await ws.send(json.dumps({"user": "flood", "text": f"{k}"}))

    t0 = time.monotonic()
    sender = asyncio.create_task(send_all())
    while len(stored) + errors < FLOOD:
        frame = await next_msg(ws)
        if frame["type"] == "msg":
            if frame["user"] == "flood":
                stored.append(frame["text"])
        else:
            assert frame["error"].startswith("rate limited"), frame
            errors += 1
    elapsed = time.monotonic() - t0
    await sender
    await ws.close()
    return stored, errors, elapsed


async def scenario(url: str, with_flooder: bool) -> Dict[str, object]:
    clients = [await join(url) for _ in range(NORMAL)]
    sent = [asyncio.Event() for _ in clients]
    end = asyncio.Event()
    flood_task = asyncio.create_task(flooder(url)) if with_flooder else None
    readers = [asyncio.create_task(normal_client(ws, i, sent[i], end)) for i, ws in enumerate(clients)]
    for e in sent:
        await asyncio.wait_for(e.wait(), 6 * WAIT)
    result: Dict[str, object] = {}
    if flood_task is not None:
        result["flood"] = await asyncio.wait_for(flood_task, 6 * WAIT)
    # Everything posted has been stored: one end marker closes the round.
    marker = await join(url, fresh=False)
    await marker.send(json.dumps({"user": "end", "text": "end"}))
    got = [await asyncio.wait_for(r, 6 * WAIT) for r in readers]
    for ws in clients + [marker]:
        await ws.close()
    result["got"] = got
    return result


def check_normal_deliveries(got: List[List[Tuple[int, str, str]]], flood_texts: List[str]) -> None:
    for received in got:
        ids = [i for i, _, _ in received]
        assert ids == list(range(ids[0], ids[0] + len(ids))), "a gap or a reordering in the room"
        normal = [(u, t) for _, u, t in received if u.startswith("n")]
        assert len(normal) == NORMAL * PER_CLIENT
        for n in range(NORMAL):  # each sender's messages, in its order, exactly once
            assert [t for u, t in normal if u == f"n{n}"] == [str(k) for k in range(PER_CLIENT)]
        assert [t for _, u, t in received if u == "flood"] == flood_texts
        assert received[-1][1] == "end"


def test_flooder_next_to_100_normal_clients(make_server) -> None:  # type: ignore[no-untyped-def]
    server = make_server(chat=True).start()  # the default rate limit

    quiet = run_async(scenario(server.url + "rooms/quiet", with_flooder=False), timeout=12 * WAIT)
    check_normal_deliveries(quiet["got"], [])  # type: ignore[arg-type]

    flooded = run_async(scenario(server.url + "rooms/flooded", with_flooder=True), timeout=12 * WAIT)
    stored, errors, elapsed = flooded["flood"]  # type: ignore[misc]
    assert len(stored) + errors == FLOOD
    # The allowance: the whole burst at once, then RATE per second, in order.
    assert BURST <= len(stored) <= BURST + int(RATE * elapsed) + 1, (len(stored), elapsed)
    assert errors <= len(stored) - BURST + 1, (len(stored), errors)  # one per refill interval
    assert stored == sorted(stored, key=int) and len(set(stored)) == len(stored)
    assert stored[:BURST] == [str(k) for k in range(BURST)]
    check_normal_deliveries(flooded["got"], stored)  # type: ignore[arg-type]
    st = server.stats()
    assert st.slow_consumer_closes == 0 and st.slow_consumer_drops == 0
