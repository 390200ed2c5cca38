"""Handler slots: ``server.on_message`` as a decorator *and* an attribute.

::

    @server.on_message
    def echo(conn, message): conn.send(message)

    server.on_message = echo          # the same
    server.on_message = None          # removes it

A subclass may also define the handler as a method
(``def on_message(self, conn, message)``).
"""

from __future__ import annotations

from typing import Any, Callable, Generic, Optional, TypeVar, overload

F = TypeVar("F", bound=Callable[..., Any])


class HandlerSlot(Generic[F]):
    """Class attribute of Server naming one event; the handler itself is
    stored on the instance as ``_h_<event>`` (read directly by dispatch)."""

    def __init__(self, doc: str) -> None:
        self.__doc__ = doc
        self.name = ""
        self.attr = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name
        self.attr = "_h_" + name[len("on_") :]

    @overload
    def __get__(self, obj: None, objtype: Optional[type] = None) -> HandlerSlot[F]: ...
    @overload
    def __get__(self, obj: object, objtype: Optional[type] = None) -> Registrar[F]: ...
    def __get__(self, obj: Any, objtype: Optional[type] = None) -> Any:
        if obj is None:
            return self
        return Registrar(obj, self)

    def __set__(self, obj: Any, handler: Optional[F]) -> None:
        if handler is not None and not callable(handler):
            raise TypeError(f"{self.name} must be callable or None, not {type(handler).__name__}")
        setattr(obj, self.attr, handler)


class Registrar(Generic[F]):
    """What ``server.on_<event>`` reads as: call it with a function to
    register that function (it is returned unchanged, so it works as a
    decorator); ``.handler`` is the current handler (or None)."""

    __slots__ = ("_obj", "_slot")

    def __init__(self, obj: Any, slot: HandlerSlot[F]) -> None:
        self._obj = obj
        self._slot = slot

    def __call__(self, handler: F) -> F:
        self._slot.__set__(self._obj, handler)
        return handler

    @property
    def handler(self) -> Optional[F]:
        h: Optional[F] = getattr(self._obj, self._slot.attr, None)
        return h

    def __bool__(self) -> bool:
        return self.handler is not None

    def __repr__(self) -> str:
        return f"<chatws handler slot {self._slot.name}: {self.handler!r}>"


def bind_overrides(obj: Any, base: type) -> None:
    """Use methods that a subclass of ``base`` defines in place of its
    handler slots (``class MyServer(Server): def on_open(self, conn): ...``)."""
    for klass in type(obj).__mro__:
        if klass is base:
            break
        for name, value in vars(klass).items():
            slot = getattr(base, name, None)
            if isinstance(slot, HandlerSlot) and callable(value) and not isinstance(value, HandlerSlot):
                if getattr(obj, slot.attr, None) is None:
                    setattr(obj, slot.attr, getattr(obj, name))
