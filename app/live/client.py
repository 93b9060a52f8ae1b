"""Drives one live connection over a transport (WebSocket or SSE).

Three tasks per connection: the writer empties the bounded outbox into the
socket, the reader handles what the client sends, the timer runs the state
machine's deadlines. The first to finish decides how the connection ends."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from app.auth import USER, AuthError, Forbidden, Principal, TokenExpired, require_role
from app.live import protocol
from app.live.feed import STORE_ERRORS, Subscriber
from app.live.hub import Draining, Hub
from app.live.outbox import Outbox
from app.live.protocol import (
    BadPosition,
    Close,
    CloseCode,
    Message,
    ProtocolError,
    parse_inbound,
    parse_since,
)
from app.live.session import (
    Authenticate,
    ConnectionState,
    Finish,
    SendPing,
    SendPong,
    Timing,
)
from app.live.views import Viewer

log = logging.getLogger("app.live.client")


class PeerGone(Exception):
    """The other side went away; nothing more can be sent."""


class Transport(Protocol):
    async def send(self, message: Message) -> None:
        """Raises PeerGone."""

    async def receive(self) -> str | bytes | None:
        """The next inbound message; None once the peer is gone."""

    async def close(self, close: Close) -> None: ...


@dataclass(frozen=True, slots=True)
class Limits:
    queue_max_bytes: int
    write_timeout: float
    max_message_bytes: int
    timing: Timing


class Connection:
    def __init__(self, hub: Hub, authenticate: Callable[[str | None], Principal], limits: Limits,
                 transport: Transport, clock: Callable[[], float] = time.time) -> None:
        self._hub = hub
        self._verify = authenticate
        self._limits = limits
        self._transport = transport
        self._clock = clock
        self.outbox = Outbox(limits.queue_max_bytes)
        self.state = ConnectionState(limits.timing, clock())
        self.principal: Principal | None = None
        self.sub: Subscriber | None = None
        self.ended_with: Close | None = None
        self._rearm = asyncio.Event()  # the state's deadline moved earlier

    async def run(self, token: str | None, since: str | None) -> Close | None:
        """Serve until the connection ends; the Close sent, or None if the peer left."""
        self._hub.track(self.outbox)
        try:
            close = None
            if token is not None:
                close = await self._authenticate(Authenticate(token, since, refresh=False))
            if close is None:
                close = await self._serve()
            self.ended_with = close
            if close is not None:
                await self._close(close)
            return close
        finally:
            self.state.closed()
            if self.sub is not None:
                await self._hub.close(self.sub)
            self._hub.untrack(self.outbox)

    async def _serve(self) -> Close | None:
        tasks = [
            asyncio.create_task(self._write()),
            asyncio.create_task(self._read()),
            asyncio.create_task(self._tick()),
            asyncio.create_task(self._aborted()),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            results = [task.result() for task in done]
            return next((r for r in results if r is not None), None)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _aborted(self) -> Close:
        """The relay gave up on this connection (too slow): close now, unflushed."""
        await self.outbox.aborted.wait()
        assert self.outbox.closing is not None
        return self.outbox.closing

    async def _close(self, close: Close) -> None:
        try:
            await asyncio.wait_for(self._transport.close(close), self._limits.write_timeout)
        except (TimeoutError, PeerGone, OSError, RuntimeError) as exc:
            log.debug("close %s not delivered: %s", close.code, exc)

    # -- tasks --------------------------------------------------------------------
    async def _write(self) -> Close | None:
        while True:
            message = await self.outbox.next()
            if message is None:
                return self.outbox.closing
            try:
                # asyncio.timeout, not wait_for: on 3.11 wait_for wraps every frame in a task.
                async with asyncio.timeout(self._limits.write_timeout):
                    await self._transport.send(message)
            except TimeoutError:
                return Close.of(CloseCode.SLOW, "write timeout")
            except PeerGone:
                return None

    async def _read(self) -> Close | None:
        while True:
            data = await self._transport.receive()
            if data is None:
                return None
            try:
                message = parse_inbound(data, self._limits.max_message_bytes)
            except ProtocolError as exc:
                return exc.close
            action = self.state.on_message(message)
            if isinstance(action, Finish):
                return action.close
            if isinstance(action, SendPong):
                self.outbox.offer(protocol.pong())
            elif isinstance(action, Authenticate):
                close = await self._authenticate(action)
                if close is not None:
                    return close

    async def _tick(self) -> Close:
        while True:
            delay = self.state.deadline() - self._clock()
            if delay > 0:
                self._rearm.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._rearm.wait(), min(delay, 3600.0))
                continue
            action = self.state.on_timer(self._clock())
            if isinstance(action, Finish):
                return action.close
            if isinstance(action, SendPing):
                self.outbox.offer(protocol.ping(self.sub.position if self.sub else None))

    # -- auth -----------------------------------------------------------------------
    async def _authenticate(self, action: Authenticate) -> Close | None:
        try:
            principal = require_role(self._verify(action.token), USER)
        except TokenExpired:
            return Close.of(CloseCode.TOKEN_EXPIRED)
        except Forbidden as exc:
            return Close.of(CloseCode.FORBIDDEN, exc.message)
        except AuthError as exc:
            return Close.of(CloseCode.UNAUTHORIZED, exc.message)
        if action.refresh:
            return self._refresh(principal)
        try:
            since = parse_since(action.since)
        except BadPosition as exc:
            return Close.of(CloseCode.BAD_REQUEST, str(exc))
        self.principal = principal
        self.state.authenticated(principal.expires_at, self._clock())
        self._rearm.set()
        try:
            self.sub = await self._hub.open(Viewer.of(principal), self.outbox, since)
        except Draining:
            return Close.of(CloseCode.SHUTDOWN)
        except STORE_ERRORS as exc:
            log.warning("live subscribe failed: %s", exc)
            return Close.of(CloseCode.SERVER_ERROR)
        return None

    def _refresh(self, principal: Principal) -> Close | None:
        current = self.principal
        assert current is not None and self.sub is not None
        if (principal.account_id, principal.user_id) != (current.account_id, current.user_id):
            return Close.of(CloseCode.FORBIDDEN, "a refresh must be for the same user")
        self.principal = principal
        self.state.authenticated(principal.expires_at, self._clock())
        self._rearm.set()
        viewer = Viewer.of(principal)
        if viewer != self.sub.viewer:
            self._hub.rebind(self.sub, viewer)
        self.outbox.offer(protocol.authenticated(principal.expires_at))
        return None
