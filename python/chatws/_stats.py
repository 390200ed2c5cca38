"""Server.stats(): the engine's counters and gauges (chatws_server_get_stats)
as typed, immutable objects. Counters only grow; gauges are as of the end
of the loop's last iteration. The same numbers the metrics listener serves
at /metrics (see README, "Metrics")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Tuple

__all__ = ["Histogram", "ServerStats"]


@dataclass(frozen=True)
class Histogram:
    """A latency histogram. ``buckets[i]`` counts observations of at most
    ``bounds[i]`` seconds (and more than the bound before; not cumulative);
    the last bucket, one more than ``bounds``, counts those above them."""

    bounds: Tuple[float, ...]
    buckets: Tuple[int, ...]
    count: int
    sum: float  # seconds

    @property
    def mean(self) -> float:
        """Mean observation in seconds (0.0 with none)."""
        return self.sum / self.count if self.count else 0.0


@dataclass(frozen=True)
class ServerStats:
    version: str
    start_time: float  # seconds since the Unix epoch
    running: bool
    accepting: bool
    # Gauges.
    websocket_connections: int
    http_connections: int
    closing_connections: int
    queued_output_bytes: int  # summed at the last timer tick (<= 250 ms old)
    # Counters.
    connections_accepted: int
    http_requests: int
    handshakes_accepted: int
    #: By reason: limit, origin, path, bad_request, timeout, shutdown,
    #: handler (the chat refused it), hook, rate.
    handshakes_rejected: Mapping[str, int]
    #: By close code as a string ("1000", ...), and "other".
    closes: Mapping[str, int]
    messages_received: int
    messages_sent: int
    bytes_received: int
    bytes_sent: int
    broadcasts: int
    broadcast_deliveries: int
    slow_consumer_closes: int
    slow_consumer_drops: int
    tls_handshakes: int
    tls_failures: int
    log_lines_suppressed: int
    loop_iterations: int
    loop_iteration: Histogram
    # Chat mode (zeros otherwise).
    chat_enabled: bool
    history_ok: bool
    chat_rooms: int
    chat_members: int
    history_commits: int
    history_commit_failures: int
    history_messages: int
    chat_deliveries: int  # messages x the room members they reached
    history_commit: Histogram
    # Cluster mode (cluster_url; zeros otherwise).
    cluster_enabled: bool
    cluster_up: bool
    cluster_round_trips: int  # Redis writes: the appends of a loop iteration in one
    cluster_failures: int
    cluster_missed: int  # entries trimmed before this node read them (its members were told)
    # permessage-deflate.
    deflate_calls: int  # shared mode: one per frame (and window), not per receiver
    deflate_bytes_in: int
    deflate_bytes_out: int
    compressed_messages_sent: int
    inflate_bytes_in: int
    inflate_bytes_out: int

    @classmethod
    def _from_native(cls, d: Mapping[str, Any]) -> "ServerStats":
        fields = dict(d)
        for name in ("loop_iteration", "history_commit"):
            h = fields[name]
            fields[name] = Histogram(tuple(h["bounds"]), tuple(h["buckets"]), h["count"], h["sum"])
        fields["handshakes_rejected"] = dict(fields["handshakes_rejected"])
        fields["closes"] = dict(fields["closes"])
        return cls(**fields)
