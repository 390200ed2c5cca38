"""The chat server under test, run as a real child process.

Which server: $CHATWS_CHAT_SERVER_CMD (a command line; `{port}`, `{static_dir}`
and `{history}` are filled in, and when it has no `{port}` the standard flags
are appended), else the C example binary ($CHATWS_CHAT_SERVER, or
$CHATWS_BUILD_DIR/examples/chat_server with build/ as the default build
directory), else `python -m chatws`.
Every one is started as `... --port P --static-dir DIR --history FILE`.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
STATIC_DIR = REPO_ROOT / "examples" / "web"
STANDARD_FLAGS = "--port {port} --static-dir {static_dir} --history {history}"

START_TIMEOUT_S = 15.0
# Above the servers' 5 s drain timeout: SIGKILL is a last resort, since it
# could cut a history flush short.
STOP_TIMEOUT_S = 10.0


class ServerUnavailable(RuntimeError):
    """No chat server to run, or it did not come up: the tests must fail, loudly."""


def free_port() -> int:
    """A port the kernel just handed out on loopback (closed again at once)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_command_template() -> tuple[str, str]:
    """(template, description) of the server command to run."""
    custom = os.environ.get("CHATWS_CHAT_SERVER_CMD", "").strip()
    if custom:
        if "{port}" not in custom:
            custom = f"{custom} {STANDARD_FLAGS}"
        return custom, "$CHATWS_CHAT_SERVER_CMD"

    binary = os.environ.get("CHATWS_CHAT_SERVER", "").strip()
    if binary:
        if not os.access(binary, os.X_OK):
            raise ServerUnavailable(f"$CHATWS_CHAT_SERVER={binary!r} is not an executable file")
        return f"{shlex.quote(binary)} {STANDARD_FLAGS}", "C example ($CHATWS_CHAT_SERVER)"
    # The build directory scripts/test.sh uses ($CHATWS_BUILD_DIR, default build/).
    build_dir = REPO_ROOT / os.environ.get("CHATWS_BUILD_DIR", "build")
    for default_binary in (build_dir / "examples" / "chat_server",
                           build_dir / "examples" / "c" / "chat_server"):
        if os.access(default_binary, os.X_OK):
            return f"{shlex.quote(str(default_binary))} {STANDARD_FLAGS}", f"C example ({build_dir})"

    if importlib.util.find_spec("chatws") is not None:
        return f"{shlex.quote(sys.executable)} -m chatws {STANDARD_FLAGS}", "python -m chatws"
    raise ServerUnavailable(
        "no chat server to test against: build the chat_server example (into build/ or set "
        "$CHATWS_CHAT_SERVER), install the chatws Python package, or set $CHATWS_CHAT_SERVER_CMD")


class ChatServerProcess:
    """One chat server on a fixed port and history file; can be stopped and
    started again on the same port with the same history (a restart)."""

    def __init__(self, workdir: Path, port: int | None = None, extra_args: list[str] | None = None,
                 scheme: str = "http", static_dir: Path = STATIC_DIR):
        self.workdir = workdir
        self.scheme = scheme
        self.port = port or free_port()
        self.history = workdir / "history.db"
        self.log_path = workdir / "server.log"
        template, self.description = server_command_template()
        self.argv = [part.format(port=self.port, static_dir=static_dir, history=self.history)
                     for part in shlex.split(template)] + list(extra_args or [])
        self._proc: subprocess.Popen | None = None
        self._log = None

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def start(self) -> None:
        assert self._proc is None, "already running"
        self._log = open(self.log_path, "ab")
        self._proc = subprocess.Popen(self.argv, cwd=REPO_ROOT, stdin=subprocess.DEVNULL,
                                      stdout=self._log, stderr=subprocess.STDOUT)
        self._wait_until_listening()

    def _wait_until_listening(self) -> None:
        """Bounded poll: the port accepts connections, or the process died."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._proc = None
                raise ServerUnavailable(
                    f"chat server exited with {code} at start: {self.argv}\n{self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)  # poll interval of a bounded wait, not a synchronisation
        self.stop()
        raise ServerUnavailable(
            f"chat server did not listen on {self.port} within {START_TIMEOUT_S}s: "
            f"{self.argv}\n{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM (a graceful stop), SIGKILL if it does not exit in time."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(STOP_TIMEOUT_S)
        self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, limit: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-limit:]
        except OSError:
            return "(no server log)"
