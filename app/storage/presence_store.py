"""Agent presence in Redis: leases of live connections, per account (lua/presence.lua).

Every call is one atomic script per account, in the account's slot; a tick of
many accounts is one batch (one socket write per node). Times are Unix
milliseconds computed by the caller (app.domain.presence), so a test can drive
the clock."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from app.domain.presence import Present, decode_entry
from app.redis_io import REDIS_DOWN, Command, Redis
from app.redis_io.replies import raise_errors, text
from app.storage import keys, scripts
from app.storage.session_store import StoreUnavailable

_SCRIPT = scripts.Script("presence.lua")
_BODIES = {_SCRIPT.sha: _SCRIPT.body}


@dataclass(frozen=True, slots=True)
class Roster:
    """The present endpoints of an account (each with its live connection count), at `version`."""

    version: int
    entries: list[Present]


@dataclass(frozen=True, slots=True)
class Ticked:
    version: int
    missing: list[str]  # connections whose lease was gone (swept): to join again


class PresenceStore:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def join(self, account_id: str, connection_id: str, endpoint_id: str, entry: bytes,
                   *, now_ms: int, expiry_ms: int) -> int:
        """A lease for a new live connection; publishes a join if its endpoint was absent."""
        publish = await self._publish()
        [reply] = await self._run([_call(publish, account_id, "join", now_ms, expiry_ms, connection_id, endpoint_id,
                                         entry)])
        return int(reply[0])

    async def leave(self, account_id: str, connection_ids: Sequence[str]) -> int:
        """The connections ended; publishes a leave for each endpoint left with none."""
        [reply] = await self._run([_call(await self._publish(), account_id, "leave", 0, 0, *connection_ids)])
        return int(reply[0])

    async def tick(self, renew: Mapping[str, Sequence[str]], sweep: Sequence[str], *, now_ms: int,
                   expiry_ms: int, leave: Mapping[str, Sequence[str]] | None = None) -> dict[str, Ticked]:
        """One batch: each account's ended connections (`leave`) leave, its given leases
        are renewed, then the expired leases of those accounts and of `sweep` are swept
        (publishing their leaves)."""
        leave = leave or {}
        accounts = list(dict.fromkeys([*renew, *leave, *sweep]))
        if not accounts:
            return {}
        publish = await self._publish()
        calls = []
        for a in accounts:
            renewed = renew.get(a, ())
            calls.append(_call(publish, a, "tick", now_ms, expiry_ms, str(len(renewed)), *renewed, *leave.get(a, ())))
        replies = await self._run(calls)
        return {account: Ticked(int(reply[0]), [text(c) for c in reply[1:]])
                for account, reply in zip(accounts, replies)}

    async def read(self, account_id: str, *, now_ms: int) -> Roster:
        """Sweep the account's expired leases, then who is present."""
        [reply] = await self._run([_call(await self._publish(), account_id, "read", now_ms, 0)])
        rest = reply[1:]
        entries = [decode_entry(raw, int(count)) for count, raw in zip(rest[1::3], rest[2::3]) if raw]
        return Roster(int(reply[0]), entries)

    async def _publish(self) -> str:
        """PUBLISH, or SPUBLISH on a cluster: known once the topology is."""
        try:
            redis = await self.redis.ready()
        except REDIS_DOWN as exc:
            raise StoreUnavailable(str(exc)) from exc
        return "SPUBLISH" if redis.sharded else "PUBLISH"

    async def _run(self, commands: list[Command]) -> list[Any]:
        try:
            return raise_errors(await scripts.run(self.redis, commands, _BODIES))
        except REDIS_DOWN as exc:
            raise StoreUnavailable(str(exc)) from exc


def _call(publish: str, account_id: str, verb: str, now_ms: int, expiry_ms: int, *args: str | bytes) -> Command:
    return _SCRIPT.call(
        [keys.presence_leases(account_id), keys.presence_connections(account_id), keys.presence_counts(account_id),
         keys.presence_entries(account_id), keys.presence_version(account_id)],
        [verb, publish, keys.live_channel(account_id), now_ms, expiry_ms, *args],
    )
