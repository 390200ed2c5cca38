"""One soak client: joins and leaves rooms, posts, reads (well-behaved, slow or bulk)."""

from __future__ import annotations

import asyncio
import bisect
import json
import socket
import time

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from .config import HOST, SLOW_PAUSE_S, V1
from .model import Sent, Session, Soak

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
