"""The chat server under test, as a child process: start, kill -9, restart, watch."""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

from .config import HOST, raise_nofile

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
