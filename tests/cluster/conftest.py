"""Cluster tests: a real redis-server and several chatws nodes, all processes.

Each test module gets its own redis-server (Debian's, installed by
scripts/bootstrap.sh) on a free loopback port with a temporary directory,
started here and stopped at the end. Nodes are `python -m chatws --redis`
and `examples/c/chat_server --redis` ($CHATWS_BUILD_DIR, default build/).
Every wait is bounded; readiness is read from the processes' output or
from Redis answering PING.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

import pytest
import websocket  # websocket-client

#: Upper bound for any single wait (generous: a loaded CI box).
WAIT = 15.0

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_server_binary() -> str:
    found = shutil.which("redis-server") or ("/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None)
    if not found:
        raise AssertionError("redis-server not found: scripts/bootstrap.sh installs it (Debian redis-server)")
    return found


class Redis:
    """A redis-server on a fixed free port; stop() kills it, start() brings it back (same dir)."""

    def __init__(self, directory: Path, aof: bool = True) -> None:
        self.port = free_port()
        self.dir = directory
        self.aof = aof
        self.proc: Optional[subprocess.Popen[bytes]] = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        assert self.proc is None
        args = [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", str(self.dir), "--save", "", "--daemonize", "no",
                "--logfile", str(self.dir / "redis.log")]
        # Durability tests: every acknowledged write fsynced before the reply.
        args += ["--appendonly", "yes", "--appendfsync", "always"] if self.aof else ["--appendonly", "no"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"redis-server exited: {(self.dir / 'redis.log').read_text()}")
            if self.ping():
                return
            time.sleep(0.01)  # readiness poll, bounded by the deadline
        raise AssertionError("redis-server did not answer PING in time")

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def command(self, *args: str) -> bytes:
        """One command through redis-cli (an independent client), its raw output."""
        return subprocess.run(["redis-cli", "-p", str(self.port), *args], check=True,
                              stdout=subprocess.PIPE, timeout=WAIT).stdout

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=WAIT)
            self.proc = None


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Redis]:
    r = Redis(tmp_path_factory.mktemp("redis"))
    r.start()
    yield r
    r.stop()


class Node:
    """A chatws server process in cluster mode; its output is drained by a thread."""

    def __init__(self, args: List[str]) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
        self.lines: List[str] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()
        m = self.wait_line(r"(?:open|chat on) (?:http|ws)://127\.0\.0\.1:(\d+)/")
        self.port = int(m.group(1))

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self.lines.append("")  # EOF marker
            self._cond.notify_all()

    def wait_line(self, pattern: str, timeout: float = WAIT) -> "re.Match[str]":
        regex = re.compile(pattern)
        seen = 0
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines[seen:]:
                    if line == "":
                        raise AssertionError(f"node exited before {pattern!r}: {''.join(self.lines)}")
                    m = regex.search(line)
                    if m:
                        return m
                seen = len(self.lines)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no line matching {pattern!r} in {timeout}s: {''.join(self.lines)}")
                self._cond.wait(left)

    def url(self, room: str = "r") -> str:
        return f"ws://127.0.0.1:{self.port}/rooms/{room}"

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=WAIT)

    def output(self) -> str:
        with self._cond:
            return "".join(self.lines)


def c_chat_server() -> Path:
    build = Path(os.environ.get("CHATWS_BUILD_DIR", REPO / "build"))
    binary = (build if build.is_absolute() else REPO / build) / "examples" / "chat_server"
    if not binary.exists():
        raise AssertionError(f"{binary} not built: build with -DCHATWS_EXAMPLES=ON (or set $CHATWS_BUILD_DIR)")
    return binary


@pytest.fixture
def nodes(redis: Redis) -> Iterator[Callable[..., Node]]:
    started: List[Node] = []

    def start(name: str, kind: str = "python", *extra: str, url: Optional[str] = None) -> Node:
        common = ["--port", "0", "--redis", url or redis.url, "--node-name", name,
                  "--max-messages-per-second", "off", *extra]
        if kind == "python":
            args = [sys.executable, "-m", "chatws", "--no-static", *common]
        else:
            args = [str(c_chat_server()), "--no-static", *common]
        node = Node(args)
        started.append(node)
        return node

    yield start
    for n in started:
        n.kill()


class Client:
    """A chatws.v1 member (websocket-client), its frames read by a thread."""

    def __init__(self, url: str) -> None:
        self.ws = websocket.create_connection(url, timeout=WAIT, subprotocols=["chatws.v1"])
        self.frames: List[Dict[str, Any]] = []
        self._cond = threading.Condition()
        self.closed = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.hello = self.wait(lambda f: f["type"] == "hello")

    def _read(self) -> None:
        try:
            while True:
                data = self.ws.recv()
                if not data:
                    break
                with self._cond:
                    self.frames.append(json.loads(data))
                    self._cond.notify_all()
        except (websocket.WebSocketException, OSError, ValueError):
            pass
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def wait(self, pred: Callable[[Dict[str, Any]], bool], timeout: float = WAIT) -> Dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for f in self.frames:
                    if pred(f):
                        return f
                left = deadline - time.monotonic()
                if left <= 0 or self.closed:
                    raise AssertionError(f"no such frame within {timeout}s (closed={self.closed}): {self.frames[-5:]}")
                self._cond.wait(left)

    def wait_until(self, cond: Callable[[List[Dict[str, Any]]], bool], timeout: float = WAIT) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not cond(self.frames):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"condition not met within {timeout}s: {len(self.frames)} frames, "
                                         f"last {self.frames[-3:]}")
                self._cond.wait(left)

    def msgs(self) -> List[Dict[str, Any]]:
        with self._cond:
            return [f for f in self.frames if f["type"] == "msg"]

    def errors(self) -> List[str]:
        with self._cond:
            return [f["error"] for f in self.frames if f["type"] == "error"]

    def send(self, user: str, text: str) -> None:
        self.ws.send(json.dumps({"user": user, "text": text}))

    def send_all_at_once(self, user: str, texts: List[str]) -> None:
        """One message per text, in one socket write: the node reads many in one turn."""
        self.ws.sock.sendall(b"".join(
            websocket.ABNF.create_frame(json.dumps({"user": user, "text": t}), websocket.ABNF.OPCODE_TEXT).format()
            for t in texts))

    def close(self) -> None:
        try:
            self.ws.close(timeout=1)
        except (websocket.WebSocketException, OSError):
            pass


@pytest.fixture
def clients() -> Iterator[Callable[[str], Client]]:
    made: List[Client] = []

    def connect(url: str) -> Client:
        c = Client(url)
        made.append(c)
        return c

    yield connect
    for c in made:
        c.close()


class Proxy:
    """A TCP relay between nodes and Redis that can lose what Redis says
    (replies dropped) or what nodes say (requests dropped), then cut every
    connection: the lost-reply cases, made on purpose."""

    def __init__(self, target_port: int) -> None:
        self.target = target_port
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.drop_replies = False
        self.drop_requests = False
        self.dropped_requests = 0  # bytes
        self._lock = threading.Lock()
        self._pairs: List[Any] = []
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target), timeout=WAIT)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._pairs.append((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream, "requests"), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, "replies"), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, what: str) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if what == "requests" and self.drop_requests:
                    self.dropped_requests += len(data)
                    continue
                if what == "replies" and self.drop_replies:
                    continue
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        """Closes every relayed connection, then relays normally again."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for s in pair:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
        self.drop_replies = self.drop_requests = False

    def close(self) -> None:
        self._stop = True
        self.listener.close()
        self.cut()
