"""TLS from Python: wss:// with the websockets client, https:// with curl,
reload under live connections, every bad-certificate case, hostile clients,
old TLS versions refused, and `python -m chatws` / the C example reloading on
SIGHUP. Certificates come from a test CA made in the test (trustme)."""

from __future__ import annotations

import logging
import os
import re
import select
import shutil
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Iterator, List, Tuple

import pytest
import trustme
import websockets
from cryptography import x509

import chatws

from conftest import REPO, WAIT, Child, run_async


class Pki:
    """A test CA and leaf certificates for 127.0.0.1, written to files."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.ca = trustme.CA()
        self.ca_file = tmp / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))

    def leaf(self, name: str) -> Tuple[Path, Path, int]:
        cert = self.ca.issue_cert("127.0.0.1", "localhost")
        chain, key = self.tmp / f"{name}.pem", self.tmp / f"{name}.key"
        cert.private_key_pem.write_to_path(str(key))
        with open(chain, "wb") as f:
            for blob in cert.cert_chain_pems:
                f.write(blob.bytes())
        serial = x509.load_pem_x509_certificate(cert.cert_chain_pems[0].bytes()).serial_number
        return chain, key, serial

    def client_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        return ctx


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path)


@pytest.fixture
def tls_echo(make_server: Callable[..., chatws.Server], pki: Pki, tmp_path: Path) -> Tuple[chatws.Server, int]:
    cert, key, serial = pki.leaf("a")
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "index.html").write_text("<p>served over https</p>")
    server = make_server(tls_cert=cert, tls_key=key, static_dir=tmp_path / "www")

    @server.on_message
    def echo(conn: chatws.Connection, message: chatws.Message) -> None:
        conn.send(message)

    server.start()
    return server, serial


def peer_serial(ws: Any) -> int:
    der = ws.transport.get_extra_info("ssl_object").getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der).serial_number


def test_urls_say_wss_and_https(tls_echo: Tuple[chatws.Server, int]) -> None:
    server, _ = tls_echo
    assert server.tls
    assert server.url.startswith("wss://127.0.0.1:")
    assert server.http_url.startswith("https://127.0.0.1:")


def test_websockets_client_over_wss(tls_echo: Tuple[chatws.Server, int], pki: Pki) -> None:
    server, serial = tls_echo

    async def main() -> None:
        async with websockets.connect(server.url, ssl=pki.client_context()) as ws:
            assert peer_serial(ws) == serial
            for msg in ("hello", "x" * 4096, b"\x00\x01" * 50000):
                await ws.send(msg)
                assert await ws.recv() == msg

    run_async(main())


def test_curl_fetches_static_files_over_https(tls_echo: Tuple[chatws.Server, int], pki: Pki) -> None:
    server, _ = tls_echo
    out = subprocess.run(
        ["curl", "--silent", "--show-error", "--fail", "--max-time", str(WAIT), "--cacert", str(pki.ca_file),
         server.http_url + "index.html"],
        capture_output=True, text=True, timeout=2 * WAIT,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == "<p>served over https</p>"
    # HTTP/1.1 by ALPN (curl offers h2 too).
    head = subprocess.run(
        ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_version}", "--max-time", str(WAIT), "--cacert",
         str(pki.ca_file), server.http_url + "index.html"], capture_output=True, text=True, timeout=2 * WAIT)
    assert head.stdout == "1.1", head.stderr


def test_session_tickets_resume_and_can_be_turned_off(make_server: Callable[..., chatws.Server], pki: Pki) -> None:
    cert, key, _ = pki.leaf("a")

    def resumed(server: chatws.Server) -> bool:
        ctx = pki.client_context()
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2  # the session is there right after the handshake
        with socket.create_connection(("127.0.0.1", server.port), timeout=WAIT) as raw:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as first:
                session = first.session
        with socket.create_connection(("127.0.0.1", server.port), timeout=WAIT) as raw:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1", session=session) as second:
                return second.session_reused

    assert resumed(make_server(tls_cert=cert, tls_key=key).start())
    assert not resumed(make_server(tls_cert=cert, tls_key=key, tls_session_tickets=False).start())


def test_reload_under_live_connections(tls_echo: Tuple[chatws.Server, int], pki: Pki) -> None:
    server, old_serial = tls_echo
    new_cert, new_key, new_serial = pki.leaf("b")

    async def main() -> None:
        ctx = pki.client_context()
        async with websockets.connect(server.url, ssl=ctx) as old:
            await old.send("before")
            assert await old.recv() == "before"
            # A bad pair is refused and the old one stays.
            _, other_key, _ = pki.leaf("c")
            with pytest.raises(chatws.InvalidArgument, match="key values mismatch"):
                server.reload_tls(new_cert, other_key)
            async with websockets.connect(server.url, ssl=ctx) as still_old:
                assert peer_serial(still_old) == old_serial
            server.reload_tls(new_cert, new_key)  # from this thread, the loop runs on another
            async with websockets.connect(server.url, ssl=ctx) as fresh:
                assert peer_serial(fresh) == new_serial
                await fresh.send("new")
                assert await fresh.recv() == "new"
            await old.send("after")
            assert await old.recv() == "after"
            assert peer_serial(old) == old_serial

    run_async(main())


def test_reload_rereads_replaced_files(make_server: Callable[..., chatws.Server], pki: Pki, tmp_path: Path) -> None:
    a_cert, a_key, _ = pki.leaf("a")
    b_cert, b_key, b_serial = pki.leaf("b")
    live_cert, live_key = tmp_path / "live.pem", tmp_path / "live.key"
    shutil.copy(a_cert, live_cert)
    shutil.copy(a_key, live_key)
    server = make_server(tls_cert=live_cert, tls_key=live_key).start()
    shutil.copy(b_cert, live_cert)
    shutil.copy(b_key, live_key)
    server.reload_tls()

    async def main() -> None:
        async with websockets.connect(server.url, ssl=pki.client_context()) as ws:
            assert peer_serial(ws) == b_serial

    run_async(main())


def test_reload_without_tls_is_invalid_state(make_server: Callable[..., chatws.Server]) -> None:
    with pytest.raises(chatws.InvalidState):
        make_server().reload_tls()


@pytest.mark.parametrize("case", ["missing-cert", "missing-key", "mismatch", "garbage-cert", "key-as-cert",
                                  "directory-key", "only-cert"])
def test_bad_certificates_fail_create_naming_the_file(make_server: Callable[..., chatws.Server], pki: Pki,
                                                     tmp_path: Path, case: str) -> None:
    cert, key, _ = pki.leaf("a")
    _, other_key, _ = pki.leaf("b")
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    (tmp_path / "dir.key").mkdir()
    cases = {
        "missing-cert": (tmp_path / "nope.pem", key, "nope.pem.*No such file"),
        "missing-key": (cert, tmp_path / "nope.key", "nope.key.*No such file"),
        "mismatch": (cert, other_key, "does not match certificate.*key values mismatch"),
        "garbage-cert": (junk, key, "junk.pem.*no start line"),
        "key-as-cert": (key, key, "a.key.*no start line"),
        "directory-key": (cert, tmp_path / "dir.key", "dir.key.*Is a directory"),
    }
    if case == "only-cert":
        with pytest.raises(chatws.InvalidArgument, match="tls_cert and tls_key go together"):
            make_server(tls_cert=cert)
        return
    c, k, pattern = cases[case]
    with pytest.raises(chatws.InvalidArgument, match=pattern):
        make_server(tls_cert=c, tls_key=k)


def test_encrypted_key_with_passphrase_sources(make_server: Callable[..., chatws.Server], pki: Pki,
                                               tmp_path: Path) -> None:
    cert, key, _ = pki.leaf("a")
    enc = tmp_path / "enc.key"
    subprocess.run(["openssl", "pkey", "-in", str(key), "-out", str(enc), "-aes256", "-passout", "pass:hunter2"],
                   check=True, capture_output=True)
    with pytest.raises(chatws.InvalidArgument, match="enc.key' is encrypted and no passphrase was given"):
        make_server(tls_cert=cert, tls_key=enc)
    with pytest.raises(chatws.InvalidArgument, match="enc.key' is encrypted and the passphrase does not decrypt it"):
        make_server(tls_cert=cert, tls_key=enc, tls_key_passphrase="pass:wrong")
    make_server(tls_cert=cert, tls_key=enc, tls_key_passphrase="pass:hunter2")
    (tmp_path / "pw").write_text("hunter2\n")
    make_server(tls_cert=cert, tls_key=enc, tls_key_passphrase=f"file:{tmp_path / 'pw'}")


def test_tls_options_are_validated(make_server: Callable[..., chatws.Server], pki: Pki) -> None:
    cert, key, _ = pki.leaf("a")
    with pytest.raises(chatws.InvalidArgument, match="tls_min_version"):
        make_server(tls_cert=cert, tls_key=key, tls_min_version="1.1")
    with pytest.raises(chatws.InvalidArgument, match="NOPE"):
        make_server(tls_cert=cert, tls_key=key, tls_ciphers="NOPE")
    # TLS 1.3 only: a TLS 1.2 client is refused.
    server = make_server(tls_cert=cert, tls_key=key, tls_min_version="1.3").start()
    ctx = pki.client_context()
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    with socket.create_connection(("127.0.0.1", server.port), timeout=WAIT) as raw:
        with pytest.raises(ssl.SSLError, match="PROTOCOL_VERSION"):
            ctx.wrap_socket(raw, server_hostname="127.0.0.1")


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion:DeprecationWarning")
@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1])
def test_old_tls_versions_are_refused(tls_echo: Tuple[chatws.Server, int], pki: Pki,
                                      version: ssl.TLSVersion) -> None:
    server, _ = tls_echo
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(str(pki.ca_file))
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # let the client offer the old version at all
    ctx.minimum_version = version
    ctx.maximum_version = version
    with socket.create_connection(("127.0.0.1", server.port), timeout=WAIT) as raw:
        # The server's protocol_version alert (not a client that could not offer it).
        with pytest.raises(ssl.SSLError, match="PROTOCOL_VERSION"):
            ctx.wrap_socket(raw, server_hostname="127.0.0.1")


def test_hostile_clients_while_others_are_served(make_server: Callable[..., chatws.Server], pki: Pki,
                                                caplog: pytest.LogCaptureFixture) -> None:
    cert, key, _ = pki.leaf("a")
    server = make_server(tls_cert=cert, tls_key=key, handshake_timeout=0.5)

    @server.on_message
    def echo(conn: chatws.Connection, message: chatws.Message) -> None:
        conn.send(message)

    server.start()
    caplog.set_level(logging.DEBUG, logger="chatws")
    silent = socket.create_connection(("127.0.0.1", server.port), timeout=WAIT)
    dribble = socket.create_connection(("127.0.0.1", server.port), timeout=WAIT)
    dribble.sendall(b"\x16\x03\x01")  # the start of a ClientHello, and no more
    garbage = socket.create_connection(("127.0.0.1", server.port), timeout=WAIT)
    garbage.sendall(b"\x16\x03\x01\x00\x40" + os.urandom(64))
    plain = socket.create_connection(("127.0.0.1", server.port), timeout=WAIT)
    plain.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")

    async def good() -> None:
        async with websockets.connect(server.url, ssl=pki.client_context()) as ws:
            await ws.send("fine")
            assert await ws.recv() == "fine"

    run_async(good())
    answer = b""
    while True:
        chunk = plain.recv(4096)
        if not chunk:
            break
        answer += chunk
    assert answer.startswith(b"HTTP/1.1 400") and b"use https://" in answer
    assert garbage.recv(1) == b"\x15"  # an alert record
    for s in (silent, dribble):
        s.settimeout(WAIT)
        assert s.recv(1) == b""  # closed at the handshake timeout
    for s in (silent, dribble, garbage, plain):
        s.close()
    run_async(good())
    lines = [r for r in caplog.records if "plain HTTP" in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelno == logging.DEBUG


def _tls_args(pki: Pki, tmp_path: Path) -> Tuple[Path, Path, int, int]:
    a_cert, a_key, a_serial = pki.leaf("a")
    live_cert, live_key = tmp_path / "live.pem", tmp_path / "live.key"
    shutil.copy(a_cert, live_cert)
    shutil.copy(a_key, live_key)
    b_cert, b_key, b_serial = pki.leaf("b")
    return live_cert, live_key, a_serial, b_serial


def _swap_to_b(tmp_path: Path) -> None:
    shutil.copy(tmp_path / "b.pem", tmp_path / "live.pem")
    shutil.copy(tmp_path / "b.key", tmp_path / "live.key")


def _serial_at(pki: Pki, url: str) -> int:
    async def main() -> int:
        async with websockets.connect(url, ssl=pki.client_context(), subprotocols=["json"]) as ws:
            await ws.recv()  # the history snapshot
            return peer_serial(ws)

    return run_async(main())


def test_python_m_chatws_serves_wss_and_reloads_on_sighup(child: Callable[..., Child], pki: Pki,
                                                         tmp_path: Path) -> None:
    cert, key, a_serial, b_serial = _tls_args(pki, tmp_path)
    proc = child("-m", "chatws", "--port", "0", "--no-static", "--tls-cert", str(cert), "--tls-key", str(key))
    url = proc.wait_line(r"\(WebSocket (wss://127\.0\.0\.1:\d+/)\)").group(1)
    assert _serial_at(pki, url) == a_serial
    _swap_to_b(tmp_path)
    proc.signal(signal.SIGHUP)
    # The handler runs between two loop slices (0.1 s): each new connection
    # checks again, a bounded number of times.
    for _ in range(200):
        if _serial_at(pki, url) == b_serial:
            break
    assert _serial_at(pki, url) == b_serial
    proc.signal(signal.SIGTERM)
    code, _, err = proc.finish()
    assert code == 0, err
    assert "TLS certificate reloaded" in err


class _Lines:
    """Lines of a pipe, read with a deadline (raw reads: no buffered line
    hiding from select())."""

    def __init__(self, pipe: Any) -> None:
        self.fd = pipe.fileno()
        self.buf = b""
        self.seen: List[str] = []

    def wait(self, pattern: str, timeout: float = WAIT) -> "re.Match[str]":
        deadline = time.monotonic() + timeout
        while True:
            while b"\n" in self.buf:
                raw, self.buf = self.buf.split(b"\n", 1)
                line = raw.decode(errors="replace")
                self.seen.append(line)
                m = re.search(pattern, line)
                if m:
                    return m
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.fd], [], [], max(left, 0))
            if not ready:
                raise AssertionError(f"no line matching {pattern!r} within {timeout}s: {self.seen}")
            chunk = os.read(self.fd, 4096)
            if not chunk:
                raise AssertionError(f"process ended before {pattern!r}: {self.seen}")
            self.buf += chunk


def test_c_chat_server_serves_wss_and_reloads_on_sighup(pki: Pki, tmp_path: Path) -> None:
    build = REPO / os.environ.get("CHATWS_BUILD_DIR", "build")
    binary = build / "examples" / "chat_server"
    assert binary.exists(), f"no {binary}: build the examples (or set $CHATWS_BUILD_DIR)"
    cert, key, a_serial, b_serial = _tls_args(pki, tmp_path)
    proc = subprocess.Popen([str(binary), "--port", "0", "--static-dir", str(tmp_path), "--tls-cert", str(cert),
                             "--tls-key", str(key), "--verbose"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    log = _Lines(proc.stderr)
    try:
        port = int(log.wait(r"chat on https://127\.0\.0\.1:(\d+)/").group(1))
        url = f"wss://127.0.0.1:{port}/"
        assert _serial_at(pki, url) == a_serial
        _swap_to_b(tmp_path)
        proc.send_signal(signal.SIGHUP)
        log.wait(r"SIGHUP: TLS certificate reloaded")
        assert _serial_at(pki, url) == b_serial
        # A bad pair on the next SIGHUP: refused with the reason, the current one stays.
        (tmp_path / "live.key").write_text("garbage")
        proc.send_signal(signal.SIGHUP)
        line = log.wait(r"SIGHUP: TLS reload failed").string
        assert "live.key" in line, line
        assert _serial_at(pki, url) == b_serial
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=WAIT)
    assert proc.returncode == 0
