"""Echo, message types, sizes, addresses and the Connection API, with the
synchronous websocket-client library as an independent client."""

from __future__ import annotations

import importlib.metadata
import socket
import urllib.request
from typing import Any, Callable

import pytest
import websocket  # websocket-client

import chatws
from chatws import _native

from conftest import WAIT, Events


def connect(server: chatws.Server, path: str = "/", **kwargs: Any) -> websocket.WebSocket:
    return websocket.create_connection(server.url.rstrip("/") + path, timeout=WAIT, **kwargs)


def test_versions_agree() -> None:
    assert chatws.__version__ == _native.version() == _native.HEADER_VERSION
    assert importlib.metadata.version("chatws") == chatws.__version__
    major, minor, patch = (int(x) for x in chatws.__version__.split("."))
    assert _native.version_number() == major * 10000 + minor * 100 + patch


def test_echo_text_and_binary(echo_server: chatws.Server) -> None:
    ws = connect(echo_server)
    try:
        ws.send("hello, wörld ✓")
        opcode, data = ws.recv_data()
        assert opcode == websocket.ABNF.OPCODE_TEXT
        assert data.decode("utf-8") == "hello, wörld ✓"

        payload = bytes(range(256)) * 4
        ws.send_binary(payload)
        opcode, data = ws.recv_data()
        assert opcode == websocket.ABNF.OPCODE_BINARY
        assert data == payload

        ws.send_binary(b"")
        assert ws.recv_data() == (websocket.ABNF.OPCODE_BINARY, b"")
    finally:
        ws.close()


def test_handler_sees_str_for_text_and_bytes_for_binary(make_server: Callable[..., chatws.Server],
                                                        events: Events) -> None:
    server = make_server(on_message=lambda conn, msg: events.add("msg", msg))
    server.start()
    ws = connect(server)
    ws.send("text")
    ws.send_binary(b"\xff\x00binary")
    got = events.wait_count("msg", 2)
    assert got == [("text",), (b"\xff\x00binary",)]
    assert type(got[0][0]) is str and type(got[1][0]) is bytes
    ws.close()


def test_send_accepts_bytes_like_objects(make_server: Callable[..., chatws.Server]) -> None:
    server = make_server()

    @server.on_message
    def reply(conn: chatws.Connection, msg: chatws.Message) -> None:
        conn.send(bytearray(b"ba"))
        conn.send(memoryview(b"xmvx")[1:3])
        with pytest.raises(TypeError):
            conn.send(12345)  # type: ignore[arg-type]

    server.start()
    ws = connect(server)
    ws.send("go")
    assert ws.recv_data() == (websocket.ABNF.OPCODE_BINARY, b"ba")
    assert ws.recv_data() == (websocket.ABNF.OPCODE_BINARY, b"mv")
    ws.close()


def test_ten_mib_message_round_trip(echo_server: chatws.Server) -> None:
    # websocket-client's own UTF-8 check is pure Python (~30 s for 10 MiB);
    # the decode below checks the text just as well.
    ws = connect(echo_server, skip_utf8_validation=True)
    big = bytes((i * 7) & 0xFF for i in range(256)) * (10 * 1024 * 4)
    assert len(big) == 10 * 1024 * 1024
    ws.send_binary(big)
    opcode, data = ws.recv_data()
    assert opcode == websocket.ABNF.OPCODE_BINARY
    assert data == big
    text = "ä" * (5 * 1024 * 1024)  # 10 MiB of UTF-8
    ws.send(text)
    opcode, data = ws.recv_data()
    assert opcode == websocket.ABNF.OPCODE_TEXT and data.decode() == text
    ws.close()


def test_port_zero_gives_real_port_and_url(make_server: Callable[..., chatws.Server]) -> None:
    server = make_server(port=0)
    assert 0 < server.port < 65536
    assert server.url == f"ws://127.0.0.1:{server.port}/"
    assert server.http_url == f"http://127.0.0.1:{server.port}/"
    # The port really is ours: a second bind on it fails with a chatws error.
    with pytest.raises(chatws.SystemCallError) as info:
        chatws.Server(port=server.port)
    assert isinstance(info.value, OSError) and isinstance(info.value, chatws.Error)
    assert str(info.value)  # the library's chatws_last_error() text


