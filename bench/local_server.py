"""Starting a server under test on 127.0.0.1: a free port, and waiting until
it listens. Shared by run.py, instructions.py and tests/smoke_test.py."""
from __future__ import annotations

import socket
import subprocess
import time


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
