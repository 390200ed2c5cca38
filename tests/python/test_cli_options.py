"""The command lines of `python -m chatws` and examples/c/chat_server: every
option listed with its default, the same options in both, bad ones refused
with status 2 naming the option, each limit flag of chat_server taking effect
on real connections, and plain clients told which subprotocols to offer."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

import pytest
import websocket  # websocket-client

from chatws.__main__ import NO_SUBPROTOCOL_REASON, build_parser
from chatws._token import make_token

from conftest import REPO, WAIT

BUILD = Path(os.environ.get("CHATWS_BUILD_DIR", REPO / "build"))
if not BUILD.is_absolute():
    BUILD = REPO / BUILD
CHAT_SERVER = BUILD / "examples" / "chat_server"
PY_CLI = [sys.executable, "-m", "chatws"]

# Options one of the two has for a reason of its own.
PY_ONLY = {"--log-level", "--version"}  # chat_server: --verbose; its version is in its first line
C_ONLY = {"--verbose"}


def c_cli() -> List[str]:
    if not CHAT_SERVER.exists():
        pytest.fail(f"no {CHAT_SERVER}: build the examples (or set $CHATWS_BUILD_DIR)")
    return [str(CHAT_SERVER)]


def options_in_help(text: str) -> List[Tuple[str, str]]:
    """(option, its help text) for each `--option` at the start of a help entry."""
    entries: List[Tuple[str, str]] = []
    for line in text.splitlines():
        m = re.match(r"^\s{2}(--[a-z0-9-]+)(.*)$", line)
        if m:
            entries.append((m.group(1), m.group(2)))
        elif entries and line.startswith(" " * 6):
            entries[-1] = (entries[-1][0], entries[-1][1] + " " + line.strip())
    return entries


def run_cli(argv: List[str], timeout: float = WAIT) -> subprocess.CompletedProcess:
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=timeout, env=dict(os.environ, COLUMNS="200"))


@pytest.mark.parametrize("cli", ["python", "c"])
def test_help_lists_every_option_with_its_default(cli: str) -> None:
    argv = PY_CLI if cli == "python" else c_cli()
    r = run_cli(argv + ["--help"])
    assert r.returncode == 0, r.stderr
    entries = options_in_help(r.stdout)
    assert len(entries) > 20, r.stdout
    missing = [opt for opt, text in entries
               if opt not in ("--help", "--version") and "(default: " not in text]
    assert not missing, f"options whose help gives no default: {missing}"
    if cli == "python":
        # Every option the parser knows is in the help.
        known = {s for a in build_parser()._actions for s in a.option_strings if s.startswith("--")}
        assert known - {"--help"} == {opt for opt, _ in entries}


def test_chat_server_has_the_options_of_python_m_chatws() -> None:
    py = {opt for opt, _ in options_in_help(run_cli(PY_CLI + ["--help"]).stdout)} - {"--help"}
    c = {opt for opt, _ in options_in_help(run_cli(c_cli() + ["--help"]).stdout)} - {"--help"}
    assert py - PY_ONLY - c == set(), "python -m chatws options chat_server lacks"
    assert c - C_ONLY - py == set(), "chat_server options python -m chatws lacks"


BAD = [
    (["--port", "x"], "--port"),
    (["--port", "70000"], "--port"),
    (["--history-size", "0"], "--history-size"),
    (["--max-connections-per-ip", "-1"], "--max-connections-per-ip"),
    (["--ipv6-prefix-length", "129"], "--ipv6-prefix-length"),
    (["--max-output-buffer", "lots"], "--max-output-buffer"),
    (["--slow-consumer", "ignore"], "--slow-consumer"),
    (["--socket-send-buffer", "0"], "--socket-send-buffer"),
    (["--socket-send-buffer", "big"], "--socket-send-buffer"),
    (["--idle-timeout", "0"], "--idle-timeout"),
    (["--handshake-timeout", "soon"], "--handshake-timeout"),
    (["--close-timeout", "-2"], "--close-timeout"),
    (["--drain-timeout", "x"], "--drain-timeout"),
    (["--tls-min-version", "1.1"], "--tls-min-version"),
    (["--accept-mode", "round-robin"], "--accept-mode"),
    (["--tls-cert", "a.pem"], "--tls-key"),
    (["--no-such-option"], "--no-such-option"),
    (["--port"], "--port"),
]


@pytest.mark.parametrize("cli", ["python", "c"])
@pytest.mark.parametrize("args,named", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_a_bad_command_line_exits_2_naming_the_option(cli: str, args: List[str], named: str) -> None:
    argv = PY_CLI if cli == "python" else c_cli()
    r = run_cli(argv + args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert named in r.stderr, r.stderr


def test_echo_server_help_and_bad_port() -> None:
    echo = BUILD / "examples" / "echo_server"
    r = run_cli([str(echo), "--help"])
    assert r.returncode == 0 and "usage:" in r.stdout and "default" in r.stdout
    r = run_cli([str(echo), "99999"])
    assert r.returncode == 2 and "PORT" in r.stderr
    r = run_cli([str(echo), "--bogus"])
    assert r.returncode == 2 and "--bogus" in r.stderr


# --------------------------------------------------- flags taking effect

class Server:
    """chat_server or python -m chatws on a free port, stopped at the end."""

    def __init__(self, argv: List[str]) -> None:
        self.proc = subprocess.Popen(argv + ["--port", "0", "--no-static"], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.lines: List[str] = []
        assert self.proc.stdout is not None
        deadline = time.monotonic() + WAIT
        while True:
            line = self.proc.stdout.readline()  # the first lines come at once (flushed)
            assert line, f"server ended: {self.lines}"
            self.lines.append(line)
            m = re.search(r"(?:ws|http)://127\.0\.0\.1:(\d+)/", line)
            if m:
                self.port = int(m.group(1))
                return
            assert time.monotonic() < deadline, self.lines

    def stop(self, sig: int = signal.SIGTERM, timeout: float = WAIT) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture
def server_of() -> Iterator:
    started: List[Server] = []

    def start(cli: str, *args: str) -> Server:
        s = Server((PY_CLI if cli == "python" else c_cli()) + list(args))
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop(signal.SIGKILL)


def raw_upgrade(port: int, subprotocol: Optional[str] = "chatws.v1", origin: Optional[str] = None,
                path: str = "/") -> Tuple[socket.socket, str]:
    """A WebSocket handshake by hand: (socket, the response head). What came
    after the head in the same read is kept in LEFTOVER[socket]."""
    s = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
    key = base64.b64encode(os.urandom(16)).decode()
    head = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n")
    if subprotocol:
        head += f"Sec-WebSocket-Protocol: {subprotocol}\r\n"
    if origin:
        head += f"Origin: {origin}\r\n"
    s.sendall((head + "\r\n").encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    LEFTOVER[s.fileno()] = rest
    return s, head.decode(errors="replace") + "\r\n"


LEFTOVER: dict = {}


def read_until_eof(s: socket.socket, timeout: float) -> Tuple[bytes, float]:
    """Everything the server sends until it closes the TCP connection; and how long that took."""
    start = time.monotonic()
    s.settimeout(timeout)
    data = LEFTOVER.pop(s.fileno(), b"")
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return data, time.monotonic() - start
        data += chunk


CLIS = ["python", "c"]


@pytest.mark.parametrize("cli", CLIS)
def test_plain_client_is_told_the_subprotocols(cli: str, server_of) -> None:
    srv = server_of(cli)
    ws = websocket.create_connection(f"ws://127.0.0.1:{srv.port}/", timeout=WAIT)
    opcode, frame = ws.recv_data(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_CLOSE
    assert int.from_bytes(frame[:2], "big") == 1008
    assert frame[2:].decode() == NO_SUBPROTOCOL_REASON
    ws.close()
    # A chat client on the same server is served.
    chat = websocket.create_connection(f"ws://127.0.0.1:{srv.port}/", timeout=WAIT,
                                       subprotocols=["chatws.v1"])
    assert json.loads(chat.recv())["type"] == "hello"
    chat.close()


@pytest.mark.parametrize("flag", ["--max-connections-per-ip", "--max-connections"])
@pytest.mark.parametrize("cli", CLIS)
def test_connection_limits(cli: str, flag: str, server_of) -> None:
    # One connection allowed (in all, or from this address): the second is refused with 503.
    srv = server_of(cli, flag, "1")
    first, head = raw_upgrade(srv.port)
    assert " 101 " in head.split("\r\n")[0]
    second, head = raw_upgrade(srv.port)
    assert " 503 " in head.split("\r\n")[0], head
    first.close()
    second.close()


@pytest.mark.parametrize("cli", CLIS)
def test_accept_mode_handoff(cli: str, server_of) -> None:
    # Two loops fed by loop 0, one on each; --max-connections counts the
    # server's: the first two are admitted, the third is not.
    srv = server_of(cli, "--threads", "2", "--accept-mode", "handoff", "--max-connections", "2")
    first, head = raw_upgrade(srv.port)
    assert " 101 " in head.split("\r\n")[0], head
    second, head = raw_upgrade(srv.port)
    assert " 101 " in head.split("\r\n")[0], head
    third, head = raw_upgrade(srv.port)
    assert " 503 " in head.split("\r\n")[0], head
    for s in (first, second, third):
        s.close()


@pytest.mark.parametrize("cli", CLIS)
def test_allowed_origins(cli: str, server_of) -> None:
    srv = server_of(cli, "--allowed-origin", "https://a.example", "--allowed-origin", "https://b.example")
    for origin, status in (("https://b.example", "101"), ("https://a.example", "101"),
                           ("https://evil.example", "403")):
        s, head = raw_upgrade(srv.port, origin=origin)
        assert f" {status} " in head.split("\r\n")[0], (origin, head)
        s.close()


@pytest.mark.parametrize("cli", CLIS)
def test_text_and_user_length_limits(cli: str, server_of) -> None:
    srv = server_of(cli, "--max-text-length", "5", "--max-user-length", "3")
    ws = websocket.create_connection(f"ws://127.0.0.1:{srv.port}/", timeout=WAIT,
                                     subprotocols=["chatws.v1"])
    json.loads(ws.recv())
    for user, text in (("ann", "123456"), ("anna", "hi")):
        ws.send(json.dumps({"user": user, "text": text}))
        assert json.loads(ws.recv())["type"] == "error"
    ws.send(json.dumps({"user": "ann", "text": "12345"}))
    assert json.loads(ws.recv())["type"] == "msg"
    ws.close()


@pytest.mark.parametrize("cli", CLIS)
def test_handshake_timeout(cli: str, server_of) -> None:
    srv = server_of(cli, "--handshake-timeout", "0.3")
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=WAIT)
    data, took = read_until_eof(s, WAIT)
    assert b" 408 " in data.split(b"\r\n")[0]
    assert took < 5, took  # the default is 10 s
    s.close()


@pytest.mark.parametrize("cli", CLIS)
def test_idle_timeout(cli: str, server_of) -> None:
    srv = server_of(cli, "--idle-timeout", "0.3")
    s, head = raw_upgrade(srv.port)
    assert " 101 " in head.split("\r\n")[0]
    data, took = read_until_eof(s, WAIT)  # a silent client: pinged, then dropped
    assert b"\x89" in data  # a ping frame (FIN + opcode 9)
    assert took < 5, took  # the default is 60 s
    s.close()


@pytest.mark.parametrize("cli", CLIS)
def test_close_timeout(cli: str, server_of) -> None:
    # A plain client is closed by the server (1008); one that never answers
    # the close frame is dropped after --close-timeout.
    srv = server_of(cli, "--close-timeout", "0.3")
    s, head = raw_upgrade(srv.port, subprotocol=None)
    assert " 101 " in head.split("\r\n")[0]
    data, took = read_until_eof(s, WAIT)
    assert data[:1] == b"\x88"  # the close frame
    assert took < 3, took  # the default is 5 s
    s.close()


@pytest.mark.parametrize("cli", CLIS)
def test_drain_timeout(cli: str, server_of) -> None:
    # A graceful stop waits at most --drain-timeout for a client that never
    # answers the close (1001).
    srv = server_of(cli, "--drain-timeout", "0.3")
    s, head = raw_upgrade(srv.port)
    assert " 101 " in head.split("\r\n")[0]
    if not LEFTOVER.pop(s.fileno(), b""):
        s.recv(65536)  # the hello
    start = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)
    assert srv.stop(timeout=WAIT) == 0
    assert time.monotonic() - start < 3.5  # the default is 5 s
    s.close()


@pytest.mark.parametrize("cli", CLIS)
def test_max_message_size(cli: str, server_of) -> None:
    # Chat connections are bounded by the chat's own limit too; a smaller
    # --max-message-size closes a longer message with 1009.
    srv = server_of(cli, "--max-message-size", "100")
    ws = websocket.create_connection(f"ws://127.0.0.1:{srv.port}/", timeout=WAIT,
                                     subprotocols=["chatws.v1"])
    json.loads(ws.recv())
    ws.send(json.dumps({"user": "ann", "text": "x" * 200}))
    while True:
        opcode, frame = ws.recv_data(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            assert int.from_bytes(frame[:2], "big") == 1009
            break
    ws.close()


@pytest.mark.parametrize("cli", CLIS)
@pytest.mark.parametrize("policy", ["close", "drop"])
def test_slow_consumer_policy(cli: str, policy: str, server_of) -> None:
    # A member that does not read while 12 MB are posted to its room (more
    # than the kernel's socket buffers hold), with a 64 KiB output buffer:
    # "close" ends its connection, "drop" keeps it open (messages dropped).
    srv = server_of(cli, "--slow-consumer", policy, "--max-output-buffer", "65536",
                    "--close-timeout", "0.5", "--max-messages-per-second", "off")  # floods on purpose
    slow, head = raw_upgrade(srv.port, path="/rooms/slow")
    assert " 101 " in head.split("\r\n")[0]
    poster = websocket.create_connection(f"ws://127.0.0.1:{srv.port}/rooms/slow", timeout=WAIT,
                                         subprotocols=["chatws.v1"])
    json.loads(poster.recv())
    text = "y" * 4000
    for _ in range(3000):
        poster.send(json.dumps({"user": "p", "text": text}))
        while json.loads(poster.recv())["type"] != "msg":  # its own message, back
            pass
    if policy == "close":
        data, _ = read_until_eof(slow, WAIT)  # a timeout here: never closed
        assert len(data) < 3000 * 4000, "the slow member got everything"
    else:
        # Messages were dropped (it gets far less than was posted), and it is
        # still open and served: it posts, the poster gets it. It reads what
        # was queued first, because a connection over its output cap is not
        # read from (its own posts would add to that output).
        data = LEFTOVER.pop(slow.fileno(), b"")
        slow.settimeout(1.0)
        try:
            while True:  # ends: at most the cap plus the kernel's buffers are queued
                chunk = slow.recv(1 << 20)
                assert chunk, "the slow member was closed"
                data += chunk
        except socket.timeout:
            pass
        assert len(data) < 3000 * 4000, "no message was dropped"
        slow.settimeout(WAIT)
        slow.sendall(masked_text(json.dumps({"user": "s", "text": "still here"})))
        while json.loads(poster.recv()).get("text") != "still here":
            pass
    poster.close()
    slow.close()


@pytest.mark.parametrize("cli", CLIS)
def test_socket_send_buffer(cli: str, server_of) -> None:
    # A member that never reads while 400 KB are posted to its room: the
    # kernel holds for it what --socket-send-buffer allows (the default,
    # 96 KiB, lets about 200 KB; see test_send_queue_bound.py).
    srv = server_of(cli, "--socket-send-buffer", "4096", "--max-messages-per-second", "off")
    idle, head = raw_upgrade(srv.port, path="/rooms/sndbuf")
    assert " 101 " in head.split("\r\n")[0]
    poster = websocket.create_connection(f"ws://127.0.0.1:{srv.port}/rooms/sndbuf", timeout=WAIT,
                                         subprotocols=["chatws.v1"])
    json.loads(poster.recv())
    for _ in range(100):
        poster.send(json.dumps({"user": "p", "text": "z" * 4000}))
        while json.loads(poster.recv())["type"] != "msg":  # stored and sent to the room
            pass
    out = subprocess.run(["ss", "-tnH", "state", "established", f"( sport = :{srv.port} )"],
                         check=True, stdout=subprocess.PIPE, text=True, timeout=WAIT).stdout
    port = idle.getsockname()[1]
    (send_q,) = [int(f[1]) for f in map(str.split, out.splitlines()) if f[3].endswith(f":{port}")]
    assert 0 < send_q <= 64 * 1024, send_q
    poster.close()
    idle.close()


# ------------------------------------------------------------ token mode

SECRET = b"0123456789abcdef-cli-test-secret"


@pytest.mark.parametrize("cli", CLIS)
def test_auth_secret_token_mode(cli: str, server_of, tmp_path: Path) -> None:
    # The same tokens for both servers: made here by chatws._token (what
    # `python -m chatws token` prints), checked by Python's or by C's code.
    secret = tmp_path / "secret"
    secret.write_bytes(b"  " + SECRET + b"\n")  # surrounding whitespace is not the secret's
    srv = server_of(cli, "--auth-secret", str(secret))
    url = f"ws://127.0.0.1:{srv.port}/"
    good = make_token(SECRET, "ann", 3600)
    user, expiry, mac = good.rsplit(".", 2)

    def refused(query: str) -> None:
        s, head = raw_upgrade(srv.port, path="/" + query)
        lines = head.split("\r\n")
        assert lines[0] == "HTTP/1.1 401 Unauthorized", head
        assert 'WWW-Authenticate: Bearer realm="chatws"' in lines, head
        body, _ = read_until_eof(s, WAIT)
        assert body == b"a valid token is required"
        s.close()

    refused("")                                                   # missing
    refused("?token=")                                            # empty
    refused(f"?token={make_token(SECRET, 'ann', -10)}")           # expired
    refused(f"?token={user}.{expiry}.{mac[:-1]}{'0' if mac[-1] != '0' else '1'}")  # tampered MAC
    refused(f"?token={user}.{int(expiry) + 1}.{mac}")             # tampered expiry
    refused(f"?token=bob.{expiry}.{mac}")                         # another user's name on ann's MAC
    refused(f"?token={make_token(b'another secret of 16+ bytes', 'ann', 3600)}")  # wrong secret
    refused(f"?token={user}.{expiry}.{mac.upper()}")              # not the token's spelling
    refused(f"?token={user}.{expiry}")                            # no MAC
    refused("?token=garbage")

    # Valid, in the query: posts as ann whatever it says its name is.
    ws = websocket.create_connection(url + f"?token={good}", timeout=WAIT, subprotocols=["chatws.v1"])
    assert json.loads(ws.recv())["identity"] == "ann"
    ws.send(json.dumps({"user": "mallory", "text": "hi"}))
    while (m := json.loads(ws.recv()))["type"] != "msg":
        pass
    assert m["user"] == "ann" and m["text"] == "hi"
    # Valid, in the cookie, with a dotted user name, on the classic format.
    dotted = make_token(SECRET, "b.o.b", 60)
    classic = websocket.create_connection(url, timeout=WAIT, subprotocols=["json"],
                                          cookie=f"theme=dark; chatws_token={dotted}")
    assert json.loads(classic.recv())["msg"][0]["user"] == "ann"  # the history
    classic.send(json.dumps({"user": "ann", "text": "me too"}))   # claims to be ann
    newest = json.loads(classic.recv())["msg"][0]
    assert (newest["user"], newest["text"]) == ("b.o.b", "me too")
    ws.close()
    classic.close()
    assert srv.stop() == 0


@pytest.mark.parametrize("cli", CLIS)
def test_auth_secret_file_must_hold_a_secret(cli: str, tmp_path: Path) -> None:
    short = tmp_path / "short"
    short.write_bytes(b"too short\n")
    argv = PY_CLI if cli == "python" else c_cli()
    for path in (short, tmp_path / "missing"):
        r = run_cli(argv + ["--port", "0", "--no-static", "--auth-secret", str(path)])
        assert r.returncode == 2, (r.stdout, r.stderr)
        assert "--auth-secret" in r.stderr and str(path) in r.stderr, r.stderr


def masked_text(payload: str) -> bytes:
    data = payload.encode()
    mask = os.urandom(4)
    assert len(data) < 126
    return bytes([0x81, 0x80 | len(data)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data))
