"""SIGTERM: drain live connections first, then let the server shut down.

Uvicorn's own SIGTERM handling closes every WebSocket at once (code 1012) and
only then runs the lifespan shutdown, too late to tell clients anything. So
the live handler goes in front: it tells every client to reconnect elsewhere
with a jittered delay, waits (bounded) for them to close, then hands the
signal to the handler it replaced, which stops accepting and exits."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Awaitable, Callable
from types import FrameType

log = logging.getLogger("app.live.signals")


def drain_on_sigterm(drain: Callable[[], Awaitable[None]]) -> Callable[[], None]:
    """Install the handler; returns a function that restores the previous one."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None  # signals only reach the main thread (tests run apps elsewhere)
    loop = asyncio.get_running_loop()
    previous = signal.getsignal(signal.SIGTERM)
    started = False
    tasks: set[asyncio.Task[None]] = set()

    def chain(sig: int, frame: FrameType | None) -> None:
        if signal.getsignal(signal.SIGTERM) is handler:
            signal.signal(signal.SIGTERM, previous)
        if callable(previous):
            previous(sig, frame)
        elif previous == signal.SIG_DFL:
            signal.raise_signal(sig)

    async def drain_then_chain(sig: int) -> None:
        try:
            await drain()
        except Exception:
            log.exception("live drain failed")
        finally:
            chain(sig, None)

    def handler(sig: int, frame: FrameType | None) -> None:
        nonlocal started
        if started:  # a second SIGTERM: no more waiting
            chain(sig, frame)
            return
        started = True
        log.info("SIGTERM: draining live connections")

        def spawn() -> None:
            task = loop.create_task(drain_then_chain(sig))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        loop.call_soon_threadsafe(spawn)

    signal.signal(signal.SIGTERM, handler)

    def restore() -> None:
        if signal.getsignal(signal.SIGTERM) is handler:
            signal.signal(signal.SIGTERM, previous)

    return restore
