"""Cluster mode from the Python API: the kwargs, stats(), /readyz, and the
round trips per loop iteration, against this module's own redis-server."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from typing import Callable, Iterator

import pytest

import chatws

from conftest import WAIT, Client, Node, Redis, free_port


@pytest.fixture
def server(redis: Redis) -> Iterator[chatws.Server]:
    s = chatws.Server("127.0.0.1", 0, chat=True, cluster_url=redis.url, node_name="py-api",
                      max_messages_per_second=float("inf"), metrics_port=0)
    s.start()
    wait_for(lambda: s.stats().cluster_up, "the cluster connections")  # connected asynchronously
    yield s
    s.close()


def readyz(s: chatws.Server) -> tuple:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{s.metrics_port}/readyz", timeout=WAIT) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def wait_for(cond: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 3 * WAIT
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)  # progress poll of another process, bounded


def test_bad_cluster_options_are_refused_with_a_reason(redis: Redis, tmp_path) -> None:
    with pytest.raises(chatws.InvalidArgument, match="needs chat"):
        chatws.Server("127.0.0.1", 0, cluster_url=redis.url)
    with pytest.raises(chatws.InvalidArgument, match="exclude each other"):
        chatws.Server("127.0.0.1", 0, chat=True, cluster_url=redis.url, history_path=tmp_path / "h.db")
    with pytest.raises(chatws.InvalidArgument, match="redis://"):
        chatws.Server("127.0.0.1", 0, chat=True, cluster_url="http://127.0.0.1:1")
    with pytest.raises(chatws.InvalidArgument, match="port must be"):
        chatws.Server("127.0.0.1", 0, chat=True, cluster_url="redis://127.0.0.1:0")
    url = f"redis://127.0.0.1:{free_port()}/0"
    with pytest.raises(chatws.StorageError, match=url):
        chatws.Server("127.0.0.1", 0, chat=True, cluster_url=url)


def test_stats_readyz_and_one_round_trip_per_iteration(redis: Redis, server: chatws.Server,
                                                      nodes: Callable[..., Node],
                                                      clients: Callable[[str], Client]) -> None:
    st = server.stats()
    assert st.cluster_enabled and st.cluster_up and st.history_ok
    assert readyz(server)[0] == 200
    other = nodes("cli")
    here = clients(f"ws://127.0.0.1:{server.port}/rooms/api")
    there = clients(other.url("api"))
    before = server.stats()
    for i in range(200):  # a burst: many messages per loop iteration
        here.send("ann", f"b{i}")
    for c in (here, there):
        c.wait_until(lambda fs: sum(f["type"] == "msg" for f in fs) >= 200)
    after = server.stats()
    trips = after.cluster_round_trips - before.cluster_round_trips
    iterations = after.loop_iterations - before.loop_iterations
    assert 0 < trips <= iterations, (trips, iterations)
    assert trips < 200  # not one per message
    assert after.history_messages - before.history_messages == 200

    redis.stop()
    try:
        wait_for(lambda: readyz(server)[0] == 503, "/readyz to say 503")
        assert "cluster: Redis unavailable" in readyz(server)[1]
        assert not server.stats().cluster_up
        here.send("ann", "during the outage")
        here.wait(lambda f: f["type"] == "error" and f["error"] == "storage unavailable")
    finally:
        redis.start()
    wait_for(lambda: readyz(server)[0] == 200, "/readyz to say 200 again")  # reconnected (backoff)
    here.send("ann", "back")
    there.wait(lambda f: f["type"] == "msg" and f["text"] == "back")
    assert server.stats().cluster_failures > after.cluster_failures