def test_connection_attributes_and_connections_property(make_server: Callable[..., chatws.Server],
                                                        events: Events) -> None:
    server = make_server(subprotocols=("v2.example", "v1.example"),
                         on_open=lambda c: events.add("open", c),
                         on_close=lambda c, code, reason: events.add("close", c))
    server.start()
    assert server.connections == []
    a = connect(server, "/room/a", subprotocols=["v1.example", "v2.example"])
    b = connect(server, "/b")
    (ca,), (cb,) = events.wait_count("open", 2)
    assert ca.path == "/room/a" and cb.path == "/b"
    assert ca.subprotocol == "v2.example"  # the server's preference wins
    assert a.getsubprotocol() == "v2.example"
    assert cb.subprotocol == ""
    local_port = a.sock.getsockname()[1]
    assert ca.remote_address == ("127.0.0.1", local_port)
    assert ca.id != cb.id and ca.id > 0
    assert set(server.connections) == {ca, cb}
    assert server.connection(ca.id) is ca
    assert ca.server is server and not ca.closed
    a.close()
    events.wait_count("close", 1)
    assert server.connections == [cb]
    assert server.connection(ca.id) is None
    b.close()
    events.wait_count("close", 2)
    assert server.connections == []


def test_connection_equality_and_hash(make_server: Callable[..., chatws.Server], events: Events) -> None:
    server = make_server(on_open=lambda c: events.add("open", c),
                         on_message=lambda c, m: events.add("msg", c))
    server.start()
    ws = connect(server)
    ws.send("x")
    (opened,) = events.wait_count("open", 1)[0]
    (seen,) = events.wait_count("msg", 1)[0]
    assert seen == opened and hash(seen) == hash(opened)
    assert len({opened, seen}) == 1
    assert opened != object()
    ws.close()


def test_connection_keeps_host_attributes(make_server: Callable[..., chatws.Server]) -> None:
    server = make_server()

    @server.on_message
    def count(conn: chatws.Connection, msg: chatws.Message) -> None:
        conn.count = getattr(conn, "count", 0) + 1  # type: ignore[attr-defined]
        conn.send(str(conn.count))  # type: ignore[attr-defined]

    server.start()
    ws = connect(server)
    for i in range(1, 4):
        ws.send("x")
        assert ws.recv() == str(i)
    ws.close()


def test_two_servers_in_one_process(make_server: Callable[..., chatws.Server]) -> None:
    first = make_server(on_message=lambda c, m: c.send(f"first:{m}")).start()
    second = make_server(on_message=lambda c, m: c.send(f"second:{m}")).start()
    assert first.port != second.port
    a, b = connect(first), connect(second)
    for i in range(20):
        a.send(str(i))
        b.send(str(i))
        assert a.recv() == f"first:{i}"
        assert b.recv() == f"second:{i}"
    a.close()
    b.close()


def test_send_from_another_thread(make_server: Callable[..., chatws.Server], events: Events) -> None:
    server = make_server(on_open=lambda c: events.add("open", c)).start()
    ws = connect(server)
    (conn,) = events.wait_count("open", 1)[0]
    conn.send("from the test thread")  # not the loop thread: queued and woken
    assert ws.recv() == "from the test thread"
    ws.close()


def test_static_files(make_server: Callable[..., chatws.Server], tmp_path: Any) -> None:
    (tmp_path / "index.html").write_text("<h1>chatws</h1>")
    server = make_server(static_dir=tmp_path).start()
    with urllib.request.urlopen(server.http_url + "index.html", timeout=WAIT) as resp:
        assert resp.status == 200
        assert resp.read() == b"<h1>chatws</h1>"


def test_invalid_options_raise_value_errors() -> None:
    with pytest.raises(ValueError):
        chatws.Server(port=70000)
    with pytest.raises(chatws.InvalidArgument):
        chatws.Server(port=0, slow_consumer_policy="ignore")
    with pytest.raises(chatws.InvalidArgument):
        chatws.Server(port=0, idle_timeout=-1)
    with pytest.raises(chatws.InvalidArgument):
        chatws.Server(port=0, max_message_size=0)
    with pytest.raises(chatws.InvalidArgument):
        chatws.Server(port=0, subprotocols=["a,b"])
    with pytest.raises(TypeError):
        chatws.Server(port=0, on_message=42)  # type: ignore[arg-type]


