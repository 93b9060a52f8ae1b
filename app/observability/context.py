"""The request being served: its id, route, account and arrival time (one
context variable, set by the access middleware, read by logs and counters)."""

from __future__ import annotations

import re
import time
import uuid
from contextvars import ContextVar
from dataclasses import dataclass, field

REQUEST_ID_HEADER = "x-request-id"
_SAFE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


@dataclass(slots=True)
class RequestContext:
    request_id: str
    route: str
    arrived: float = field(default_factory=time.monotonic)
    account: str | None = None  # set once the bearer token is verified
    status: int | None = None


_current: ContextVar[RequestContext | None] = ContextVar("callstate_request", default=None)


def current() -> RequestContext | None:
    return _current.get()


def enter(ctx: RequestContext) -> object:
    return _current.set(ctx)


def leave(token: object) -> None:
    _current.reset(token)  # type: ignore[arg-type]


def request_id_from(presented: bytes | None) -> str:
    """The caller's X-Request-Id when it is short and plain (so it is safe in logs and
    headers), else a fresh one."""
    if presented is not None:
        text = presented.decode("latin-1")
        if _SAFE_ID.fullmatch(text):
            return text
    return uuid.uuid4().hex


def note_account(account_id: str) -> None:
    ctx = _current.get()
    if ctx is not None:
        ctx.account = account_id
