"""`python -m chatws` and the example host programs, as subprocesses."""

from __future__ import annotations

import json
import signal
import urllib.request
from pathlib import Path
from typing import Any, Callable

import pytest
import websocket  # websocket-client

import chatws

from conftest import REPO, WAIT, Child


def test_python_m_chatws_serves_page_and_chat_and_stops_on_sigterm(child: Callable[..., Child],
                                                                   tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<title>test page</title>")
    history_db = tmp_path / "h.sqlite3"
    proc = child("-m", "chatws", "--port", "0", "--static-dir", str(tmp_path),
                 "--history", str(history_db), "--history-size", "3")
    url = proc.wait_line(r"open (http://127\.0\.0\.1:\d+/)").group(1)
    with urllib.request.urlopen(url, timeout=WAIT) as resp:
        assert b"test page" in resp.read()

    ws = websocket.create_connection(url.replace("http://", "ws://"), timeout=WAIT, subprotocols=["json"])
    assert json.loads(ws.recv()) == {"msg": []}
    for i in range(5):
        ws.send(json.dumps({"user": "cli", "text": f"m{i}"}))
        latest = json.loads(ws.recv())["msg"]
    assert [m["text"] for m in latest] == ["m4", "m3", "m2"]  # --history-size 3, newest first

    proc.signal(signal.SIGTERM)
    opcode, frame = ws.recv_data(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_CLOSE and int.from_bytes(frame[:2], "big") == 1001
    ws.close()
    code, out, err = proc.finish()
    assert code == 0, err
    assert "stopped" in out
    assert history_db.exists()


def test_python_m_chatws_serves_the_bundled_page(child: Callable[..., Child]) -> None:
    bundled = chatws.bundled_web_dir()
    if bundled is None:
        pytest.skip("this installation has no bundled chat page")
    proc = child("-m", "chatws", "--port", "0")
    url = proc.wait_line(r"open (http://127\.0\.0\.1:\d+/)").group(1)
    with urllib.request.urlopen(url, timeout=WAIT) as resp:
        assert resp.read() == (bundled / "index.html").read_bytes()
    proc.signal(signal.SIGINT)
    code, _, err = proc.finish()
    assert code == 0, err


def test_python_m_chatws_reports_a_busy_port(child: Callable[..., Child]) -> None:
    with chatws.Server(port=0) as busy:
        proc = child("-m", "chatws", "--port", str(busy.port), "--no-static")
        code, _, err = proc.finish()
    assert code == 1
    assert "cannot start the server" in err


def test_python_m_chatws_help(child: Callable[..., Child]) -> None:
    code, out, _ = child("-m", "chatws", "--help").finish()
    assert code == 0
    for option in ("--host", "--port", "--static-dir", "--history", "--history-size", "--max-rooms",
                   "--max-idle-room-bytes"):
        assert option in out


def test_echo_server_example(child: Callable[..., Child]) -> None:
    proc = child(str(REPO / "examples" / "python" / "echo_server.py"), "--port", "0")
    url = proc.wait_line(r"listening on (ws://\S+)").group(1)
    ws = websocket.create_connection(url, timeout=WAIT)
    ws.send("echo?")
    assert ws.recv() == "echo?"
    ws.send_binary(b"\x00\x01")
    assert ws.recv() == b"\x00\x01"
    proc.signal(signal.SIGTERM)
    opcode, _ = ws.recv_data(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_CLOSE
    ws.close()
    code, _, err = proc.finish()
    assert code == 0, err


def test_chat_server_example_moderates(child: Callable[..., Child], tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("page")
    proc = child(str(REPO / "examples" / "python" / "chat_server.py"), "--port", "0",
                 "--static-dir", str(tmp_path))
    url = proc.wait_line(r"open (http://\S+)").group(1)
    ws = websocket.create_connection(url.replace("http://", "ws://"), timeout=WAIT, subprotocols=["json"])
    assert json.loads(ws.recv()) == {"msg": []}
    ws.send(json.dumps({"user": "ann", "text": "   "}))
    assert "error" in json.loads(ws.recv())  # blank after strip: rejected
    ws.send(json.dumps({"user": " ann ", "text": "  buy spam now "}))
    (entry,) = json.loads(ws.recv())["msg"]
    assert (entry["user"], entry["text"]) == ("ann", "buy **** now")
    plain = websocket.create_connection(url.replace("http://", "ws://"), timeout=WAIT)
    plain.send("not chat")
    opcode, frame = plain.recv_data(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_CLOSE and int.from_bytes(frame[:2], "big") == 1008
    plain.close()
    proc.signal(signal.SIGINT)
    ws.close()
    code, _, err = proc.finish()
    assert code == 0, err
    assert "joined" in err  # the example logs arrivals


def test_readme_echo_example_is_runnable(child: Callable[..., Child]) -> Any:
    # The README's first example, with port 0 and a line to wait for.
    readme = (REPO / "python" / "README.md").read_text()
    code = readme.split("```python\n", 1)[1].split("```", 1)[0]
    assert "port=8765" in code
    code = code.replace("port=8765", "port=0")
    proc = child("-c", code)
    url = proc.wait_line(r"echo server on (ws://\S+)").group(1)
    ws = websocket.create_connection(url, timeout=WAIT)
    ws.send("readme")
    assert ws.recv() == "readme"
    ws.close()
    proc.signal(signal.SIGINT)
    rc, out, err = proc.finish()
    assert "KeyboardInterrupt" in err and rc != 0
