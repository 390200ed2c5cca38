"""Server keyword options -> the chatws_options fields (validated here, so
that mistakes are reported as Python exceptions naming the argument)."""

from __future__ import annotations

import math
import os
from typing import Any, Dict, Iterable, Optional, Union

from ._errors import InvalidArgument

__all__ = ["CHAT_SUBPROTOCOLS", "COMPRESSION_MODES", "build_options", "timeout_ms"]

#: The chat's subprotocols in the server's order of preference: the richer
#: "chatws.v1" (the bundled page) and the classic "json" format.
CHAT_SUBPROTOCOLS = ("chatws.v1", "json")

_SLOW_POLICIES = {"close": 0, "drop": 1}
_TLS_VERSIONS = {"1.2": 12, "1.3": 13}
#: permessage-deflate modes -> CHATWS_COMPRESSION_* (chatws.h).
COMPRESSION_MODES = {"shared": 0, "off": -1, "dedicated": 1}
ACCEPT_MODES = {"reuseport": 0, "handoff": 1}  # chatws_options.accept_mode

StrList = Union[str, Iterable[str], None]


def _join(name: str, value: StrList) -> Optional[str]:
    """A sequence of tokens -> the comma-separated form of chatws_options."""
    if value is None:
        return None
    items = [value] if isinstance(value, str) else list(value)
    for item in items:
        if not isinstance(item, str) or not item or "," in item:
            raise InvalidArgument(f"{name}: each item must be a non-empty str without ',': {item!r}")
    return ",".join(items) if items else None


def timeout_ms(name: str, seconds: Optional[float]) -> Optional[int]:
    """Seconds (None: library default, math.inf: disabled) -> milliseconds
    (None, or -1 for disabled)."""
    if seconds is None:
        return None
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise InvalidArgument(f"{name} must be a number of seconds, None or math.inf")
    if math.isinf(seconds) and seconds > 0:
        return -1
    if not seconds > 0:
        raise InvalidArgument(f"{name} must be > 0 seconds (math.inf disables it), not {seconds!r}")
    return max(1, min(int(round(seconds * 1000)), 2**31 - 1))


def _limit(name: str, value: Optional[int], maximum: int) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= maximum:
        raise InvalidArgument(f"{name} must be a positive int (at most {maximum}), not {value!r}")
    return value


def _send_buffer(value: Union[int, str, None]) -> Optional[int]:
    """None: the library's default (96 KiB); "auto": the kernel's autotuning."""
    if value == "auto":
        return -1
    return _limit("socket_send_buffer", value, 2**31 - 1)  # type: ignore[arg-type]


def _path(name: str, value: Union[str, "os.PathLike[str]", None]) -> Optional[str]:
    if value is None:
        return None
    return os.fspath(value)


