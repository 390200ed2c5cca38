"""Token mode (issue 12): ``python -m chatws --auth-secret FILE`` admits only
upgrades carrying a valid token (query or cookie) and posts as its user;
``python -m chatws token`` prints one. Cases: valid (query and cookie),
expired, tampered, missing, another user's name in the token, and a spoofed
``user`` overridden by the identity."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Callable

import pytest
import websocket  # websocket-client

from chatws._token import check_token, make_token

from conftest import WAIT, Child

SECRET = b"0123456789abcdef-test-secret"


def test_check_token_cases() -> None:
    good = make_token(SECRET, "ann", 60, now=1000)
    assert check_token(SECRET, good, now=1000) == "ann"
    assert check_token(SECRET, good, now=1060) is None           # expired
    user, expiry, mac = good.rsplit(".", 2)
    assert check_token(SECRET, f"bob.{expiry}.{mac}", now=1000) is None  # wrong user
    assert check_token(SECRET, f"{user}.{int(expiry) + 999}.{mac}", now=1000) is None  # longer life
    assert check_token(SECRET, good[:-1] + ("0" if good[-1] != "0" else "1"), now=1000) is None
    assert check_token(b"another secret, 16+", good, now=1000) is None
    assert check_token(SECRET, "", now=1000) is None
    assert check_token(SECRET, "no-dots", now=1000) is None
    dotted = make_token(SECRET, "a.b", 60, now=1000)  # dots in a name are fine
    assert check_token(SECRET, dotted, now=1000) == "a.b"


def test_python_m_chatws_token_mode(child: Callable[..., Child], tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(SECRET + b"\n")
    code, out, err = child("-m", "chatws", "token", "--auth-secret", str(secret),
                           "--user", "ann", "--ttl", "3600").finish()
    assert code == 0, err
    token = out.strip()
    assert check_token(SECRET, token) == "ann"

    proc = child("-m", "chatws", "--port", "0", "--no-static", "--auth-secret", str(secret))
    url = proc.wait_line(r"WebSocket (ws://127\.0\.0\.1:\d+/)").group(1)

    def refused(target: str, **kwargs: object) -> int:
        with pytest.raises(websocket.WebSocketBadStatusException) as info:
            websocket.create_connection(target, timeout=WAIT, subprotocols=["json"], **kwargs)
        return info.value.status_code

    assert refused(url) == 401                                   # missing
    user, expiry, mac = token.rsplit(".", 2)
    assert refused(url + f"?token=bob.{expiry}.{mac}") == 401    # another user's name
    assert refused(url + f"?token={token[:-2]}00") == 401        # tampered
    expired = make_token(SECRET, "ann", -10)
    assert refused(url + f"?token={expired}") == 401             # expired

    ws = websocket.create_connection(url + f"?token={token}", timeout=WAIT, subprotocols=["json"])
    assert json.loads(ws.recv()) == {"msg": []}
    ws.send(json.dumps({"user": "mallory", "text": "hi"}))       # spoofed name
    assert json.loads(ws.recv())["msg"][0]["user"] == "ann"
    ws.close()
    ws = websocket.create_connection(url, timeout=WAIT, subprotocols=["chatws.v1"],
                                     cookie=f"chatws_token={token}")  # the cookie works too
    assert json.loads(ws.recv())["identity"] == "ann"
    ws.close()

    proc.signal(signal.SIGTERM)
    code, _, err = proc.finish()
    assert code == 0, err
