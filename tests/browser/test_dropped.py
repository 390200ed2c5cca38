"""A page that falls behind, on a server with the drop policy for slow readers,
is told what it missed (`{"type":"dropped"}`) and catches up by itself: its
list ends with every message of the room, in order, without a silent hole."""

from __future__ import annotations

import json
import random
import re
import shutil
import string
import time
import urllib.request

import pytest
from websockets.sync.client import connect

from chat_page import ChatPage
from server_process import STATIC_DIR, ChatServerProcess, ServerUnavailable, free_port

MESSAGES = 400        # within the page's 500 rendered and the room's history
TEXT_BYTES = 3000     # 400 x 3 KB: far past what the browser and the kernel buffer
HOLD_TIMEOUT_S = 10.0
DROP_TIMEOUT_S = 15.0
CATCH_UP_TIMEOUT_S = 20.0
# The page's main thread is held by synchronous requests for hold.txt (which
# the test turns to "go" once the server has dropped messages for the page):
# while it is held the page takes no frames, so the server's queue for it fills.
HOLD_PAGE = """
setTimeout(() => {  // after this script has returned to the driver
  const until = Date.now() + 60000;  // bounded: lets go by itself
  while (Date.now() < until) {
    const x = new XMLHttpRequest();
    x.open('GET', '/hold.txt?' + Date.now(), false);
    try { x.send(); } catch (e) {}
    if (x.status === 200 && x.responseText.trim() === 'go') return;
    const pause = Date.now() + 20;
    while (Date.now() < pause) {}
  }
}, 200);
"""


def metric(metrics_port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as r:
        text = r.read().decode()
    m = re.search(rf"^{name} (\S+)$", text, re.M)
    assert m, f"no {name} in /metrics"
    return float(m.group(1))


def wait_for(condition, timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, message
        time.sleep(0.05)  # poll interval of a bounded wait


@pytest.fixture
def dropping_server(tmp_path):
    """A chat server that drops (not closes) for slow readers, with a small
    per-connection queue and no compression (what is posted must fill the
    buffers as sent), serving a copy of the page and hold.txt."""
    web = tmp_path / "web"
    shutil.copytree(STATIC_DIR, web)
    (web / "hold.txt").write_text("wait\n")
    metrics_port = free_port()
    server = ChatServerProcess(tmp_path, static_dir=web, extra_args=[
        "--slow-consumer", "drop", "--max-output-buffer", "65536",
        "--socket-send-buffer", "16384", "--history-size", "1000",
        "--max-messages-per-second", "off", "--compression", "off",
        "--metrics-port", str(metrics_port)])
    try:
        server.start()
    except ServerUnavailable as e:
        pytest.fail(str(e), pytrace=False)
    server.web = web
    server.metrics_port = metrics_port
    yield server
    server.stop()


def test_page_catches_up_after_the_server_dropped_messages_for_it(browsers, dropping_server):
    server = dropping_server
    driver = browsers.get(0)
    try:
        page = ChatPage(driver, server.base_url).open()
        assert page.protocol() == "chatws.v1"
        requests = metric(server.metrics_port, "chatws_http_requests_total")
        driver.execute_script(HOLD_PAGE)
        # Its requests for hold.txt (the metrics listener's are not counted)
        # show the page is held: from here on it takes no frames.
        wait_for(lambda: metric(server.metrics_port, "chatws_http_requests_total") >= requests + 3,
                 HOLD_TIMEOUT_S, "the page's hold never started")

        rng = random.Random(7)
        texts = [f"{i:04d} " + "".join(rng.choices(string.ascii_letters, k=TEXT_BYTES))
                 for i in range(MESSAGES)]
        # The poster waits for its own messages a few at a time, so its queue
        # stays short: the drops are the page's.
        with connect(server.base_url.replace("http", "ws", 1) + "/", subprotocols=["chatws.v1"],
                     max_size=None, close_timeout=2) as poster:
            poster.recv(timeout=5)  # hello
            for start in range(0, MESSAGES, 8):
                chunk = texts[start:start + 8]
                for text in chunk:
                    poster.send(json.dumps({"user": "poster", "text": text}))
                echoed = 0
                while echoed < len(chunk):
                    frame = json.loads(poster.recv(timeout=5))
                    assert frame["type"] != "dropped", "the poster fell behind"
                    echoed += frame["type"] == "msg"
            wait_for(lambda: metric(server.metrics_port, "chatws_slow_consumer_drops_total") > 0,
                     DROP_TIMEOUT_S, "the server never dropped messages for the held page: the "
                     "test did not reach the case it is about\n" + server.log_tail())
        assert metric(server.metrics_port, "chatws_slow_consumer_drops_total") < MESSAGES

        (server.web / "hold.txt").write_text("go\n")
        page.wait(CATCH_UP_TIMEOUT_S,
                  lambda d: int(driver.find_element("id", "messages").get_attribute("data-resyncs") or 0) >= 1
                  and page.texts() == texts,
                  "the page did not catch up with every message after the server's dropped notice")
        ids = [int(m["id"]) for m in page.messages()]
        assert ids == list(range(ids[0], ids[0] + MESSAGES)), "ids not contiguous"
        # The notice may have timed out of view by now: its text stays.
        assert "catching up" in driver.find_element("id", "error").get_attribute("textContent")
        assert page.state() == "connected"
        assert page.console_errors() == []
    finally:
        (server.web / "hold.txt").write_text("go\n")  # the hold lets go whatever happened
        driver.get("about:blank")
