"""asyncio mode: a Server driven by the running event loop, without a thread.

::

    async with chatws.serve(port=0) as server:
        server.on_message = lambda conn, msg: conn.send(msg)
        await server.serve_forever()

The server's epoll fd (chatws_server_fd()) is watched with loop.add_reader;
when it is readable one non-blocking iteration (chatws_server_poll(0)) runs
on the event loop's thread, so handlers run there too and may use asyncio
freely. The engine's timers live in the same epoll set (a timerfd), and a
periodic poll every 100 ms is kept as a safety net. Handlers may be ``async
def``: the coroutine they return runs as a task.

With ``threads`` > 1 there is no single descriptor to watch: the loops run
on threads of their own (as with :meth:`Server.start`), plain handlers run
on their connection's loop thread, and a coroutine a handler returns (an
``async def`` handler, an async ``on_upgrade``) is handed to the event loop
and runs there as a task. ``serve_forever()``, ``wait_stopped()`` and
``aclose()`` await the loops' end without blocking the event loop.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from typing import Any, Awaitable, Callable, Generator, Optional, Set

from ._connection import Connection
from ._errors import InvalidState
from ._server import Server

__all__ = ["AsyncServer", "serve"]

logger = logging.getLogger("chatws")

_TICK_S = 0.1


class AsyncServer(Server):
    """A :class:`Server` run by asyncio. Create it with :func:`serve`; it is
    attached to the running loop by ``async with`` or ``await``.

    Differences from Server: :meth:`serve_forever` is a coroutine (it
    returns once the server has stopped; cancelling it stops the server),
    :meth:`stop` never blocks (``await wait_stopped()``), :meth:`aclose` is
    the graceful close, and :meth:`start` is not available.
    """

    _aloop: Optional[asyncio.AbstractEventLoop] = None
    _tick_handle: Optional[asyncio.TimerHandle] = None
    _stopped_fut: Optional["asyncio.Future[None]"] = None
    _tasks: Optional[Set["asyncio.Task[Any]"]] = None
    _aloop_thread: Optional[int] = None  # the event loop's thread (threading.get_ident())

    # ------------------------------------------------------- attach/detach

    def _attach(self) -> None:
        if self._aloop is not None:
            return
        loop = asyncio.get_running_loop()
        if self._threads != 1:
            self._attach_threads(loop)
            return
        # One loop: asyncio drives it through fileno()/poll() on its own thread.
        self._claim_loop()
        self._aloop = loop
        self._aloop_thread = threading.get_ident()
        self._stopped_fut = loop.create_future()
        loop.add_reader(self._native.fd, self._pump)
        self._tick_handle = loop.call_later(_TICK_S, self._tick)
        self._pump()  # anything already pending (e.g. queued sends)

    def _attach_threads(self, loop: asyncio.AbstractEventLoop) -> None:
        # Several loops: they run on a thread of ours (loop 0) and the
        # library's (the others), as with start(); the event loop only
        # learns when they have returned.
        self._aloop = loop
        self._aloop_thread = threading.get_ident()
        fut: "asyncio.Future[None]" = loop.create_future()
        self._stopped_fut = fut

        def finished(error: Optional[BaseException]) -> None:
            if fut.done():
                return
            if error is None:
                fut.set_result(None)
            else:
                fut.set_exception(error)

        def main() -> None:
            error = self._thread_main()
            try:
                loop.call_soon_threadsafe(finished, error)
            except RuntimeError:
                pass  # the event loop is closed: nobody waits any more

        try:
            self._start_thread(main)
        except BaseException:
            self._aloop = None
            raise

    def _detach(self, error: Optional[BaseException] = None) -> None:
        loop = self._aloop
        if loop is None:
            return
        if self._threads != 1:
            return  # the loops' thread reports their end (see _attach_threads)
        self._aloop = None
        loop.remove_reader(self._native.fd)
        if self._tick_handle is not None:
            self._tick_handle.cancel()
            self._tick_handle = None
        fut = self._stopped_fut
        if fut is not None and not fut.done():
            if error is None:
                fut.set_result(None)
            else:
                fut.set_exception(error)
        self._release_loop()

    def _tick(self) -> None:
        self._tick_handle = None
        self._pump()
        if self._aloop is not None:
            self._tick_handle = self._aloop.call_later(_TICK_S, self._tick)

    def _pump(self) -> None:
        if self._aloop is None:
            return
        try:
            alive = self._native.poll(0) is not None
        except (KeyboardInterrupt, SystemExit):
            self._detach()
            raise
        except Exception as exc:
            logger.exception("chatws: the server loop failed")
            self._detach(exc)
            return
        if not alive:
            self._detach()

    # -------------------------------------------------------------- public

    def start(self) -> Server:
        raise InvalidState("an AsyncServer is driven by asyncio: use 'async with chatws.serve(...)'")

    async def serve_forever(self) -> None:  # type: ignore[override]
        """Wait until the server has stopped. Cancelling it stops the server
        gracefully (then re-raises CancelledError)."""
        self._attach()
        try:
            await self.wait_stopped()
        except asyncio.CancelledError:
            await self.aclose()
            raise

    async def wait_stopped(self) -> None:
        """Wait until a stop (from stop(), a handler, or another thread) has
        completed."""
        fut = self._stopped_fut
        if fut is not None:
            await asyncio.shield(fut)

    def stop(self, wait: bool = False) -> None:
        """Begin a graceful stop; never blocks (``await wait_stopped()``).
        Any thread."""
        if not self._native.closed:
            self._native.stop()

    async def aclose(self) -> None:
        """Graceful stop (close 1001 to every client, wait for their replies
        up to drain_timeout), then free the server."""
        if self.closed:
            return
        if self._aloop is not None:
            self._native.stop()
            try:
                await asyncio.wait_for(self.wait_stopped(), self._stop_wait_s)
            except asyncio.TimeoutError:
                logger.warning("chatws: the server did not stop within %.1f s", self._stop_wait_s or 0)
        self.close()

    def close(self) -> None:
        """Free the server now (connections still open get close 1001
        without waiting for replies). Prefer ``await aclose()``."""
        if self._aloop is not None and not self._native.on_loop_thread():
            self._detach()
        super().close()
        if self._threads != 1:
            self._aloop = None

    async def __aenter__(self) -> AsyncServer:
        self._attach()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __await__(self) -> Generator[Any, None, AsyncServer]:
        async def attach() -> AsyncServer:
            self._attach()
            return self

        return attach().__await__()

    # ----------------------------------------------------- async handlers

    def _off_loop(self) -> bool:
        # Several loops: handlers run on the loops' threads, not the event loop's.
        return self._aloop_thread is not None and threading.get_ident() != self._aloop_thread

    def _pending_upgrade(self, request: Any, awaitable: Any) -> Any:
        # The pending path: the loop goes on, the task resolves the request.
        loop = self._aloop
        if loop is None:
            return super()._pending_upgrade(request, awaitable)
        from ._access import _PENDING, _resolve

        def resolved(f: Any) -> None:
            if not self._native.closed:
                _resolve(self, request, f.result)

        self._run_task(loop, awaitable, resolved)
        return (_PENDING, None, 0, "", "", [])

    def _spawn(self, result: Any, conn: Optional[Connection], where: str) -> None:
        if not inspect.iscoroutine(result):
            return
        loop = self._aloop
        if loop is None:
            super()._spawn(result, conn, where)
            return

        def reported(f: Any) -> None:
            if not f.cancelled() and f.exception() is not None:
                exc = f.exception()
                assert exc is not None
                self._report(exc, conn, where)

        try:
            self._run_task(loop, result, reported)
        except RuntimeError as exc:  # the event loop is closed
            self._report(exc, conn, where)

    def _run_task(self, loop: asyncio.AbstractEventLoop, awaitable: Any, done: Callable[[Any], None]) -> None:
        """Runs ``awaitable`` as a task of the event loop, from its thread or
        (several loops) a loop thread; ``done`` gets the finished future (an
        asyncio.Task or a concurrent.futures.Future: the same methods). From
        another thread, RuntimeError if the event loop is closed."""
        if self._off_loop():
            coro = awaitable if inspect.iscoroutine(awaitable) else _awaited(awaitable)
            try:
                cf = asyncio.run_coroutine_threadsafe(coro, loop)
            except RuntimeError:
                coro.close()  # never to run: no "never awaited" warning
                raise
            cf.add_done_callback(done)
            return
        task = asyncio.ensure_future(awaitable, loop=loop)
        if self._tasks is None:
            self._tasks = set()
        tasks = self._tasks
        tasks.add(task)  # asyncio keeps only weak references to tasks

        def finished(t: "asyncio.Future[Any]") -> None:
            tasks.discard(t)
            done(t)

        task.add_done_callback(finished)


async def _awaited(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


#: ``chatws.serve(...)`` creates an :class:`AsyncServer` (same arguments as
#: :class:`Server`); use it as ``async with chatws.serve(...) as server:`` or
#: ``server = await chatws.serve(...)``.
serve = AsyncServer
