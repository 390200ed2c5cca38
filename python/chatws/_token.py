"""Shared-secret tokens for ``python -m chatws --auth-secret FILE`` (issue 12).

A token is ``<user>.<expiry>.<mac>``: ``expiry`` in Unix seconds and ``mac``
the hex HMAC-SHA256 (OpenSSL's, through hashlib) of ``"<user>.<expiry>"``
under the secret (the file's bytes, surrounding whitespace removed). The
server admits an upgrade that carries a valid, unexpired token in a
``token`` query parameter or a ``chatws_token`` cookie, and binds ``<user>``
as the connection's identity; anything else gets 401.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from typing import Callable, Optional, Union

from ._access import Accept, Reject, UpgradeRequest

__all__ = ["load_secret", "make_token", "check_token", "token_hook"]

COOKIE = "chatws_token"


def load_secret(path: Union[str, "os.PathLike[str]"]) -> bytes:
    with open(path, "rb") as f:
        secret = f.read().strip()
    if len(secret) < 16:
        raise ValueError(f"{os.fspath(path)}: the secret must be at least 16 bytes")
    return secret


def _mac(secret: bytes, payload: str) -> str:
    return hmac.new(secret, payload.encode(), hashlib.sha256).hexdigest()


def make_token(secret: bytes, user: str, ttl: int, now: Optional[float] = None) -> str:
    if not user or "." in user[-1:]:
        raise ValueError("user must be a non-empty name")
    expiry = int(now if now is not None else time.time()) + int(ttl)
    payload = f"{user}.{expiry}"
    return f"{payload}.{_mac(secret, payload)}"


def check_token(secret: bytes, token: str, now: Optional[float] = None) -> Optional[str]:
    """The token's user if it is valid and unexpired, else None."""
    parts = token.rsplit(".", 2)
    if len(parts) != 3 or not parts[0] or not parts[1].isdigit():
        return None
    user, expiry, mac = parts
    # Constant time: a wrong MAC takes as long whatever its prefix.
    if not hmac.compare_digest(_mac(secret, f"{user}.{expiry}"), mac):
        return None
    if int(expiry) <= (now if now is not None else time.time()):
        return None
    return user


def token_hook(secret: bytes) -> Callable[[UpgradeRequest], Union[Accept, Reject]]:
    def hook(request: UpgradeRequest) -> Union[Accept, Reject]:
        token = request.query.get("token", [""])[0] or request.cookies.get(COOKIE, "")
        user = check_token(secret, token) if token else None
        if user is None:
            return Reject(401, body="a valid token is required",
                          headers={"WWW-Authenticate": 'Bearer realm="chatws"'})
        return Accept(identity=user)

    return hook
