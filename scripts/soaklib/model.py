"""What the soak records: messages sent, sessions, counters, the run's state."""

from __future__ import annotations

import argparse
import asyncio
import random
from array import array
from dataclasses import dataclass, field

from .config import BULK_ALPHABET, HOST, PAD_ALPHABET

# ---------------------------------------------------------------- records

@dataclass
class Sent:
    room: int
    text_hash: int
    slow: bool
    session: "Session"
    t_send: float
    t_ack: float = 0.0
    msg_id: int = 0


@dataclass
class Session:
    cid: int
    slow: bool
    room: int
    epoch: int
    t_join: float
    hello_last: int
    conn: tuple = (0, 0)    # (server process, the hello's "you")
    t_left: float = 0.0     # the leave barrier's start (graceful sessions only)
    end: str = "open"       # left | crash | closed-<code> | barrier-timeout
    ids: array = field(default_factory=lambda: array("q"))
    last_id: int = 0
    last_seq: dict = field(default_factory=dict)


class Stats:
    def __init__(self) -> None:
        self.__dict__.update(dict.fromkeys((
            "sent", "sent_well", "sent_bulk", "acked_well", "acked_slow", "delivered", "delivered_well",
            "duplicates", "order_violations", "gaps", "id_conflicts", "corrupted",
            "error_frames", "slow_closes", "unexpected_closes", "barrier_timeouts",
            "connects", "connect_failures_up", "slow_connect_failures", "presence_events", "sessions"), 0))
        self.close_codes: dict[str, int] = {}
        self.problems: list[str] = []  # first few examples of each failure, for the report

    def problem(self, text: str) -> None:
        if len(self.problems) < 40:
            self.problems.append(text)


def room_name(soak: "Soak", room: int) -> str:
    return "hot" if room == soak.hot else f"r{room}"


class Soak:
    """Shared state of one run: options, ledger of messages, sessions, stats."""

    def __init__(self, args: argparse.Namespace, port: int) -> None:
        self.a, self.port = args, port
        self.rng = random.Random(args.seed)
        self.stats = Stats()
        self.sent: dict[tuple[int, int], Sent] = {}          # (cid, seq) -> Sent
        self.by_id: dict[tuple[int, int], tuple[int, int]] = {}  # (room, id) -> (cid, seq)
        self.id_of: dict[tuple[int, int], tuple[int, int]] = {}  # (cid, seq) -> (room, id)
        self.sessions: list[Session] = []
        self.epoch = 0
        self.server_up = asyncio.Event()
        self.stop = asyncio.Event()
        pad_rng = random.Random(args.seed + 1)
        self.pad_pool = "".join(pad_rng.choices(PAD_ALPHABET, k=16384))
        self.bulk_pool = "".join(pad_rng.choices(BULK_ALPHABET, k=16384))
        self.hot = args.rooms  # index of the room "hot"
        self.proc_index = 0    # which server process (0, then 1 after the restart...)

    def url(self, room: int, port: int | None = None) -> str:
        return f"ws://{HOST}:{port or self.port}/rooms/{room_name(self, room)}"

    def padding(self, bulk: bool) -> str:
        r = self.rng
        if bulk:
            n = r.randrange(self.a.bulk_pad * 4 // 5, self.a.bulk_pad + 1)
            start = r.randrange(len(self.bulk_pool) - n)
            return self.bulk_pool[start:start + n]
        n = r.randrange(32) if r.random() < 0.5 else min(4000, int(r.expovariate(0.5 / self.a.pad_mean)))
        start = r.randrange(len(self.pad_pool) - n)
        return self.pad_pool[start:start + n]

    def observe(self, room: int, msg_id: int, user: str, text: str) -> tuple[int, int] | None:
        """Checks a message (from a msg event or a hello) against the ledger;
        returns its (cid, seq) or None if it is not one of ours, intact."""
        try:
            head, _ = text.split(":", 1)
            cid_s, seq_s = head.split(".")
            key = (int(cid_s), int(seq_s))
        except ValueError:
            key = None
        rec = self.sent.get(key) if key else None
        if rec is None or rec.text_hash != hash(text) or user != f"u{key[0]}" or rec.room != room:
            self.stats.corrupted += 1
            self.stats.problem(f"corrupted or unknown message r{room}#{msg_id}: {text[:40]!r}")
            return None
        prev = self.by_id.setdefault((room, msg_id), key)
        if prev != key:
            self.stats.id_conflicts += 1
            self.stats.problem(f"r{room}#{msg_id} is {prev} and {key}")
        where = self.id_of.setdefault(key, (room, msg_id))
        if where != (room, msg_id):
            self.stats.duplicates += 1
            self.stats.problem(f"message {key} stored as r{room}#{msg_id} and r{where[0]}#{where[1]}")
        return key

    async def pause(self, seconds: float) -> None:
        """Sleeps, but returns at once when the run stops."""
        try:
            await asyncio.wait_for(self.stop.wait(), seconds)
        except TimeoutError:
            pass
