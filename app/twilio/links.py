"""Which session a Twilio callback belongs to (Redis I/O).

In order: the `sessionId` the platform put in the callback URL (its account
from `accountId`, or from the session's owner); else the session its CallSid,
its `ParentCallSid` or its ConferenceSid was linked to by an earlier callback.
When a callback is applied, the SIDs it names are linked to its session (first
link wins) in the same atomic step as its commit (`Ingest`, `SessionStore.commit`
with `links`), so later callbacks without context find it too.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis

from app.storage import keys
from app.redis_io import Redis, wrap
from app.redis_io.replies import text
from app.twilio.callbacks import Callback, CallStatus


@dataclass(frozen=True, slots=True)
class Target:
    account_id: str
    session_id: str


@dataclass(frozen=True, slots=True)
class Unresolved:
    reason: str


def sids(cb: Callback) -> list[tuple[str, str]]:
    """(kind, SID) pairs that can lead to the session or be linked to it."""
    if isinstance(cb, CallStatus):
        out = [("call", cb.call_sid)]
        if cb.parent_call_sid:
            out.append(("call", cb.parent_call_sid))
        return out
    out = [("call", cb.call_sid)] if cb.call_sid else []
    return [*out, ("conference", cb.conference_sid)]


def link_key(kind: str, sid: str) -> str:
    return keys.call_link(sid) if kind == "call" else keys.conference_link(sid)



class Links:
    def __init__(self, redis: Redis | aioredis.Redis, ttl_seconds: int) -> None:
        self.redis = wrap(redis)
        self.ttl = ttl_seconds

    async def resolve(self, cb: Callback) -> Target | Unresolved:
        ctx = cb.context
        if ctx.session_id:
            if ctx.account_id:
                return Target(ctx.account_id, ctx.session_id)
            [owner] = await self.redis.run([("GET", keys.owner(ctx.session_id))])
            if owner is None:
                return Unresolved(f"session {ctx.session_id!r} is unknown and the URL names no accountId")
            return Target(text(owner), ctx.session_id)
        pairs = sids(cb)
        # One GET each, in one batch: the link keys are in different cluster slots.
        values = await self.redis.run([("GET", link_key(kind, sid)) for kind, sid in pairs])
        for (_, sid), value in zip(pairs, values):
            if value is None:
                continue
            account, _, session = text(value).partition(" ")
            if ctx.account_id and ctx.account_id != account:
                return Unresolved(f"{sid} is linked to another account's session")
            return Target(account, session)
        names = ", ".join(sid for _, sid in pairs)
        return Unresolved(f"no sessionId in the URL and nothing links {names} to a session")
