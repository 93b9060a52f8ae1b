"""The pump's hand-stepping of coroutines (app.live.pump `start`/`resume`) against the
real asyncio: what a coroutine yields to its driver is asyncio's Task protocol, not a
public API, so these fail loudly if a Python upgrade changes it. (Through uvicorn's
WebSocket protocol: tests/live/test_uvicorn_ws.py.)"""

from __future__ import annotations

import asyncio

import pytest

from app.live.pump import resume, start


async def test_a_write_that_does_not_suspend_finishes_in_start_without_a_task() -> None:
    written: list[bytes] = []

    async def send() -> str:  # an ASGI send on a socket with room: the transport takes it
        written.append(b"frame")
        return "written"

    tasks = asyncio.all_tasks()
    assert start(send()) == (True, "written")
    assert asyncio.all_tasks() == tasks


async def test_start_raises_what_the_coroutine_raises() -> None:
    async def send() -> None:
        raise ConnectionResetError

    with pytest.raises(ConnectionResetError):
        start(send())


async def test_resume_waits_on_a_real_future_then_on_a_bare_yield() -> None:
    future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    steps: list[str] = []

    async def send() -> str:
        steps.append(await future)
        await asyncio.sleep(0)  # yields None to the driver
        steps.append("after")
        return "done"

    coro = send()
    done, waiting = start(coro)
    assert not done and waiting is future
    resumed = asyncio.ensure_future(resume(coro, waiting))
    await asyncio.sleep(0)
    assert not resumed.done()
    future.set_result("ready")
    assert await asyncio.wait_for(resumed, 5) == "done"
    assert steps == ["ready", "after"]


async def test_a_failed_future_raises_inside_the_coroutine() -> None:
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def send() -> str:
        try:
            await future
        except OSError:
            return "handled"
        return "not reached"

    coro = send()
    _, waiting = start(coro)
    resumed = asyncio.ensure_future(resume(coro, waiting))
    await asyncio.sleep(0)
    future.set_exception(OSError("gone"))
    assert await asyncio.wait_for(resumed, 5) == "handled"


async def test_a_timeout_cancels_the_future_and_reaches_the_coroutine() -> None:
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    seen: list[type[BaseException]] = []

    async def send() -> None:
        try:
            await future
        except BaseException as exc:
            seen.append(type(exc))
            raise

    coro = send()
    _, waiting = start(coro)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await resume(coro, waiting)
    assert seen == [asyncio.CancelledError] and future.cancelled()


async def test_a_coroutine_that_survives_a_cancellation_can_wait_again() -> None:
    first: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    second: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def send() -> str:
        try:
            await first
        except asyncio.CancelledError:
            pass
        return await second

    coro = send()
    _, waiting = start(coro)
    resumed = asyncio.ensure_future(resume(coro, waiting))
    await asyncio.sleep(0)
    resumed.cancel()  # the coroutine swallows it and waits on `second`
    await asyncio.sleep(0)
    assert first.cancelled() and not resumed.done()
    second.set_result("ok")
    assert await asyncio.wait_for(resumed, 5) == "ok"
