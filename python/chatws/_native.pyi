"""Type stub of chatws._native, the thin pybind11 binding of chatws.h.

Internal: use the chatws package. Errors raise the chatws.Error subclass for
the C error code (built by chatws._errors._from_native)."""

from typing import Any, Callable, Dict, Optional, Union
from types import ModuleType

HEADER_VERSION: str

def version() -> str: ...
def version_number() -> int: ...
def strerror(code: int) -> str: ...

class _Codes(ModuleType):
    OK: int
    EINVAL: int
    ENOMEM: int
    ENOCONN: int
    ETHREAD: int
    ESTATE: int
    ESYSTEM: int
    ETOOBIG: int
    EFULL: int
    ESTOPPED: int
    ESTORAGE: int
    EINTERNAL: int
    QUEUED_OVER_LIMIT: int
    SLOW_CLOSE: int
    SLOW_DROP: int
    TLS_1_2: int
    TLS_1_3: int
    UPGRADE_ACCEPT: int
    UPGRADE_REJECT: int
    UPGRADE_PENDING: int

codes: _Codes

_Payload = Union[str, bytes, bytearray, memoryview]

class Server:
    def __init__(
        self,
        options: Dict[str, Any],
        owner_ref: Callable[[], Optional[object]],
        on_open: Callable[[Any, int, str, int, str, str, Optional[str], str], object],
        on_message: Callable[[Any, int, Union[str, bytes]], object],
        on_close: Callable[[Any, int, int, str], object],
        on_drain: Callable[[Any, int], object],
        on_chat: Callable[[Any, int, str, str, str, int], object],
        on_log: Optional[Callable[[Any, int, str], object]] = ...,
        on_upgrade: Optional[Callable[[Any, Dict[str, Any]], object]] = ...,
    ) -> None: ...
    @property
    def port(self) -> int: ...
    @property
    def fd(self) -> int: ...
    @property
    def closed(self) -> bool: ...
    def run(self, slice_ms: int) -> None: ...
    def poll(self, timeout_ms: int) -> Optional[int]: ...
    def stop(self) -> None: ...
    def stopped(self) -> bool: ...
    def running(self) -> bool: ...
    def on_loop_thread(self) -> bool: ...
    def send(self, conn_id: int, data: _Payload) -> int: ...
    def broadcast(self, data: _Payload, exclude: int) -> None: ...
    def close_connection(self, conn_id: int, code: int, reason: str) -> None: ...
    def connection_count(self) -> int: ...
    def chat_post(self, room: str, user: str, text: str) -> None: ...
    def reload_tls(self, cert_file: Optional[str], key_file: Optional[str],
                   key_passphrase: Optional[str]) -> None: ...
    def resolve_upgrade(self, request_id: int, answer: object) -> bool: ...
    def set_upgrade_enabled(self, on: bool) -> None: ...
    def close(self) -> None: ...
