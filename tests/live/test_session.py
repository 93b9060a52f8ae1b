"""One connection's state machine and its bounded outbox (pure, no sockets)."""

import asyncio
import math

import pytest

from app.live import protocol
from app.live.outbox import Outbox
from app.domain.positions import Position
from app.live.outbox import SNAPSHOT_NEEDED
from app.live.protocol import Ack, Auth, Close, CloseCode, Ping, Pong
from app.live.session import (
    Acknowledge,
    Authenticate,
    ConnectionState,
    Finish,
    IllegalTransition,
    Phase,
    SendPing,
    SendPong,
    Timing,
)

TIMING = Timing(auth_timeout=5, ping_interval=25, pong_timeout=10, token_grace=10)


def live(now: float = 0, expires_at: float = 1000) -> ConnectionState:
    state = ConnectionState(TIMING, now)
    state.authenticated(expires_at, now)
    return state


def test_only_an_auth_message_is_accepted_first_and_in_time() -> None:
    state = ConnectionState(TIMING, now=100)
    assert state.phase is Phase.AUTHENTICATING and state.deadline() == 105
    assert state.on_timer(104) is None
    assert state.on_timer(105) == Finish(Close.of(CloseCode.AUTH_TIMEOUT))
    assert state.on_message(Ping()) == Finish(Close.of(CloseCode.BAD_REQUEST, "authenticate first"))
    assert state.on_message(Auth("t", "e:1")) == Authenticate("t", "e:1", refresh=False)


def test_live_pings_then_closes_without_a_pong() -> None:
    state = live(now=0)
    assert state.phase is Phase.LIVE and state.deadline() == 25
    assert state.on_timer(25) == SendPing()
    assert state.deadline() == 35  # the pong is due before the next ping
    assert state.on_timer(35) == Finish(Close.of(CloseCode.NO_PONG))


def test_a_pong_clears_the_deadline() -> None:
    state = live(now=0)
    state.on_timer(25)
    assert state.on_message(Pong()) is None
    assert state.deadline() == 50 and state.on_timer(35) is None


def test_client_pings_are_answered_and_auth_again_is_a_refresh() -> None:
    state = live()
    assert state.on_message(Ping()) == SendPong()
    assert state.on_message(Auth("t2")) == Authenticate("t2", None, refresh=True)


def test_an_expired_token_closes_after_the_grace_unless_refreshed() -> None:
    state = live(now=0, expires_at=20)
    assert state.deadline() == 25  # ping at 25 and expiry+grace at 30
    state.on_timer(25)
    state.on_message(Pong())
    assert state.on_timer(30) == Finish(Close.of(CloseCode.TOKEN_EXPIRED))
    refreshed = live(now=0, expires_at=20)
    refreshed.authenticated(expires_at=500, now=15)
    assert refreshed.on_timer(30) == SendPing()  # not a close: the refresh moved the expiry


def test_one_way_transports_get_pings_but_owe_no_pong() -> None:
    state = ConnectionState(Timing(5, 25, None, 10), 0)
    state.authenticated(1000, 0)
    assert state.on_timer(25) == SendPing() and state.deadline() == 50


def test_closed_is_final() -> None:
    state = live()
    state.closed()
    assert state.deadline() == math.inf
    with pytest.raises(IllegalTransition):
        state.on_message(Ping())
    with pytest.raises(IllegalTransition):
        state.authenticated(1, 1)


def test_an_ack_is_taken_only_once_live() -> None:
    state = ConnectionState(TIMING, now=0)
    assert state.on_message(Ack(3)) == Finish(Close.of(CloseCode.BAD_REQUEST, "authenticate first"))
    assert live().on_message(Ack(3, "e")) == Acknowledge(3, "e")


def patch(cursor: int, size: int = 40) -> protocol.Message:
    return protocol.patch("e", cursor, [{"op": "add", "path": f"/S{cursor}", "value": "v" * size}])


async def test_an_overflowing_outbox_conflates_from_its_first_queued_patch() -> None:
    asked: list[Position | None] = []
    outbox = Outbox(max_bytes=200)
    outbox.on_overflow = lambda: asked.append(outbox.conflate_from)
    first = patch(1)
    outbox.offer(first)
    assert outbox.pop() is first  # written: the client will have cursor 1
    outbox.stalled = True  # ... and that write is blocked
    for cursor in range(2, 8):
        assert outbox.offer(patch(cursor))
    outbox.offer(protocol.pong())
    assert outbox.conflate_from == Position("e", 1) and outbox.closing is None
    assert len(outbox) == 1  # the patches dropped, the control message kept
    assert outbox.offer(patch(9)) and len(outbox) == 1  # covered by the conflated patch to come
    outbox.offer(protocol.ping(Position("e", 9), "0" * 16))
    assert asked == []  # the socket is blocked: the merge waits until it takes data
    outbox.unstalled()
    assert asked == [Position("e", 1)]
    assert [m.text for m in outbox.drain()] == ['{"type":"pong"}', '{"type":"ping"}']  # the ping claims no position
    merged = protocol.patch("e", 9, [], base=1)
    outbox.conflated(merged)
    assert outbox.conflate_from is None and outbox.pop() is merged and outbox.conflations == 1


