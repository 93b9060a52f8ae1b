"""One connection's protocol state machine (pure: no I/O, time is passed in).

    AUTHENTICATING --auth ok--> LIVE --close--> CLOSED
          |                       |
          +------- close ---------+

It decides; the driver (client.py) verifies tokens, talks to the hub and the
socket. Deadlines: the first auth message, each pong, the token's expiry plus
a grace period, and when to send the next ping."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from app.live.protocol import Ack, Auth, Close, CloseCode, Inbound, Ping, Pong


class Phase(enum.Enum):
    AUTHENTICATING = "authenticating"
    LIVE = "live"
    CLOSED = "closed"


class IllegalTransition(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class Timing:
    auth_timeout: float
    ping_interval: float
    pong_timeout: float | None  # None: the peer cannot answer (SSE)
    token_grace: float


@dataclass(frozen=True, slots=True)
class SendPing:
    pass


@dataclass(frozen=True, slots=True)
class SendPong:
    pass


@dataclass(frozen=True, slots=True)
class Authenticate:
    token: str
    since: str | None
    refresh: bool


@dataclass(frozen=True, slots=True)
class Finish:
    close: Close


@dataclass(frozen=True, slots=True)
class Acknowledge:
    """The client's state is applied up to `cursor` (of `epoch`, when it said)."""

    cursor: int
    epoch: str | None


Action = SendPing | SendPong | Authenticate | Finish | Acknowledge | None


class ConnectionState:
    __slots__ = ("_auth_deadline", "_expires_at", "_next_ping", "_pong_due", "phase", "timing")

    def __init__(self, timing: Timing, now: float) -> None:
        self.timing = timing
        self.phase = Phase.AUTHENTICATING
        self._auth_deadline = now + timing.auth_timeout
        self._expires_at = math.inf
        self._next_ping = math.inf
        self._pong_due = math.inf

    def deadline(self) -> float:
        """When `on_timer` next has something to do."""
        if self.phase is Phase.AUTHENTICATING:
            return self._auth_deadline
        if self.phase is Phase.LIVE:
            return min(self._next_ping, self._pong_due, self._expires_at + self.timing.token_grace)
        return math.inf

    def on_timer(self, now: float) -> Action:
        if self.phase is Phase.AUTHENTICATING:
            return Finish(Close.of(CloseCode.AUTH_TIMEOUT)) if now >= self._auth_deadline else None
        if self.phase is not Phase.LIVE:
            return None
        if now >= self._pong_due:
            return Finish(Close.of(CloseCode.NO_PONG))
        if now >= self._expires_at + self.timing.token_grace:
            return Finish(Close.of(CloseCode.TOKEN_EXPIRED))
        if now >= self._next_ping:
            self._next_ping = now + self.timing.ping_interval
            if self.timing.pong_timeout is not None and self._pong_due == math.inf:
                self._pong_due = now + self.timing.pong_timeout
            return SendPing()
        return None

    def on_message(self, message: Inbound) -> Action:
        if self.phase is Phase.CLOSED:
            raise IllegalTransition("message after close")
        if isinstance(message, Auth):
            return Authenticate(message.token, message.since, refresh=self.phase is Phase.LIVE)
        if self.phase is Phase.AUTHENTICATING:
            return Finish(Close.of(CloseCode.BAD_REQUEST, "authenticate first"))
        if isinstance(message, Ping):
            return SendPong()
        if isinstance(message, Ack):
            return Acknowledge(message.cursor, message.epoch)
        assert isinstance(message, Pong)
        self._pong_due = math.inf
        return None

    def authenticated(self, expires_at: float, now: float) -> None:
        """A token was accepted: the first (AUTHENTICATING -> LIVE) or a refresh."""
        if self.phase is Phase.CLOSED:
            raise IllegalTransition("authenticated after close")
        if self.phase is Phase.AUTHENTICATING:
            self.phase = Phase.LIVE
            self._next_ping = now + self.timing.ping_interval
        self._expires_at = expires_at

    def closed(self) -> None:
        self.phase = Phase.CLOSED
