"""Server.stats(), the metrics listener and the log rate limit, from Python:
counters against the traffic sent, the /metrics page through promtool, a
real Prometheus server scraping it on loopback, the CLI flag, and refused
handshakes reaching the "chatws" logger at a bounded rate."""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Callable, List, Optional

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

import chatws

from conftest import WAIT


def wait_stats(server: chatws.Server, pred: Callable[[chatws.ServerStats], bool],
               timeout: float = WAIT) -> chatws.ServerStats:
    """The snapshot is published at the end of each loop iteration: poll it
    (bounded) until the counters reach what the test sent."""
    deadline = time.monotonic() + timeout
    while True:
        s = server.stats()
        if pred(s):
            return s
        assert time.monotonic() < deadline, f"stats never matched: {s}"
        time.sleep(0.005)


def http_get(port: int, path: str) -> "tuple[int, str, str]":
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=WAIT) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_stats_count_the_traffic_sent(make_server: Callable[..., chatws.Server]) -> None:
    server = make_server(allowed_origins=["http://ok.example"])

    @server.on_message
    def relay(conn: chatws.Connection, message: chatws.Message) -> None:
        server.broadcast(message)

    server.start()
    M, N, K = 3, 12, 4
    for _ in range(K):
        with pytest.raises(InvalidStatus) as refused:
            connect(server.url, origin="http://evil.example", open_timeout=WAIT)
        assert refused.value.response.status_code == 403
    with contextlib.ExitStack() as stack:
        clients = [stack.enter_context(connect(server.url, origin="http://ok.example", open_timeout=WAIT))
                   for _ in range(M)]
        for i in range(N):
            clients[i % M].send(f"m{i}")
        for c in clients:
            assert [c.recv(timeout=WAIT) for _ in range(N)]
        s = wait_stats(server, lambda s: s.broadcast_deliveries >= N * M)
        assert isinstance(s, chatws.ServerStats)
        assert s.version == chatws.__version__
        assert s.websocket_connections == M
        assert s.messages_received == N
        assert s.broadcasts == N
        assert s.broadcast_deliveries == N * M
        assert s.handshakes_accepted == M
        assert s.handshakes_rejected["origin"] == K
        assert s.handshakes_rejected["hook"] == 0
        assert s.loop_iteration.count == s.loop_iterations > 0
        assert len(s.loop_iteration.buckets) == len(s.loop_iteration.bounds) + 1
        assert not s.chat_enabled
    s = wait_stats(server, lambda s: s.websocket_connections == 0 and s.closes["1000"] == M)
    assert s.closes["other"] == 0


def test_metrics_off_by_default(make_server: Callable[..., chatws.Server]) -> None:
    assert make_server().metrics_port is None
    with pytest.raises(chatws.InvalidArgument):
        make_server(metrics_port=70000)


def test_metrics_endpoints_and_promtool(make_server: Callable[..., chatws.Server]) -> None:
    server = make_server(chat=True, metrics_port=0).start()
    port = server.metrics_port
    assert port and port != server.port
    with connect(server.url + "rooms/lobby", subprotocols=["json"], open_timeout=WAIT) as c:
        c.recv(timeout=WAIT)
        c.send(json.dumps({"user": "ann", "text": "hi"}))
        c.recv(timeout=WAIT)
        wait_stats(server, lambda s: s.history_messages == 1 and s.chat_members == 1)
        status, ctype, body = http_get(port, "/metrics")
    assert status == 200
    assert ctype.startswith("text/plain; version=0.0.4")
    assert f'chatws_build_info{{version="{chatws.__version__}"}} 1' in body
    assert "\nchatws_chat_members 1\n" in body
    assert "\nchatws_history_messages_total 1\n" in body
    assert "lobby" not in body  # no room names (nor connection ids) as labels
    assert http_get(port, "/healthz")[0] == 200
    assert http_get(port, "/readyz")[:1] == (200,)
    assert http_get(port, "/nothing")[0] == 404
    promtool = shutil.which("promtool")
    # A missing tool fails the test rather than skipping it: scripts/bootstrap.sh installs it.
    assert promtool is not None, "promtool not installed (Debian package prometheus; scripts/bootstrap.sh)"
    r = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, text=True,
                       timeout=WAIT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip() == "" and r.stderr.strip() == "", r.stdout + r.stderr  # no lint warnings


def test_a_real_prometheus_scrapes_the_connection_gauge(
        make_server: Callable[..., chatws.Server], tmp_path: Path) -> None:
    prometheus = shutil.which("prometheus")
    assert prometheus is not None, "prometheus not installed (Debian package prometheus; scripts/bootstrap.sh)"
    server = make_server(metrics_port=0).start()
    stack = contextlib.ExitStack()
    for _ in range(7):
        stack.enter_context(connect(server.url, open_timeout=WAIT))
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        "scrape_configs:\n  - job_name: chatws\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{server.metrics_port}']\n")
    web = free_port()
    proc = subprocess.Popen(
        [prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{web}", "--log.level=warn"],
        stdout=subprocess.DEVNULL, stderr=(tmp_path / "prometheus.log").open("w"))
    try:
        query = urllib.parse.urlencode({"query": 'chatws_connections{kind="websocket",job="chatws"}'})
        deadline = time.monotonic() + 60
        value: Optional[str] = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{web}/api/v1/query?{query}", timeout=5) as r:
                    result = json.load(r)["data"]["result"]
                if result:
                    value = result[0]["value"][1]
                    if value == "7":
                        break
            except (urllib.error.URLError, ConnectionError, OSError):
                pass  # not listening yet
            time.sleep(0.2)
        assert value == "7", f"query gave {value!r}; log: {(tmp_path / 'prometheus.log').read_text()[-2000:]}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        stack.close()


def test_refused_handshakes_are_logged_at_a_bounded_rate(
        make_server: Callable[..., chatws.Server], caplog: pytest.LogCaptureFixture) -> None:
    server = make_server(websocket_path_prefix="/ws").start()
    K = 25
    with caplog.at_level(logging.INFO, logger="chatws"):
        for _ in range(K):
            with pytest.raises(InvalidStatus) as refused:
                connect(server.url + "nope", open_timeout=WAIT)
            assert refused.value.response.status_code == 404
        s = wait_stats(server, lambda s: s.handshakes_rejected["path"] == K)
        deadline = time.monotonic() + WAIT
        while sum("refused" in r.getMessage() for r in caplog.records) < 10 and time.monotonic() < deadline:
            time.sleep(0.01)
    lines = [r.getMessage() for r in caplog.records if r.name == "chatws" and "refused" in r.getMessage()]
    assert len(lines) == 10, lines
    assert all("404" in line and "[path]" in line for line in lines)
    assert s.log_lines_suppressed == K - 10


def test_cli_metrics_port(child: Callable[..., "object"]) -> None:
    c = child("-m", "chatws", "--port", "0", "--no-static", "--metrics-port", "0")
    m = c.wait_line(r"metrics on http://127\.0\.0\.1:(\d+)/metrics")  # type: ignore[attr-defined]
    port = int(m.group(1))
    status, ctype, body = http_get(port, "/metrics")
    assert status == 200 and "chatws_connections{kind=\"websocket\"} 0" in body
    assert http_get(port, "/healthz")[0] == 200
    c.signal(15)  # type: ignore[attr-defined]
    rc, _, err = c.finish()  # type: ignore[attr-defined]
    assert rc == 0, err
