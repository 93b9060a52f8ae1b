"""Drives one live connection over a transport (WebSocket or SSE).

One task per connection: the server's own (the ASGI handler), which
authenticates and then reads what the client sends. Nothing else of the
connection runs as a task while it is healthy and idle:

- its deadlines (auth, ping, pong, token expiry) are one loop timer
  (`call_later`), re-armed when the state machine's next deadline moves;
- its outbox is written by the process's shared pump (app.live.pump): the
  relay queues, the pump writes every connection that got something at the
  next turn of the loop, each write completing without suspending while the
  socket has room. Only a write that blocks (a slow reader) gets a task, which
  finishes it under `LIVE_WRITE_TIMEOUT` and ends once the queue is empty.

A connection the server ends (timer, slow, shutdown, store failure) sends its
close and then stops the reader; one the client ends stops at its reader."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from app.config import Settings
from app.auth.tokens import USER, AuthError, Forbidden, Principal, TokenExpired, require_role
from app.live import protocol
from app.live.feed import STORE_ERRORS, Subscriber, Who
from app.live.hub import Draining, Hub
from app.live.outbox import Outbox
from app.live.protocol import (
    Close,
    CloseCode,
    Message,
    ProtocolError,
    parse_inbound,
)
from app.live.pump import resume, start
from app.live.session import (
    Acknowledge,
    Authenticate,
    ConnectionState,
    Finish,
    SendPing,
    SendPong,
    Timing,
)
from app.domain.positions import BadPosition, parse_since
from app.domain.visibility import Viewer

if TYPE_CHECKING:
    from app.live.presence import Attendance

log = logging.getLogger("app.live.client")


class PeerGone(Exception):
    """The other side went away; nothing more can be sent."""


class Transport(Protocol):
    def send(self, message: Message) -> Coroutine[Any, Any, None]:
        """Raises PeerGone. Must not depend on the task it runs in: the pump
        runs it outside any task until it first suspends."""

    async def receive(self) -> str | bytes | None:
        """The next inbound message; None once the peer is gone."""

    async def close(self, close: Close) -> None: ...


@dataclass(frozen=True, slots=True)
class Limits:
    queue_max_bytes: int
    write_timeout: float
    max_message_bytes: int
    timing: Timing
    transport: str  # what GET /live/connections calls it: websocket (two-way) or sse

    @classmethod
    def of(cls, settings: Settings, *, two_way: bool) -> Limits:
        return cls(
            transport="websocket" if two_way else "sse",
            queue_max_bytes=settings.live_queue_max_bytes,
            write_timeout=settings.live_write_timeout,
            max_message_bytes=settings.live_max_message_bytes,
            timing=Timing(
                auth_timeout=settings.live_auth_timeout,
                ping_interval=settings.live_ping_interval,
                pong_timeout=settings.live_pong_timeout if two_way else None,
                token_grace=settings.live_token_grace,
            ),
        )


@dataclass(frozen=True, slots=True)
class LiveLimits:
    """The Limits every connection of one app shares, one per transport kind, built
    once with the app (`app.composition.build_services`)."""

    socket: Limits  # WebSocket: the peer answers pings
    stream: Limits  # SSE: one way, no pong owed

    @classmethod
    def of(cls, settings: Settings) -> LiveLimits:
        return cls(socket=Limits.of(settings, two_way=True), stream=Limits.of(settings, two_way=False))


class Connection:
    __slots__ = (
        "_attendance", "_clock", "_closing", "_due", "_hub", "_limits", "_reader", "_reading", "_stalled_at", "_stopping",
        "_timer", "_timer_at", "_transport", "_verify", "_writer", "ended_with", "outbox", "principal", "state", "sub",
    )

    def __init__(self, hub: Hub, authenticate: Callable[[str | None], Awaitable[Principal]], limits: Limits,
                 transport: Transport, clock: Callable[[], float] = time.time,
                 attendance: Attendance | None = None) -> None:
        self._hub = hub
        self._attendance = attendance  # its part in agent presence (app.live.presence)
        self._verify = authenticate
        self._limits = limits
        self._transport = transport
        self._clock = clock
        self.outbox = Outbox(limits.queue_max_bytes, self._on_ready)
        self.state = ConnectionState(limits.timing, clock())
        self.principal: Principal | None = None
        self.sub: Subscriber | None = None
        self.ended_with: Close | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        self._due = False  # asked the pump to flush
        self._writer: asyncio.Task[None] | None = None  # a blocked write (or the close) in progress
        self._closing = False  # a close was started: write nothing more
        self._stalled_at = 0.0  # when the blocked write (outbox.stalled) began
        self._reader: asyncio.Task[Any] | None = None
        self._reading = False
        self._stopping = False  # the reader was cancelled by us, to end the connection

    async def run(self, token: str | None, since: str | None) -> Close | None:
        """Serve until the connection ends; the Close sent, or None if the peer left."""
        self._reader = asyncio.current_task()
        self._hub.track(self.outbox)
        self._arm()
        try:
            close: Close | None = None
            self._reading = True
            try:
                if token is not None:
                    close = await self._authenticate(Authenticate(token, since, refresh=False))
                token = since = None  # this frame lives as long as the connection: keep no credentials
                receive = self._transport.receive  # reading, here: a frame of its own would live as long
                while close is None and (data := await receive()) is not None:
                    close = await self._on_inbound(data)
                    del data  # an auth message's token is not kept while the socket idles
            except asyncio.CancelledError:
                if not self._stopping or self._uncancel():
                    raise
            finally:
                self._reading = False
            if close is not None and not self._closing:
                # The client broke the protocol: close now, unflushed.
                self.outbox.finish(close, flush=False)
                await self._send_close(close)
            elif self._writer is not None and not self._writer.done() and self._closing:
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.shield(self._writer)  # the server's close, being sent
            return self.ended_with
        finally:
            self._closing = True
            self.state.closed()
            if self._timer is not None:
                self._timer.cancel()
            if self._writer is not None and not self._writer.done():
                self._writer.cancel()
            if self._attendance is not None:
                await self._attendance.end()
            if self.sub is not None:
                await self._hub.close(self.sub)
            self._hub.untrack(self.outbox)

    def _uncancel(self) -> bool:
        """Swallow our own cancellation of the reader; True if someone else's is pending too."""
        task = asyncio.current_task()
        return task is not None and task.uncancel() > 0

    # -- reading ------------------------------------------------------------------
    async def _on_inbound(self, data: str | bytes) -> Close | None:
        """One inbound message; a Close ends the connection."""
        try:
            message = parse_inbound(data, self._limits.max_message_bytes)
        except ProtocolError as exc:
            return exc.close
        action = self.state.on_message(message)
        if isinstance(action, Finish):
            return action.close
        if isinstance(action, SendPong):
            self.outbox.offer(protocol.pong())
        elif isinstance(action, Acknowledge):
            if self.sub is not None:
                self._hub.acknowledged(self.sub, action.cursor, action.epoch)
        elif isinstance(action, Authenticate):
            return await self._authenticate(action)
        return None

    def _stop_reader(self) -> None:
        if self._reading and self._reader is not None and not self._stopping:
            self._stopping = True
            self._reader.cancel()

    # -- deadlines: one loop timer ----------------------------------------------------
    def _arm(self) -> None:
        """Make sure the timer fires by the state's next deadline (a later one is
        found when an earlier timer fires and re-arms)."""
        when = self.state.deadline()
        if when == math.inf or when >= self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = when
        self._timer = asyncio.get_running_loop().call_later(max(0.0, when - self._clock()), self._on_timer)

    def _on_timer(self) -> None:
        self._timer, self._timer_at = None, math.inf
        if self._closing:
            return
        action = self.state.on_timer(self._clock())
        if isinstance(action, Finish):
            self.outbox.finish(action.close, flush=False)
            return
        if isinstance(action, SendPing):
            sub = self.sub
            self.outbox.offer(protocol.ping(sub.position, sub.digest_text) if sub else protocol.ping(None))
        self._arm()

    # -- writing: from the shared pump -----------------------------------------------
    def _on_ready(self) -> None:
        """The outbox got its first message, or was finished."""
        if self._closing:
            writer = self._writer
            if self.outbox.aborted and self.outbox.stalled and writer is not None and writer is not asyncio.current_task():
                writer.cancel()  # abandoned (a drain): stop waiting for the socket to take the close
                self._stop_reader()
            return
        writer = self._writer
        if self.outbox.aborted and writer is not None and writer is not asyncio.current_task():
            writer.cancel()  # a blocked write of what the server no longer sends
            self._writer = None
        if not self._due and self._writer is None:
            self._due = True
            self._hub.pump.due(self)

    def flush(self) -> None:
        """Write what is queued without waiting; hand a write that would wait to a task."""
        self._due = False
        if self._writer is not None or self._closing:
            return
        outbox, send = self.outbox, self._transport.send
        while (message := outbox.pop()) is not None:
            coro = send(message)
            try:
                done, waiting = start(coro)
            except PeerGone:
                self._peer_gone()
                return
            if not done:
                outbox.stalled, self._stalled_at = True, self._clock()
                self._writer = asyncio.create_task(self._finish_write(coro, waiting))
                return
        if outbox.closing is not None:
            self._closing = True
            self._writer = asyncio.create_task(self._close_then_stop(outbox.closing))

    async def _finish_write(self, coro: Coroutine[Any, Any, None], waiting: Any) -> None:
        try:
            async with asyncio.timeout(self._limits.write_timeout):
                await resume(coro, waiting)
        except TimeoutError:
            self._hub.teardowns.write_timeouts += 1
            self.outbox.finish(Close.of(CloseCode.SLOW, "write timeout"), flush=False)
        except PeerGone:
            self._peer_gone()
            return
        else:
            self.outbox.unstalled()
        self._writer = None
        self.flush()  # more queued meanwhile, or the close: back to writing from the pump

    async def _close_then_stop(self, close: Close) -> None:
        await self._send_close(close)
        self._stop_reader()

    async def _send_close(self, close: Close) -> None:
        self._closing = True
        self.ended_with = close
        budget = self._close_budget()
        if budget <= 0:
            self._try_close(close)
            return
        try:
            async with asyncio.timeout(budget):
                await self._transport.close(close)
        except (TimeoutError, PeerGone, OSError, RuntimeError) as exc:
            log.debug("close %s not delivered: %s", close.code, exc)

    def _close_budget(self) -> float:
        """How long the close frame may wait for the socket to take it: LIVE_WRITE_TIMEOUT,
        less what a blocked write already waited; nothing for a blocked socket while draining."""
        if not self.outbox.stalled:
            return self._limits.write_timeout
        if self._hub.draining:
            return 0.0
        return self._limits.write_timeout - (self._clock() - self._stalled_at)

    def _try_close(self, close: Close) -> None:
        """The close frame, only if the socket takes it now. A socket whose reader stopped
        reading does not: waiting for it would hold the connection, so give up; the server's
        protocol then aborts the transport (app.live.uvicorn_ws) instead of flushing forever."""
        coro = self._transport.close(close)
        try:
            done, _ = start(coro)
        except (PeerGone, OSError, RuntimeError) as exc:
            log.debug("close %s not delivered: %s", close.code, exc)
            return
        if not done:
            coro.close()
            log.debug("close %s not delivered: the socket takes no more", close.code)

    def _peer_gone(self) -> None:
        self._closing = True  # nothing more can be written: end (the reader may not notice alone)
        self._stop_reader()

    # -- auth -----------------------------------------------------------------------
    async def _authenticate(self, action: Authenticate) -> Close | None:
        try:
            principal = require_role(await self._verify(action.token), USER)
        except TokenExpired:
            return Close.of(CloseCode.TOKEN_EXPIRED)
        except Forbidden as exc:
            return Close.of(CloseCode.FORBIDDEN, exc.message)
        except AuthError as exc:
            return Close.of(CloseCode.UNAUTHORIZED, exc.message)
        if action.refresh:
            refused = self._refresh(principal)
            if refused is None and self._attendance is not None:
                await self._attendance.rebind(principal)
            return refused
        try:
            since = parse_since(action.since)
        except BadPosition as exc:
            return Close.of(CloseCode.BAD_REQUEST, str(exc))
        self.principal = principal
        self.state.authenticated(principal.expires_at, self._clock())
        self._arm()
        try:
            who = Who(self._hub.connection_id(), principal.user_id, principal.endpoint_id, self._limits.transport)
            self.sub = await self._hub.open(Viewer.of(principal), self.outbox, since, who=who)
        except Draining:
            return Close.of(CloseCode.SHUTDOWN)
        except STORE_ERRORS as exc:
            log.warning("live subscribe failed: %s", exc)
            return Close.of(CloseCode.SERVER_ERROR)
        if self._attendance is not None:
            await self._attendance.begin(principal, self.outbox)
        return None

    def _refresh(self, principal: Principal) -> Close | None:
        current = self.principal
        assert current is not None and self.sub is not None
        if (principal.account_id, principal.user_id) != (current.account_id, current.user_id):
            return Close.of(CloseCode.FORBIDDEN, "a refresh must be for the same user")
        self.principal = principal
        self.state.authenticated(principal.expires_at, self._clock())
        self._arm()
        viewer = Viewer.of(principal)
        if viewer != self.sub.viewer:
            self._hub.rebind(self.sub, viewer)
        self.outbox.offer(protocol.authenticated(principal.expires_at))
        return None