async def test_a_ping_queued_when_the_conflation_begins_still_goes_out() -> None:
    """The connection waits for that ping's pong: dropping it with the patches would close a
    client that reads (3012, no pong) for a ping it never got."""
    outbox = Outbox(max_bytes=200)
    outbox.on_overflow = lambda: None
    outbox.offer(patch(1))
    outbox.offer(protocol.ping(Position("e", 1), "0" * 16))
    for cursor in range(2, 8):
        outbox.offer(patch(cursor))
    assert outbox.conflate_from == Position("e", 0)
    assert [m.text for m in outbox.drain()] == ['{"type":"ping"}']  # kept, without its position


async def test_a_queued_snapshot_makes_the_conflation_a_snapshot_and_a_snapshot_ends_it() -> None:
    outbox = Outbox(max_bytes=200)
    outbox.on_overflow = lambda: None
    outbox.offer(protocol.snapshot("e", 3, {"S1": b'{"id":"S1"}'}))
    for cursor in range(4, 10):
        outbox.offer(patch(cursor))
    assert outbox.conflate_from is SNAPSHOT_NEEDED and len(outbox) == 0
    fresh = protocol.snapshot("e", 12, {}, reset=True)
    assert outbox.offer(fresh) and outbox.conflate_from is None and outbox.pop() is fresh


async def test_a_hold_conflates_until_released() -> None:
    asked: list[Position | None] = []
    outbox = Outbox(max_bytes=100_000)
    outbox.on_overflow = lambda: asked.append(outbox.conflate_from)
    outbox.hold(Position("e", 4))
    assert outbox.offer(patch(5)) and len(outbox) == 0 and outbox.conflate_from == Position("e", 4)
    outbox.unstalled()
    assert asked == []  # held: a writable socket does not end it, the client's ack does
    outbox.release()
    assert asked == [Position("e", 4)]


async def test_outbox_is_bounded_and_closes_slow_consumers_unflushed() -> None:
    outbox = Outbox(max_bytes=100)
    big = protocol.patch("e", 1, [{"op": "add", "path": "/x", "value": "y" * 200}])
    assert outbox.offer(big)  # one oversized message still fits an empty queue
    assert not outbox.offer(protocol.pong())
    assert outbox.closing == Close.of(CloseCode.SLOW) and outbox.aborted
    assert len(outbox) == 0 and await outbox.next() is None


async def test_outbox_flushes_before_a_graceful_finish() -> None:
    outbox = Outbox(max_bytes=1000)
    first, second = protocol.pong(), protocol.reconnect(10)
    outbox.offer(first)
    outbox.offer(second)
    outbox.finish(Close.of(CloseCode.SHUTDOWN), flush=True)
    assert not outbox.offer(protocol.pong()) and not outbox.aborted
    assert [await outbox.next(), await outbox.next(), await outbox.next()] == [first, second, None]


async def test_outbox_wakes_a_waiting_writer() -> None:
    outbox = Outbox(max_bytes=1000)
    waiter = asyncio.ensure_future(outbox.next())
    await asyncio.sleep(0)
    message = protocol.pong()
    outbox.offer(message)
    assert await asyncio.wait_for(waiter, 1) is message
    assert outbox.queued_bytes == 0


async def test_the_pump_writes_without_a_task_and_resumes_a_write_that_blocks() -> None:
    from app.live.pump import resume, start

    writable = asyncio.Event()
    writable.set()
    written: list[int] = []

    async def send(n: int) -> int:  # like an ASGI send: waits only while the transport is paused
        await writable.wait()
        written.append(n)
        return n

    assert start(send(1)) == (True, 1)  # room to write: done at once, no task
    writable.clear()
    coro = send(2)
    done, waiting = start(coro)
    assert not done and written == [1]
    task = asyncio.ensure_future(resume(coro, waiting))
    await asyncio.sleep(0.01)
    assert not task.done()
    writable.set()
    assert await asyncio.wait_for(task, 1) == 2 and written == [1, 2]

    writable.clear()
    coro = send(3)
    done, waiting = start(coro)
    with pytest.raises(TimeoutError):  # a write timeout cancels it inside the coroutine
        async with asyncio.timeout(0.05):
            await resume(coro, waiting)
    assert written == [1, 2]


async def test_an_outbox_tells_its_writer_once_per_batch() -> None:
    calls: list[int] = []
    outbox = Outbox(max_bytes=1000, on_ready=lambda: calls.append(len(outbox)))
    outbox.offer(protocol.pong())
    outbox.offer(protocol.pong())
    assert calls == [1]  # first message into an empty queue only
    outbox.pop(), outbox.pop()
    outbox.offer(protocol.pong())
    outbox.finish(Close.of(CloseCode.SHUTDOWN), flush=True)
    assert calls == [1, 1, 1]
