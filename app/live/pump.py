"""Writes queued messages to sockets without a task per connection or per frame.

The relay queues one change for many connections in one go; each connection
whose queue went from empty to non-empty asks the pump to flush it. The pump
flushes every connection that asked, once, at the next turn of the event loop
(one `call_soon` for all of them).

A socket write is a coroutine (ASGI `send`), but on an open socket whose
kernel buffer has room it completes without ever suspending. `start` runs it
to its first suspension: if it finished, nothing else happens (the common
case: no task, no timer). Only a write that blocks (a slow reader: the
transport paused writing) gets a task, which finishes it with `resume` under
the connection's write timeout and then keeps flushing that one connection
until its queue is empty."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, Protocol, TypeVar

log = logging.getLogger("app.live.pump")
T = TypeVar("T")


class Flushable(Protocol):
    def flush(self) -> None:
        """Write what is queued (never raises, never waits)."""


class Pump:
    """One per event loop (the hub owns it)."""

    __slots__ = ("_due", "_handle")

    def __init__(self) -> None:
        self._due: list[Flushable] = []
        self._handle: asyncio.Handle | None = None

    def due(self, conn: Flushable) -> None:
        """`conn` has something to write (the caller asks at most once per flush)."""
        self._due.append(conn)
        if self._handle is None:
            self._handle = asyncio.get_running_loop().call_soon(self._run)

    def _run(self) -> None:
        self._handle = None
        due, self._due = self._due, []
        for conn in due:
            try:
                conn.flush()
            except Exception:  # noqa: BLE001 - one connection's bug must not stop the others
                log.exception("live flush failed")


def start(coro: Coroutine[Any, Any, T]) -> tuple[bool, Any]:
    """Run `coro` until it first suspends: (True, its result) if it finished,
    else (False, what it waits on, for `resume`). Its exceptions propagate."""
    try:
        waiting = coro.send(None)
    except StopIteration as stop:
        return True, stop.value
    return False, waiting


async def resume(coro: Coroutine[Any, Any, T], waiting: Any) -> T:
    """Finish, in the current task, a coroutine `start` left suspended on
    `waiting`, as a task would have: wait for it, then carry on; a
    cancellation of this task is thrown into the coroutine."""
    while True:
        try:
            if waiting is None:  # a bare yield (asyncio.sleep(0))
                await asyncio.sleep(0)
            else:
                # What a task does with a yielded future: clear the flag the yield set, then
                # wait for it (a future awaited again with the flag still set refuses).
                waiting._asyncio_future_blocking = False
                await waiting
        except BaseException as exc:  # noqa: BLE001 - handed to the coroutine, as a task does
            try:
                waiting = coro.throw(exc)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            continue
        try:
            waiting = coro.send(None)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
