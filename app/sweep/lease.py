"""One sweeper per account at a time, across every process (Redis I/O).

A lease is a key in the account's slot (`keys.sweep_lease`, hash-tagged, so safe on
a Redis Cluster) holding the sweeping process's random token, with an expiry. Each
pass takes or renews it in one atomic step (`lua/lease_take.lua`); a process that
stops renewing (it died, or lost Redis) loses it after `SWEEP_LEASE_SECONDS`, and
the next process to look takes over. A lease is a promise about who asks, not a
lock on the data: every write the sweep makes is idempotent anyway, and the
per-session ask marker (`keys.sweep_asked`) keeps a takeover from asking twice."""

from __future__ import annotations

from os import urandom
from pathlib import Path
from typing import Final

from app.redis_io import Redis
from app.redis_io.replies import raise_errors
from app.storage import keys

_LUA: Final = Path(__file__).resolve().parent.parent / "storage" / "lua"
_TAKE: Final = (_LUA / "lease_take.lua").read_text()
_RELEASE: Final = (_LUA / "lease_release.lua").read_text()


class Leases:
    """This process's leases: one token, one lease per account it sweeps."""

    def __init__(self, redis: Redis, seconds: float, token: str | None = None) -> None:
        self.redis = redis
        self.ttl_ms = max(1, int(seconds * 1000))
        self.token = token or urandom(12).hex()

    async def take(self, account_ids: list[str]) -> list[str]:
        """The accounts whose lease this process holds now (taken or renewed), in one batch."""
        if not account_ids:
            return []
        replies = raise_errors(await self.redis.run(
            [("EVAL", _TAKE, 1, keys.sweep_lease(a), self.token, self.ttl_ms) for a in account_ids]))
        return [a for a, held in zip(account_ids, replies) if int(held)]

    async def release(self, account_ids: list[str]) -> None:
        if account_ids:
            raise_errors(await self.redis.run(
                [("EVAL", _RELEASE, 1, keys.sweep_lease(a), self.token) for a in account_ids]))
