"""A server under test on 127.0.0.1: a free port, waiting until it listens,
a raw-socket WebSocket upgrade to it, and stopping it. Shared by the bench
scripts and tests/smoke_test.py."""
from __future__ import annotations

import base64
import os
import signal
import socket
import struct
import subprocess
import time
from typing import Optional

STOP_TIMEOUT_S = 8.0  # after SIGTERM, then SIGKILL


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(proc: subprocess.Popen, port: int, timeout_s: float) -> bool:
    """Poll a TCP connect to the server's port until it succeeds, the process
    exits, or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)  # not listening yet
    return False


def ws_upgrade(port: int, path: str = "/", subprotocol: Optional[str] = None,
               timeout: Optional[float] = 30) -> socket.socket:
    """A blocking socket upgraded to WebSocket (raw frames from here on). The
    response head is read byte by byte, so nothing after it is consumed."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    key = base64.b64encode(os.urandom(16)).decode()
    proto = f"Sec-WebSocket-Protocol: {subprotocol}\r\n" if subprotocol else ""
    s.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
               f"{proto}\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(1)
        if not chunk:
            s.close()
            raise ConnectionError("closed during the upgrade")
        head += chunk
    if not head.startswith(b"HTTP/1.1 101"):
        s.close()
        raise ConnectionError(head.decode(errors="replace"))
    return s


def masked_frame(payload: bytes, opcode: int = 0x2) -> bytes:
    """A client frame (FIN, masked with a random key) of `payload`."""
    n = len(payload)
    head = bytes([0x80 | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    mask = os.urandom(4)
    body = bytes(b ^ mask[i & 3] for i, b in enumerate(payload)) if n < 1024 else \
        (int.from_bytes(payload, "big") ^ int.from_bytes((mask * (n // 4 + 1))[:n], "big")).to_bytes(n, "big")
    return head + mask + body


def stop_server(proc: subprocess.Popen, timeout_s: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM (the server's graceful stop), then SIGKILL if it is not gone
    within timeout_s."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout_s)