def build_options(
    *,
    host: str,
    port: int,
    static_dir: Union[str, "os.PathLike[str]", None],
    subprotocols: StrList,
    allowed_origins: StrList,
    websocket_path_prefix: Optional[str],
    max_request_size: Optional[int],
    max_message_size: Optional[int],
    max_fragments: Optional[int],
    max_output_buffer: Optional[int],
    max_connections: Optional[int],
    max_connections_per_ip: Optional[int],
    ipv6_prefix_length: Optional[int],
    max_buffered_input: Optional[int],
    socket_send_buffer: Union[int, str, None],
    slow_consumer_policy: str,
    handshake_timeout: Optional[float],
    idle_timeout: Optional[float],
    close_timeout: Optional[float],
    drain_timeout: Optional[float],
    chat: bool,
    history_path: Union[str, "os.PathLike[str]", None],
    history_size: Optional[int],
    max_user_length: Optional[int],
    max_text_length: Optional[int],
    max_rooms: Optional[int],
    max_idle_room_bytes: Optional[int],
    tls_cert: Union[str, "os.PathLike[str]", None],
    tls_key: Union[str, "os.PathLike[str]", None],
    tls_key_passphrase: Optional[str],
    tls_min_version: str,
    tls_ciphers: Optional[str],
    tls_ciphersuites: Optional[str],
    tls_session_tickets: bool,
    metrics_host: Optional[str],
    metrics_port: Optional[int],
    max_messages_per_second: Optional[float],
    message_burst: Optional[int],
    rate_limit_policy: str,
    max_handshakes_per_second_per_ip: Optional[int],
    cluster_url: Optional[str],
    node_name: Optional[str],
    cluster_retention: Optional[int],
    compression: str,
    compression_threshold: Optional[int],
    compression_window_bits: Optional[int],
    compression_mem_level: Optional[int],
    threads: int,
    accept_mode: str,
) -> Dict[str, Any]:
    """Server.__init__'s options (all of them, by keyword: its signature is
    where the defaults are) -> the fields of chatws_options."""
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise InvalidArgument(f"port must be an int in 0..65535, not {port!r}")
    if slow_consumer_policy not in _SLOW_POLICIES:
        raise InvalidArgument(
            f"slow_consumer_policy must be 'close' or 'drop', not {slow_consumer_policy!r}"
        )
    if (tls_cert is None) != (tls_key is None):
        raise InvalidArgument("tls_cert and tls_key go together: give both (or neither)")
    if tls_min_version not in _TLS_VERSIONS:
        raise InvalidArgument(f"tls_min_version must be '1.2' or '1.3', not {tls_min_version!r}")
    if metrics_port is not None and (
        not isinstance(metrics_port, int) or isinstance(metrics_port, bool) or not 0 <= metrics_port <= 65535
    ):
        raise InvalidArgument(f"metrics_port must be an int in 0..65535, not {metrics_port!r}")
    metrics_on = metrics_host is not None or metrics_port is not None
    if rate_limit_policy not in _SLOW_POLICIES:
        raise InvalidArgument(f"rate_limit_policy must be 'close' or 'drop', not {rate_limit_policy!r}")
    if max_messages_per_second is None:
        rate = None  # chat 20/s, raw connections unlimited
    elif max_messages_per_second == float("inf"):
        rate = -1  # no limit
    elif isinstance(max_messages_per_second, int) and not isinstance(max_messages_per_second, bool) \
            and 1 <= max_messages_per_second <= 2**31 - 1:
        rate = max_messages_per_second
    else:
        raise InvalidArgument("max_messages_per_second must be an int >= 1, None (default) or "
                              f"math.inf (no limit), not {max_messages_per_second!r}")
    if cluster_url is not None:
        if not isinstance(cluster_url, str) or not cluster_url.startswith("redis://"):
            raise InvalidArgument(
                f"cluster_url must be a redis://[:password@]host[:port][/db] URL, not {cluster_url!r}")
        if not chat:
            raise InvalidArgument("cluster_url needs chat=True (the cluster shares chat rooms)")
        if history_path is not None:
            raise InvalidArgument("cluster_url and history_path exclude each other "
                                  "(the cluster's history is in Redis)")
    if node_name is not None and (not isinstance(node_name, str) or not node_name):
        raise InvalidArgument(f"node_name must be a non-empty str, not {node_name!r}")
    if compression not in COMPRESSION_MODES:
        raise InvalidArgument(
            f"compression must be 'shared', 'dedicated' or 'off', not {compression!r}")
    if compression_window_bits is not None and (
        isinstance(compression_window_bits, bool) or not isinstance(compression_window_bits, int)
        or not 9 <= compression_window_bits <= 15
    ):
        raise InvalidArgument(
            f"compression_window_bits must be an int in 9..15, not {compression_window_bits!r}")
    if compression_mem_level is not None and (
        isinstance(compression_mem_level, bool) or not isinstance(compression_mem_level, int)
        or not 1 <= compression_mem_level <= 9
    ):
        raise InvalidArgument(
            f"compression_mem_level must be an int in 1..9, not {compression_mem_level!r}")
    if isinstance(threads, bool) or not isinstance(threads, int) or not 0 <= threads <= 256:
        raise InvalidArgument(f"threads must be an int in 0..256 (0: one per core), not {threads!r}")
    if threads != 1 and cluster_url is not None:
        raise InvalidArgument("cluster_url needs threads=1")
    if not isinstance(accept_mode, str) or accept_mode not in ACCEPT_MODES:
        raise InvalidArgument(f"accept_mode must be 'reuseport' or 'handoff', not {accept_mode!r}")
    if subprotocols is None and chat:
        subprotocols = CHAT_SUBPROTOCOLS
    size_max = 2**63 - 1
    u32_max = 2**32 - 1
    return {
        "host": host,
        "port": port,
        "static_dir": _path("static_dir", static_dir),
        "subprotocols": _join("subprotocols", subprotocols),
        "allowed_origins": _join("allowed_origins", allowed_origins),
        "websocket_path_prefix": websocket_path_prefix,
        "max_request_size": _limit("max_request_size", max_request_size, size_max),
        "max_message_size": _limit("max_message_size", max_message_size, size_max),
        "max_fragments": _limit("max_fragments", max_fragments, size_max),
        "max_output_buffer": _limit("max_output_buffer", max_output_buffer, size_max),
        "max_connections": _limit("max_connections", max_connections, u32_max),
        "max_connections_per_ip": _limit("max_connections_per_ip", max_connections_per_ip, u32_max),
        "ipv6_prefix_length": _limit("ipv6_prefix_length", ipv6_prefix_length, 128),
        "max_buffered_input": _limit("max_buffered_input", max_buffered_input, size_max),
        "socket_send_buffer": _send_buffer(socket_send_buffer),
        "slow_consumer_policy": _SLOW_POLICIES[slow_consumer_policy],
        "handshake_timeout_ms": timeout_ms("handshake_timeout", handshake_timeout),
        "idle_timeout_ms": timeout_ms("idle_timeout", idle_timeout),
        "close_timeout_ms": timeout_ms("close_timeout", close_timeout),
        "drain_timeout_ms": timeout_ms("drain_timeout", drain_timeout),
        "chat": bool(chat),
        "history_path": _path("history_path", history_path),
        "history_size": _limit("history_size", history_size, u32_max),
        "max_user_length": _limit("max_user_length", max_user_length, u32_max),
        "max_text_length": _limit("max_text_length", max_text_length, u32_max),
        "max_rooms": _limit("max_rooms", max_rooms, u32_max),
        "max_idle_room_bytes": _limit("max_idle_room_bytes", max_idle_room_bytes, size_max),
        "tls_cert_file": _path("tls_cert", tls_cert),
        "tls_key_file": _path("tls_key", tls_key),
        "tls_key_passphrase": tls_key_passphrase,
        "tls_min_version": _TLS_VERSIONS[tls_min_version] if tls_cert is not None else None,
        "tls_ciphers": tls_ciphers,
        "tls_ciphersuites": tls_ciphersuites,
        "tls_session_tickets": None if tls_session_tickets else -1,
        # Off unless asked; 0 (or a host alone): a free port.
        "metrics_host": (metrics_host or "127.0.0.1") if metrics_on else None,
        "metrics_port": metrics_port if metrics_port else None,
        "max_messages_per_second": rate,
        "message_burst": _limit("message_burst", message_burst, 2**31 - 1),
        "rate_limit_policy": _SLOW_POLICIES[rate_limit_policy],
        "max_handshakes_per_second_per_ip": _limit(
            "max_handshakes_per_second_per_ip", max_handshakes_per_second_per_ip, u32_max),
        "cluster_url": cluster_url,
        "node_name": node_name,
        "cluster_retention": _limit("cluster_retention", cluster_retention, u32_max),
        "compression": COMPRESSION_MODES[compression],
        "compression_threshold": _limit("compression_threshold", compression_threshold, u32_max),
        "compression_window_bits": compression_window_bits,
        "compression_mem_level": compression_mem_level,
        "threads": -1 if threads == 0 else threads,  # the C option's "one per core" is -1
        "accept_mode": ACCEPT_MODES[accept_mode],
    }
