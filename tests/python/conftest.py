"""Shared helpers for the chatws Python tests.

Every server listens on 127.0.0.1 with port 0; every wait is on a condition
with a bounded timeout (never a sleep standing in for synchronisation).
"""

from __future__ import annotations

import asyncio
import os
import re
import selectors
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Coroutine, Iterator, List, Optional, Tuple, TypeVar

import pytest

import chatws

#: Upper bound for any single wait in the tests (generous: a loaded CI box).
WAIT = 10.0

REPO = Path(__file__).resolve().parents[2]

T = TypeVar("T")


class Events:
    """A thread-safe event log that handlers append to and tests wait on."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.items: List[Tuple[Any, ...]] = []

    def add(self, *item: Any) -> None:
        with self._cond:
            self.items.append(item)
            self._cond.notify_all()

    def of(self, kind: str) -> List[Tuple[Any, ...]]:
        with self._cond:
            return [i[1:] for i in self.items if i[0] == kind]

    def wait_for(self, predicate: Callable[["Events"], bool], timeout: float = WAIT) -> None:
        with self._cond:
            ok = self._cond.wait_for(lambda: predicate(self), timeout)
        assert ok, f"timed out after {timeout}s; events so far: {self.items!r}"

    def wait_count(self, kind: str, n: int, timeout: float = WAIT) -> List[Tuple[Any, ...]]:
        self.wait_for(lambda ev: len(ev.of(kind)) >= n, timeout)
        return self.of(kind)


@pytest.fixture
def events() -> Events:
    return Events()


@pytest.fixture
def make_server() -> Iterator[Callable[..., chatws.Server]]:
    """Creates servers on a free port; closes them at the end of the test."""
    servers: List[chatws.Server] = []

    def make(**kwargs: Any) -> chatws.Server:
        kwargs.setdefault("port", 0)
        server = chatws.Server(**kwargs)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


@pytest.fixture
def echo_server(make_server: Callable[..., chatws.Server]) -> chatws.Server:
    """A started echo server (text back as text, binary back as binary)."""
    server = make_server(max_message_size=32 << 20)

    @server.on_message
    def echo(conn: chatws.Connection, message: chatws.Message) -> None:
        conn.send(message)

    return server.start()


def run_async(coro: Coroutine[Any, Any, T], timeout: float = 3 * WAIT) -> T:
    """Run a coroutine on a fresh event loop, bounded in time."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


class Child:
    """A Python subprocess whose output lines can be awaited with a deadline."""

    def __init__(self, args: List[str], cwd: Optional[Path] = None) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=str(cwd) if cwd else None,
            env=env,
            text=True,
        )
        self.stdout_lines: List[str] = []

    def wait_line(self, pattern: str, timeout: float = WAIT) -> "re.Match[str]":
        """The first stdout line matching `pattern` (regex), read with a deadline."""
        assert self.proc.stdout is not None
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    raise AssertionError(f"no line matching {pattern!r} within {timeout}s: {self.stdout_lines}")
                line = self.proc.stdout.readline()
                if not line:
                    err = self.proc.stderr.read() if self.proc.stderr else ""
                    raise AssertionError(f"process ended before {pattern!r}: {self.stdout_lines} {err}")
                self.stdout_lines.append(line)
                m = regex.search(line)
                if m:
                    return m

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def finish(self, timeout: float = WAIT) -> Tuple[int, str, str]:
        """Wait for exit; returns (returncode, rest of stdout, stderr)."""
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            raise AssertionError(f"process did not exit within {timeout}s; stderr: {err}")
        return self.proc.returncode, "".join(self.stdout_lines) + out, err

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.communicate()


@pytest.fixture
def child() -> Iterator[Callable[..., Child]]:
    children: List[Child] = []

    def spawn(*args: str, cwd: Optional[Path] = None) -> Child:
        c = Child(list(args), cwd=cwd)
        children.append(c)
        return c

    yield spawn
    for c in children:
        c.kill()
