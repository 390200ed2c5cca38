#!/usr/bin/env python3
"""Soak test of the chat server: many real WebSocket clients, a kill -9, checks.

Runs the chat server as a child process on 127.0.0.1 and drives N clients
(asyncio + `websockets`, subprotocol chatws.v1) that join and leave rooms
(/rooms/r0.. at random) and post messages with a unique text
"<client>.<seq>:<padding>". 10% are slow readers (a tiny receive buffer, a
few frames read every few seconds); half of them lurk in the room "hot",
where a few well-behaved "bulk" clients post big messages fast, so that the
server's slow-consumer policy (close 1008 once a connection's output queue
passes its cap) hits them; they reconnect later. Halfway, the server is
killed with SIGKILL and restarted on the same port and history file; the
clients reconnect and the run goes on.

Checks (a line of the report each; any failure: exit status 1):
- losses: a message acknowledged to a well-behaved sender (it got its own
  message back as a v1 "msg") reaches, exactly once, every well-behaved
  session that was in the room from before the message was sent until after
  the ack. A session's end is its "leave barrier": before leaving, a client
  posts a last message and reads until it gets it back, so it has read
  everything the server delivered to it before that.
- gaps: every session (slow ones too) sees its room's ids contiguously after
  its hello history: the policy closes a connection, it never skips for it.
- duplicates (in a session; one text stored under two ids), order (ids and
  each sender's sequence numbers increase), id conflicts (one id, one text),
  corrupted texts, error frames, unexpected closes of well-behaved clients,
  well-behaved clients closed as slow (from the server's log).
- durability: right after the restart, each room's hello history (last N)
  holds every acknowledged or delivered message that belongs there; at the
  end the SQLite file holds the last history_size messages of each room (the
  store deletes older ones) and every acknowledged or delivered one among
  them, once, ids contiguous.
- resources: after every client has left, the server's descriptors are back
  to the (restarted) process's baseline and its VmRSS is within 10% of the
  baseline plus --rss-allowance-mb (the engine gives its memory back when
  its last client leaves: see docs/soak.md); SIGTERM then exits with status 0.

  scripts/soak.py --short                 # CI: 300 clients, ~45 s, one kill -9
  scripts/soak.py --minutes 30 --clients 2000 --json report.json
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import gc
import json
import os
import random
import re
import resource
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from array import array
from dataclasses import dataclass, field
from pathlib import Path

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

REPO_ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
V1 = "chatws.v1"
SLOW_PAUSE_S = (1.0, 6.0)  # a slow reader's pauses between bursts of 1..7 frames
BULK_ALPHABET = "😀🎉€中"  # 3.5 bytes per code point
BULK_BYTES_PER_CP = 3.5
PAD_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789 éжλ€中😀"  # 1- to 4-byte UTF-8


# ----------------------------------------------------------------- options

def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--short", action="store_true", help="CI mode: 300 clients, about 45 s in all")
    p.add_argument("--clients", type=int, help="clients (default 2000; --short: 300)")
    p.add_argument("--rooms", type=int, help="rooms /rooms/r0.. (default 40; --short: 10)")
    p.add_argument("--minutes", type=float, help="length of the client phase (default 5)")
    p.add_argument("--seconds", type=float, help="same, in seconds (overrides --minutes)")
    p.add_argument("--slow-fraction", type=float, default=0.10, help="share of slow readers")
    p.add_argument("--post-interval", type=float, help="mean seconds between a client's posts")
    p.add_argument("--session-mean", type=float, help="mean seconds a client stays in a room")
    p.add_argument("--pad-mean", type=int, help="mean padding (code points) per message")
    p.add_argument("--bulk-posters", type=int, default=4,
                   help="well-behaved clients that post big messages fast in the room 'hot'")
    p.add_argument("--bulk-rate", type=float, help="messages/s they post together (short: 60, else 30)")
    p.add_argument("--hot-mb", type=float, default=150.0,
                   help="bound on the bytes posted to 'hot' in a run (sizes the bulk messages)")
    p.add_argument("--kill-at", type=float, default=0.5,
                   help="kill -9 + restart at this fraction of the run (<=0: never)")
    p.add_argument("--history-size", type=int, default=50, help="the server's history size")
    p.add_argument("--rss-allowance-mb", type=float, default=2.0,
                   help="absolute RSS allowance above baseline+10%% (see docs/soak.md)")
    p.add_argument("--trim-probe", dest="trim_probe", action="store_true",
                   help="also call malloc_trim(0) in the server through gdb after the clients left "
                        "(the engine already trims when its last connection closes; this only "
                        "shows what the allocator could still give back)")
    p.add_argument("--server", help="server command template with {port} {history} "
                   "{history_size} (default: the C example chat_server)")
    p.add_argument("--port", type=int, default=0, help="server port (default: a free one)")
    p.add_argument("--workdir", help="history file and server logs (default: a temp dir)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--json", help="write the report here as JSON")
    a = p.parse_args(argv)
    short = a.short
    defaults = dict(clients=300 if short else 2000, rooms=10 if short else 40,
                    post_interval=2.5 if short else 15.0, session_mean=12.0 if short else 60.0,
                    pad_mean=1000, bulk_rate=60.0 if short else 30.0)
    for k, v in defaults.items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    if a.seconds is None:
        a.seconds = 30.0 if short and a.minutes is None else 60.0 * (a.minutes or 5.0)
    if a.seed is None:
        a.seed = random.randrange(1 << 30)
    # Bulk messages as big as the text limit allows, within the byte budget.
    a.bulk_pad = int(min(3500, a.hot_mb * 1e6 / max(1.0, a.bulk_rate * a.seconds) / BULK_BYTES_PER_CP))
    return a


def default_server_template() -> str:
    binary = os.environ.get("CHATWS_CHAT_SERVER", "").strip()
    candidates = [Path(binary)] if binary else []
    for d in (os.environ.get("CHATWS_BUILD_DIR", ""), "build", "build-soak"):
        if d:
            candidates.append((REPO_ROOT / d / "examples" / "chat_server").resolve())
    for c in candidates:
        if os.access(c, os.X_OK):
            return f"{shlex.quote(str(c))} --port {{port}} --history {{history}} " \
                   f"--history-size {{history_size}}"
    raise SystemExit("soak: no chat server: build the chat_server example or pass --server")


def raise_nofile(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = need if hard == resource.RLIM_INFINITY else min(need, hard)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------ server

class ServerProcess:
    """The server under test: start, kill -9, SIGTERM, and /proc readings."""

    def __init__(self, template: str, port: int, history: Path, history_size: int, log_stem: Path):
        self.argv = shlex.split(template.format(port=port, history=history,
                                                history_size=history_size))
        self.port, self.log_stem = port, log_stem
        self.logs: list[Path] = []  # one per process started
        self.proc: subprocess.Popen | None = None

    async def start(self, timeout: float = 15.0) -> None:
        self.log_path = Path(f"{self.log_stem}-{len(self.logs)}.log")
        self.logs.append(self.log_path)
        log = open(self.log_path, "wb")  # a file, never a pipe: a full pipe would block it
        self.proc = subprocess.Popen(self.argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                     preexec_fn=lambda: raise_nofile(65536))
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}; see {self.log_path}")
            try:
                _, w = await asyncio.open_connection(HOST, self.port)
                w.close()
                await w.wait_closed()
                return
            except OSError:
                await asyncio.sleep(0.05)
        raise RuntimeError(f"server not listening on {self.port} after {timeout}s")

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    async def stop(self, timeout: float = 15.0) -> int:
        self.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if self.proc.poll() is None:
            self.kill9()
            return -999  # did not stop in time
        return self.proc.returncode

    def rss_kb(self, field: str = "VmRSS") -> int:
        """VmRSS, or RssAnon (heap and other private memory, without the
        shared-library code pages that traffic pages in once)."""
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        return 0

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def malloc_trim(self) -> bool:
        """Asks the server's allocator to give its free memory back to the
        system (gdb calls malloc_trim(0) in it), so that what VmRSS still
        counts afterwards is memory the program holds, not allocator slack."""
        gdb = shutil.which("gdb")
        if not gdb:
            return False
        try:
            r = subprocess.run([gdb, "-p", str(self.proc.pid), "-batch", "-nx",
                                "-ex", "call (int) malloc_trim(0)"],
                               capture_output=True, text=True, timeout=60)
        except subprocess.TimeoutExpired:
            return False
        return r.returncode == 0 and "$1 = " in r.stdout

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


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


# ---------------------------------------------------------------- clients

class Client:
    def __init__(self, soak: Soak, cid: int, kind: str) -> None:
        self.s, self.cid, self.kind = soak, cid, kind
        self.slow, self.bulk = kind == "slow", kind == "bulk"
        self.seq = 0
        self.draining = self.closing = False
        self.bye: tuple[int, asyncio.Event] | None = None

    async def run(self, delay: float) -> None:
        s = self.s
        await s.pause(delay)
        while not s.stop.is_set():
            await s.server_up.wait()
            if s.stop.is_set():
                break
            try:
                await self.session(self.pick_room())
            except (OSError, InvalidHandshake, TimeoutError, ConnectionClosed) as e:
                # Failing to connect while the server is up (not being killed)
                # is a finding for a well-behaved client. A slow reader may
                # legitimately be closed (1008) while still reading its hello.
                if s.server_up.is_set() and not s.stop.is_set():
                    if self.slow:
                        s.stats.slow_connect_failures += 1
                    else:
                        s.stats.connect_failures_up += 1
                        s.stats.problem(f"client {self.cid}: connect failed: {e!r}")
            await s.pause(s.rng.uniform(0.2, 1.5) * (3 if self.slow else 1))

    def pick_room(self) -> int:
        # Bulk posters live in "hot"; half of the slow readers lurk there,
        # where falling behind fills the server's queue for them quickly.
        if self.bulk or (self.slow and self.s.rng.random() < 0.5):
            return self.s.hot
        return self.s.rng.randrange(self.s.a.rooms)

    async def open(self, room: int):
        kw = dict(subprotocols=[V1], compression=None, proxy=None, open_timeout=20,
                  ping_interval=None, close_timeout=5, max_size=None)
        if not self.slow:
            return await connect(self.s.url(room), **kw)
        # A slow reader: a tiny kernel receive buffer and a short frame queue,
        # so that not reading really pushes back on the server.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        try:
            await asyncio.get_running_loop().sock_connect(sock, (HOST, self.s.port))
        except OSError:
            sock.close()
            raise
        return await connect(self.s.url(room), sock=sock, max_queue=2, **kw)

    async def session(self, room: int) -> None:
        s = self.s
        epoch = s.epoch
        self.draining = self.closing = False
        ws = await self.open(room)
        s.stats.connects += 1
        try:
            # A slow reader takes a big hello in 8 KiB steps of a busy loop.
            hello = json.loads(await asyncio.wait_for(ws.recv(), 60 if self.slow else 20))
            if hello.get("type") != "hello":
                s.stats.error_frames += 1
                s.stats.problem(f"client {self.cid}: first frame is not a hello: {str(hello)[:120]}")
                return
            hist = hello.get("history", [])
            sess = Session(self.cid, self.slow, room, epoch, time.monotonic(),
                           hist[-1]["id"] if hist else 0, conn=(s.proc_index, hello.get("you")))
            s.sessions.append(sess)
            s.stats.sessions += 1
            for m in hist:  # oldest first
                self.receive(sess, m, from_hello=True)
            sess.last_id = sess.hello_last
            reader = asyncio.create_task(self.read(ws, sess))
            try:
                await self.post_until_leave(ws, sess, reader)
                # The reader keeps reading until the close handshake ends:
                # websockets stops reading the socket while its frame queue
                # is full, and then would never see the server's close reply.
                self.draining = self.closing = True
                await ws.close()
                await asyncio.wait_for(reader, 10)
            finally:
                if not reader.done():
                    reader.cancel()
                    await asyncio.gather(reader, return_exceptions=True)
        finally:
            await ws.close()

    async def post_until_leave(self, ws, sess: Session, reader: asyncio.Task) -> None:
        s = self.s
        # Slow readers stay longer: long enough to fall far behind.
        stay = s.a.session_mean * (4 if self.slow else 1)
        leave_at = time.monotonic() + s.rng.expovariate(1.0 / stay)
        stop = asyncio.ensure_future(s.stop.wait())
        try:
            while not reader.done() and not s.stop.is_set():
                interval = s.a.bulk_posters / s.a.bulk_rate if self.bulk else s.a.post_interval
                wait = s.rng.expovariate(1.0 / interval)
                if time.monotonic() + wait >= leave_at:
                    await asyncio.wait([reader, stop], timeout=max(0.0, leave_at - time.monotonic()),
                                       return_when=asyncio.FIRST_COMPLETED)
                    break
                await asyncio.wait([reader, stop], timeout=wait, return_when=asyncio.FIRST_COMPLETED)
                if reader.done() or s.stop.is_set() or not await self.post(ws, sess, s.padding(self.bulk)):
                    break
        finally:
            stop.cancel()
        if reader.done():
            return
        # Leave barrier: everything the server sent us before our last
        # message arrives before it does. A slow reader reads at full speed now.
        sess.t_left = time.monotonic()
        self.draining = True
        done_ev = asyncio.Event()
        self.bye = (self.seq + 1, done_ev)
        if await self.post(ws, sess, "bye"):
            back = asyncio.ensure_future(done_ev.wait())
            await asyncio.wait([back, reader], timeout=30, return_when=asyncio.FIRST_COMPLETED)
            back.cancel()
            if done_ev.is_set():
                sess.end = "left"
            elif not reader.done():
                sess.end = "barrier-timeout"
                if not self.slow:
                    s.stats.barrier_timeouts += 1
                    s.stats.problem(f"client {self.cid}: its last message never came back")
        self.bye = None

    async def post(self, ws, sess: Session, pad: str) -> bool:
        s = self.s
        self.seq += 1
        text = f"{self.cid}.{self.seq}:{pad}"
        s.sent[(self.cid, self.seq)] = Sent(sess.room, hash(text), self.slow, sess, time.monotonic())
        s.stats.sent += 1
        s.stats.sent_well += not self.slow
        s.stats.sent_bulk += self.bulk
        try:
            await ws.send(json.dumps({"user": f"u{self.cid}", "text": text}, ensure_ascii=False))
            return True
        except ConnectionClosed:
            return False

    async def read(self, ws, sess: Session) -> None:
        s = self.s
        try:
            if not self.slow:
                async for raw in ws:
                    self.dispatch(sess, raw)
            else:
                while True:  # slow reader: long pauses, then a short burst
                    if not self.draining:
                        await asyncio.sleep(s.rng.uniform(*SLOW_PAUSE_S))
                    for _ in range(s.rng.randrange(1, 8)):
                        self.dispatch(sess, await ws.recv())
            code = ws.close_code  # a clean close handshake
        except ConnectionClosed as e:
            code = e.rcvd.code if e.rcvd else 1006
        if self.closing and sess.end != "open":
            return  # we closed it after the leave barrier
        if sess.epoch != s.epoch and code != 1008:
            sess.end = "crash"
            return
        sess.end = f"closed-{code}"
        s.stats.close_codes[str(code)] = s.stats.close_codes.get(str(code), 0) + 1
        if self.slow and code in (1008, 1006):
            # The policy's close frame sits behind megabytes the reader has
            # not read yet, so the server usually ends the TCP connection
            # first (1006); its log tells which connections it closed as slow.
            s.stats.slow_closes += 1
        else:
            # A well-behaved client closed by the server, or a slow one
            # closed with something else than the policy's 1008.
            s.stats.unexpected_closes += 1
            s.stats.problem(f"client {self.cid} (slow={self.slow}) closed with {code}")

    def dispatch(self, sess: Session, raw: str) -> None:
        m = json.loads(raw)
        t = m.get("type")
        if t == "msg":
            self.receive(sess, m, from_hello=False)
        elif t in ("join", "leave"):
            self.s.stats.presence_events += 1
        else:
            self.s.stats.error_frames += 1
            self.s.stats.problem(f"client {self.cid}: unexpected frame {raw[:120]}")

    def receive(self, sess: Session, m: dict, from_hello: bool) -> None:
        s, st = self.s, self.s.stats
        msg_id = m["id"]
        key = s.observe(sess.room, msg_id, m["user"], m["text"])
        # Ids strictly increase within a session and, after the hello's
        # history, are contiguous (the server closes a slow reader, it
        # never skips messages for it).
        if msg_id > sess.last_id:
            if not from_hello and msg_id != sess.last_id + 1:
                st.gaps += msg_id - sess.last_id - 1
                st.problem(f"session of {self.cid} in r{sess.room}: got #{msg_id} after #{sess.last_id}")
            sess.last_id = msg_id
            if not from_hello:
                sess.ids.append(msg_id)
        elif msg_id <= sess.hello_last or bisect_contains(sess.ids, msg_id):
            st.duplicates += 1
            st.problem(f"session of {self.cid} in r{sess.room}: #{msg_id} twice")
            return
        else:
            st.order_violations += 1
            st.problem(f"session of {self.cid} in r{sess.room}: #{msg_id} after #{sess.last_id}")
        if key is None:
            return
        cid, seq = key
        if seq <= sess.last_seq.get(cid, 0):
            st.order_violations += 1
            st.problem(f"session of {self.cid}: sender {cid} seq {seq} after {sess.last_seq[cid]}")
        sess.last_seq[cid] = seq
        if from_hello:
            return
        st.delivered += 1
        st.delivered_well += not self.slow
        if cid == self.cid:
            rec = s.sent[key]
            if rec.session is sess and not rec.t_ack:
                rec.t_ack, rec.msg_id = time.monotonic(), msg_id
                if self.slow:
                    st.acked_slow += 1
                else:
                    st.acked_well += 1
            if self.bye and self.bye[0] == seq:
                self.bye[1].set()


def bisect_contains(a, x) -> bool:
    i = bisect.bisect_left(a, x)
    return i < len(a) and a[i] == x


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


# -------------------------------------------------------------- supervisor

async def settle(server: ServerProcess, fd_target: int | None, timeout: float = 30.0) -> tuple[int, int]:
    """Waits (bounded) for the descriptors to drop to fd_target and VmRSS to
    stop moving; returns (rss_kb, fds)."""
    deadline = time.monotonic() + timeout
    while fd_target is not None and server.fds() > fd_target and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    prev, stable = -1, 0
    while stable < 3 and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        rss = server.rss_kb()
        stable = stable + 1 if abs(rss - prev) <= 64 else 0
        prev = rss
    return server.rss_kb(), server.fds()


async def loop_lag(out: dict) -> None:
    """How late the client process's event loop wakes up: a load generator
    that cannot keep up would show here, not as a server problem."""
    while True:
        t = time.monotonic()
        await asyncio.sleep(0.1)
        lag = time.monotonic() - t - 0.1
        out["max_ms"] = max(out.get("max_ms", 0), round(lag * 1000))
        out["samples"] = out.get("samples", 0) + 1
        out["over_100ms"] = out.get("over_100ms", 0) + (lag > 0.1)


class Sampler:
    """Peak RSS / descriptors of the current server process; notices a death we did not cause."""

    def __init__(self, server: ServerProcess) -> None:
        self.server, self.peak_rss, self.peak_fds, self.expect_exit, self.died = server, 0, 0, False, None

    async def run(self) -> None:
        while True:
            if self.server.alive():
                try:
                    self.peak_rss = max(self.peak_rss, self.server.rss_kb())
                    self.peak_fds = max(self.peak_fds, self.server.fds())
                except OSError:
                    pass
            elif not self.expect_exit and self.died is None:
                self.died = self.server.proc.returncode
            await asyncio.sleep(0.25)

    def reset(self) -> tuple[int, int]:
        peak = (self.peak_rss, self.peak_fds)
        self.peak_rss = self.peak_fds = 0
        return peak


async def run(a: argparse.Namespace) -> dict:
    raise_nofile(2 * a.clients + 1024)
    t_start = time.monotonic()
    workdir = Path(a.workdir or tempfile.mkdtemp(prefix="chatws-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    history = workdir / "history.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{history}{suffix}").unlink(missing_ok=True)
    port = a.port or free_port()
    template = a.server or default_server_template()
    server = ServerProcess(template, port, history, a.history_size, workdir / "server")
    soak = Soak(a, port)
    st = soak.stats
    report: dict = dict(seed=a.seed, clients=a.clients, rooms=a.rooms + 1, seconds=a.seconds,
                        bulk_posters=a.bulk_posters, bulk_rate=a.bulk_rate, bulk_pad=a.bulk_pad,
                        slow_readers=round(a.clients * a.slow_fraction), server=template,
                        workdir=str(workdir), processes=[], restarts=0)

    phases: dict[str, float] = {}
    report["phases_s"] = phases

    def phase(name: str) -> None:
        phases[name] = round(time.monotonic() - t_start, 1)

    await server.start()
    rss0, fds0 = await settle(server, None)
    phase("started")
    proc_info = dict(pid=server.proc.pid, rss_baseline_kb=rss0, anon_baseline_kb=server.rss_kb("RssAnon"),
                     fds_baseline=fds0)
    report["processes"].append(proc_info)
    sampler = Sampler(server)
    sampler_task = asyncio.create_task(sampler.run())
    report["client_loop_lag"] = {}
    lag_task = asyncio.create_task(loop_lag(report["client_loop_lag"]))
    soak.server_up.set()

    picked = soak.rng.sample(range(a.clients), report["slow_readers"] + a.bulk_posters)
    kinds = {i: "slow" for i in picked[:report["slow_readers"]]}
    kinds.update({i: "bulk" for i in picked[report["slow_readers"]:]})
    ramp = min(5.0, a.seconds / 4)
    tasks = [asyncio.create_task(Client(soak, i, kinds.get(i, "well")).run(i * ramp / a.clients))
             for i in range(a.clients)]
    t_run = time.monotonic()
    if 0 < a.kill_at < 1:
        await asyncio.sleep(a.seconds * a.kill_at)
        soak.server_up.clear()
        soak.epoch += 1
        soak.proc_index += 1
        sampler.expect_exit = True
        server.kill9()
        proc_info["rss_peak_kb"], proc_info["fds_peak"] = sampler.reset()
        proc_info["end"] = "kill -9"
        report["restarts"] += 1
        await server.start()
        sampler.expect_exit = False
        rss0, fds0 = await settle(server, None, timeout=5)
        proc_info = dict(pid=server.proc.pid, rss_baseline_kb=rss0,
                         anon_baseline_kb=server.rss_kb("RssAnon"), fds_baseline=fds0)
        report["processes"].append(proc_info)
        phase("restarted")
        report["after_restart"] = check_history(soak, await hello_histories(soak, port), full=False)
        phase("restart checked")
        soak.server_up.set()
    await asyncio.sleep(max(0.0, a.seconds - (time.monotonic() - t_run)))
    soak.stop.set()
    soak.server_up.set()  # wake clients waiting for a server
    done, pending = await asyncio.wait(tasks, timeout=90)  # barriers take up to 30 s
    for t in pending:
        t.cancel()
    phase("clients done")
    report["clients_stuck"] = len(pending)
    report["client_errors"] = [repr(t.exception()) for t in done if t.exception()][:5]
    rss_after, fds_after = await settle(server, fds0)
    phase("settled")
    proc_info.update(rss_after_kb=rss_after, anon_after_kb=server.rss_kb("RssAnon"), fds_after=fds_after)
    if a.trim_probe and await asyncio.to_thread(server.malloc_trim):
        proc_info.update(rss_trimmed_kb=server.rss_kb(), anon_trimmed_kb=server.rss_kb("RssAnon"))
    proc_info["rss_peak_kb"], proc_info["fds_peak"] = sampler.reset()
    report["server_died"] = sampler.died
    sampler.expect_exit = True
    proc_info["end"] = f"SIGTERM, exit {await server.stop()}"
    sampler_task.cancel()
    lag_task.cancel()

    phase("stopped")
    stored = stored_histories(soak, history)
    report["audit"] = check_history(soak, stored, full=False)
    report["audit"]["rooms_over_history_size"] = sum(len(h) > a.history_size for h in stored.values())
    phase("audit")
    checked, losses, unacked, in_flight = check_losses(soak)
    policy = server_policy_closes(soak, server.logs)
    report["server_1008_closes"] = policy
    session_ends: dict[str, int] = {}
    for sess in soak.sessions:
        k = f"{'slow' if sess.slow else 'well'}:{sess.end}"
        session_ends[k] = session_ends.get(k, 0) + 1
    phase("checks")
    report.update(
        duration_s=round(time.monotonic() - t_start, 1),
        messages=dict(sent=st.sent, sent_well_behaved=st.sent_well, sent_bulk=st.sent_bulk, acked_well_behaved=st.acked_well,
                      acked_slow=st.acked_slow, delivered=st.delivered,
                      delivered_well_behaved=st.delivered_well, window_checks=checked,
                      in_flight_at_kill=in_flight),
        connections=dict(connects=st.connects, sessions=st.sessions, session_ends=session_ends,
                         slow_connect_failures=st.slow_connect_failures,
                         slow_reader_closes_seen=st.slow_closes,
                         close_codes=st.close_codes, presence_events=st.presence_events),
        problems=st.problems)
    last = report["processes"][-1]
    rss_limit = int(last["rss_baseline_kb"] * 1.10 + a.rss_allowance_mb * 1024)
    # Free memory glibc keeps in its arenas is reused by the next clients,
    # The engine trims its pool and the allocator when the last client leaves: judge raw VmRSS.
    rss_final = last["rss_after_kb"]
    rss_note = " malloc_trim" if "rss_trimmed_kb" in last else ""
    ar, au = report.get("after_restart", {}), report["audit"]
    checks = [
        ("losses", losses, losses == 0),
        ("unacknowledged (not at the kill)", unacked, unacked == 0),
        ("duplicates", st.duplicates, st.duplicates == 0),
        ("order violations", st.order_violations, st.order_violations == 0),
        ("gaps in a session", st.gaps, st.gaps == 0),
        ("id conflicts", st.id_conflicts, st.id_conflicts == 0),
        ("corrupted texts", st.corrupted, st.corrupted == 0),
        ("error frames", st.error_frames, st.error_frames == 0),
        ("unexpected closes", st.unexpected_closes, st.unexpected_closes == 0),
        ("leave barriers timed out", st.barrier_timeouts, st.barrier_timeouts == 0),
        ("connect failures of well-behaved clients (server up)", st.connect_failures_up, st.connect_failures_up == 0),
        ("clients stuck at the end", len(pending), not pending and not report["client_errors"]),
        ("messages acknowledged", st.acked_well, st.acked_well > 0),
        ("slow readers closed by the server (1008, its log)", policy and policy["slow"],
         not report["slow_readers"] or (policy["slow"] > 0 if policy else st.slow_closes > 0)),
        ("well-behaved closed as slow (1008)", policy and policy["well_behaved"] + policy["unknown"],
         not policy or policy["well_behaved"] + policy["unknown"] == 0),
        ("restart: missing acked/delivered", f"{ar.get('missing_acked')}/{ar.get('missing_delivered')}",
         a.kill_at <= 0 or a.kill_at >= 1 or (ar["missing_acked"] == 0 and ar["missing_delivered"] == 0
                                              and ar["holes"] == 0)),
        ("store: missing acked/delivered", f"{au['missing_acked']}/{au['missing_delivered']}",
         au["missing_acked"] == 0 and au["missing_delivered"] == 0),
        ("store: id holes", au["holes"], au["holes"] == 0),
        ("store: rooms with more than history_size messages", au["rooms_over_history_size"],
         au["rooms_over_history_size"] == 0),
        ("server died unexpectedly", report["server_died"], report["server_died"] is None),
        ("server exit after SIGTERM", last["end"], last["end"].endswith("exit 0")),
        (f"RSS after{rss_note} (KiB) <= limit", f"{rss_final} <= {rss_limit}", rss_final <= rss_limit),
        ("fds after == baseline", f"{last['fds_after']} == {last['fds_baseline']}",
         last["fds_after"] == last["fds_baseline"]),
    ]
    report["checks"] = [dict(name=n, value=v, ok=bool(ok)) for n, v, ok in checks]
    report["ok"] = all(ok for _, _, ok in checks)
    return report


def print_report(r: dict) -> None:
    m, c = r["messages"], r["connections"]
    print(f"soak: {r['clients']} clients ({r['slow_readers']} slow) in {r['rooms']} rooms, "
          f"{r['seconds']:.0f} s of traffic, {r['duration_s']} s in all, seed {r['seed']}, "
          f"restarts {r['restarts']}")
    print(f"  messages: sent {m['sent']} (well-behaved {m['sent_well_behaved']}, bulk {m['sent_bulk']}), acked "
          f"{m['acked_well_behaved']} + {m['acked_slow']} slow, delivered {m['delivered']}, "
          f"window checks {m['window_checks']}, in flight at kill {m['in_flight_at_kill']}")
    print(f"  connections: {c['connects']} opened, slow readers closed {c['slow_reader_closes_seen']} "
          f"(server log 1008: {r['server_1008_closes']}), "
          f"close codes {c['close_codes']}, session ends {c['session_ends']}")
    for p in r["processes"]:
        print(f"  server pid {p['pid']}: RSS baseline {p['rss_baseline_kb']} KiB, peak "
              f"{p.get('rss_peak_kb')} KiB, after {p.get('rss_after_kb', '-')} KiB (anon "
              f"{p['anon_baseline_kb']} -> {p.get('anon_after_kb', '-')}), after malloc_trim "
              f"{p.get('rss_trimmed_kb', '-')} KiB (anon {p.get('anon_trimmed_kb', '-')}); fds baseline "
              f"{p['fds_baseline']}, peak {p.get('fds_peak')}, after {p.get('fds_after', '-')}; "
              f"{p.get('end')}")
    print(f"  phases (s since start): {r['phases_s']}; client loop lag {r['client_loop_lag']}")
    for name in ("after_restart", "audit"):
        if name in r:
            print(f"  history {name}: {r[name]}")
    for ch in r["checks"]:
        print(f"  [{'ok' if ch['ok'] else 'FAIL'}] {ch['name']}: {ch['value']}")
    for p in r["problems"][:20]:
        print(f"  problem: {p}")
    print("soak: PASS" if r["ok"] else "soak: FAIL")


def main(argv: list[str] | None = None) -> int:
    a = parse_args(sys.argv[1:] if argv is None else argv)
    # The ledger holds millions of objects: full collections of the cyclic
    # GC would stall the clients' event loop for hundreds of ms at a time.
    gc.set_threshold(200_000, 20, 1_000_000)
    report = asyncio.run(run(a))
    print_report(report)
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
