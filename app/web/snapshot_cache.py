"""Rendered `GET /sessions/active` responses, cached per kind of viewer and
validated against the account's change-log position (no Redis here).

A snapshot is the exact response body one kind of viewer gets in one format,
tagged with the position (epoch, cursor) of the view it was rendered from.
Every commit to an account bumps its cursor, so a snapshot whose position
equals the account's current position is, byte for byte, what a fresh build
would return. The caller reads the current position (cheap, batched) after
the request arrived and hands it in; this module decides hit, join a rebuild
already running, or rebuild.

Principals with the same `SnapshotKey` see exactly the same bytes: the view
read (`store.view`) and the rule (`visibility.Viewer.sees`) look only at the
principal's `Viewer` (see `key_for`)."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from app.auth.tokens import Principal
from app.domain.positions import Position
from app.domain.visibility import Viewer



class SnapshotKey(NamedTuple):
    viewer: Viewer
    fmt: str
    op_name: str


def key_for(principal: Principal, fmt: str, op_name: str) -> SnapshotKey:
    """Everything of a request that decides its bytes: the viewer (all that
    `SessionStore.view` and the visibility rule read of the principal), the
    format and the operation name."""
    return SnapshotKey(Viewer.of(principal), fmt, op_name)


@dataclass(frozen=True, slots=True)
class Snapshot:
    position: Position
    body: bytes
    etag: str
    raw_headers: tuple[tuple[bytes, bytes], ...]  # everything a 200 sends, as ASGI header pairs
    size: int = field(init=False)

    def __post_init__(self) -> None:
        overhead = 256 + len(self.etag) + sum(len(k) + len(v) + 64 for k, v in self.raw_headers)
        object.__setattr__(self, "size", len(self.body) + overhead)

    def current_at(self, position: Position) -> bool:
        return position.epoch is not None and self.position == position

    def covers(self, position: Position) -> bool:
        """Built from a view at least as new as `position` (same log incarnation)."""
        return self.position.covers(position)


class SnapshotCache:
    """LRU of snapshots, bounded by count and by bytes held."""

    def __init__(self, max_entries: int = 4096, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: OrderedDict[SnapshotKey, Snapshot] = OrderedDict()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: SnapshotKey) -> Snapshot | None:
        snap = self._entries.get(key)
        if snap is not None:
            self._entries.move_to_end(key)
        return snap

    def put(self, key: SnapshotKey, snap: Snapshot) -> None:
        """Keep `snap` unless a newer one of the same log incarnation is held.
        One too large for the whole budget is not kept."""
        old = self._entries.get(key)
        if old is not None:
            if old.position.epoch == snap.position.epoch and old.position.cursor > snap.position.cursor:
                return
            del self._entries[key]
            self.bytes -= old.size
        if snap.size > self.max_bytes:
            return
        self._entries[key] = snap
        self.bytes += snap.size
        while len(self._entries) > self.max_entries or self.bytes > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self.bytes -= evicted.size

    def clear(self) -> None:
        self._entries.clear()
        self.bytes = 0


class _Abandoned(Exception):
    """The request running a rebuild was cancelled; those waiting on it rebuild."""


Build = Callable[[], Awaitable[Snapshot]]


class Snapshots:
    """The cache plus single-flight rebuilds. `get` never returns a snapshot
    older than the `position` it is given, which the caller must have read
    after its request arrived: that is what keeps reads strongly consistent."""

    def __init__(self, cache: SnapshotCache | None = None) -> None:
        self.cache = cache or SnapshotCache()
        self._flights: dict[SnapshotKey, tuple[Position, asyncio.Future[Snapshot]]] = {}
        self.hits = 0
        self.builds = 0
        self.joins = 0

    def cached(self, key: SnapshotKey, position: Position) -> Snapshot | None:
        snap = self.cache.get(key)
        if snap is not None and snap.current_at(position):
            self.hits += 1
            return snap
        return None

    async def get(self, key: SnapshotKey, position: Position, build: Build) -> Snapshot:
        snap = self.cached(key, position)
        if snap is not None:
            return snap
        flight = self._flights.get(key)
        # Join a rebuild only if it started from a position at least as new as
        # ours (so its view is too); a rebuild that started earlier may predate
        # a write our request must see.
        if flight is not None and flight[0].covers(position):
            self.joins += 1
            try:
                snap = await asyncio.shield(flight[1])
            except _Abandoned:
                pass  # its request went away mid-build: build our own
            else:
                if snap.covers(position):
                    return snap
        return await self._rebuild(key, position, build)

    async def _rebuild(self, key: SnapshotKey, position: Position, build: Build) -> Snapshot:
        future: asyncio.Future[Snapshot] = asyncio.get_running_loop().create_future()
        self._flights[key] = (position, future)
        self.builds += 1
        try:
            snap = await build()
        except BaseException as exc:
            future.set_exception(_Abandoned() if isinstance(exc, asyncio.CancelledError) else exc)
            future.exception()  # retrieved: joiners re-raise it, nobody else must log it
            raise
        finally:
            if self._flights.get(key, (None, None))[1] is future:
                del self._flights[key]
        future.set_result(snap)
        self.cache.put(key, snap)
        return snap


class PositionSource(Protocol):
    """Reads an account's current position, after the call was made (`redis_batch`)."""

    async def position(self, account_id: str) -> Position: ...


@dataclass(slots=True)
class SnapshotReads:
    """What the read route needs: where each account stands now, and the snapshots."""

    positions: PositionSource
    snapshots: Snapshots