def test_close_with_invalid_code_raises_invalid_argument(make_server: Callable[..., chatws.Server],
                                                         events: Events) -> None:
    server = make_server(on_open=lambda c: events.add("open", c)).start()
    ws = connect(server)
    (conn,) = events.wait_count("open", 1)[0]
    with pytest.raises(chatws.InvalidArgument):
        conn.close(1005)  # reserved: never sent on the wire
    with pytest.raises(chatws.InvalidArgument):
        conn.close(1000, "x" * 200)  # reason longer than 123 bytes
    ws.send("still open")
    ws.close()


def test_unbound_address_fails_cleanly() -> None:
    # 192.0.2.1 (TEST-NET-1) is never a local address: bind must fail.
    with pytest.raises(chatws.Error):
        chatws.Server(host="192.0.2.1", port=0)


def test_closed_server_refuses_use(make_server: Callable[..., chatws.Server]) -> None:
    server = make_server()
    server.close()
    assert server.closed
    with pytest.raises(chatws.ServerStopped):
        server.start()
    with pytest.raises(chatws.ServerStopped):
        server.serve_forever()
    server.broadcast("nobody")  # a no-op once stopped
    server.close()  # idempotent
    s = socket.socket()
    s.bind(("127.0.0.1", server.port))  # the port was released
    s.close()


def test_ipv6_loopback_url(make_server: Callable[..., chatws.Server]) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        server = make_server(host="::1", on_message=lambda c, m: c.send(m))
    except chatws.SystemCallError:
        pytest.skip("::1 is not configured here")
    assert server.url == f"ws://[::1]:{server.port}/"
    server.start()
    ws = connect(server)
    ws.send("v6")
    assert ws.recv() == "v6"
    ws.close()


def test_allowed_origins_and_path_prefix(make_server: Callable[..., chatws.Server]) -> None:
    server = make_server(allowed_origins=["http://good.example"], websocket_path_prefix="/ws",
                         on_message=lambda c, m: c.send(m)).start()
    ok = connect(server, "/ws/echo", origin="http://good.example")
    ok.send("allowed")
    assert ok.recv() == "allowed"
    ok.close()
    with pytest.raises(websocket.WebSocketBadStatusException) as bad_origin:
        connect(server, "/ws/echo", origin="http://evil.example")
    assert bad_origin.value.status_code == 403
    with pytest.raises(websocket.WebSocketBadStatusException) as bad_path:
        connect(server, "/elsewhere", origin="http://good.example")
    assert bad_path.value.status_code == 404


def test_max_connections_refuses_with_503(make_server: Callable[..., chatws.Server], events: Events) -> None:
    server = make_server(max_connections=2, on_open=lambda c: events.add("open")).start()
    first, second = connect(server), connect(server)
    events.wait_count("open", 2)
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        connect(server)
    assert refused.value.status_code == 503
    first.close()
    second.close()


def test_too_big_message_closes_with_1009(make_server: Callable[..., chatws.Server], events: Events) -> None:
    server = make_server(max_message_size=1024,
                         on_close=lambda c, code, reason: events.add("close", code)).start()
    ws = connect(server)
    ws.send_binary(b"x" * 2048)
    opcode, frame = ws.recv_data(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_CLOSE and int.from_bytes(frame[:2], "big") == 1009
    assert events.wait_count("close", 1) == [(1009,)]
    ws.close()


def test_sending_more_than_max_message_size_raises(make_server: Callable[..., chatws.Server],
                                                   events: Events) -> None:
    server = make_server(max_message_size=1024, on_open=lambda c: events.add("open", c)).start()
    ws = connect(server)
    (conn,) = events.wait_count("open", 1)[0]
    with pytest.raises(chatws.MessageTooBig):
        conn.send(b"x" * 4096)
    ws.close()
