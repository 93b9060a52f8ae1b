"""A Redis Cluster, found from any one of its nodes.

The slot map comes from `CLUSTER SLOTS`; each master gets its own redis-py pool
and `NodeWriter`, so the loop-turn coalescing of batches works per node. A
batch is cut into units (`routing.units`), each sent to the master of its slot;
a unit answered MOVED (slot map updated, refreshed in the background), ASK
(resent once with ASKING to the node named) or TRYAGAIN (resent after a short
pause) is resent, which is always safe: the server did not run it. A node that
cannot be reached (killed, failing over) makes the batch wait for the slot map
to name a reachable master, up to `retry_seconds`, then fail as
`aioredis.ConnectionError` (the routes answer 503 and Twilio retries);
resending after a lost connection relies on every batch being safe to send
twice (see `node.py`). CLUSTERDOWN fails at once as `ClusterDown`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.crc import key_slot

from app.redis_io.node import NodeWriter, node_pool
from app.redis_io.resp import Command
from app.redis_io.routing import SLOTS, Unit, redirect_of, slot_table, units

log = logging.getLogger("app.redis_io.cluster")

_MAX_REDIRECTS = 16
_UNREACHABLE = (aioredis.ConnectionError, aioredis.TimeoutError, OSError)


class ClusterDown(aioredis.ConnectionError):
    """The cluster answered CLUSTERDOWN: the slot is not served right now."""


class _Node:
    def __init__(self, url: str, max_connections: int, socket_timeout: float | None) -> None:
        pool = node_pool(url, max_connections, socket_timeout)
        self.client = aioredis.Redis(connection_pool=pool)
        self.writer = NodeWriter(pool)

    async def aclose(self) -> None:
        await self.writer.aclose()
        await self.client.aclose(close_connection_pool=True)


class Cluster:
    topology = "cluster"
    sharded = True  # SPUBLISH / SSUBSCRIBE: a publication goes only to its slot's shard

    def __init__(self, url: str, *, max_connections: int = 256, socket_timeout: float | None = None,
                 retry_seconds: float = 2.0) -> None:
        self._url = urlsplit(url)
        seed = f"{self._url.hostname or '127.0.0.1'}:{self._url.port or 6379}"
        self._seeds = [seed]
        self._max_connections = max_connections
        self._socket_timeout = socket_timeout
        self.retry_seconds = retry_seconds
        self._table: list[str | None] = [None] * SLOTS
        self._loaded = False
        self._nodes: dict[str, _Node] = {}
        self._refreshing: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self.refreshes = 0
        self.redirects = 0

    # -- nodes and the slot map ---------------------------------------------------
    def _node(self, address: str) -> _Node:
        node = self._nodes.get(address)
        if node is None:
            netloc = self._url.netloc.rpartition("@")
            auth = netloc[0] + "@" if netloc[1] else ""
            url = urlunsplit((self._url.scheme, auth + address, self._url.path, self._url.query, ""))
            node = self._nodes[address] = _Node(url, self._max_connections, self._socket_timeout)
        return node

    @property
    def writers(self) -> list[NodeWriter]:
        return [node.writer for node in self._nodes.values()]

    def masters(self) -> set[str]:
        return {address for address in self._table if address is not None}

    def address_of(self, key: bytes | str) -> str | None:
        return self._table[key_slot(key.encode() if isinstance(key, str) else key)]

    async def ready(self) -> Cluster:
        if not self._loaded:
            await self.refresh()
        return self

    async def refresh(self) -> None:
        """Read the slot map again (concurrent callers share one read)."""
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.ensure_future(self._load())
        await asyncio.shield(self._refreshing)

    async def _load(self) -> None:
        self.refreshes += 1
        last: BaseException | None = None
        for address in [*sorted(self.masters()), *self._seeds, *self._nodes]:
            try:
                reply = (await self._node(address).writer.submit([("CLUSTER", "SLOTS")]))[0]
            except _UNREACHABLE as exc:
                last = exc
                continue
            if isinstance(reply, Exception):
                last = reply
                continue
            self._table = slot_table(reply, address.rpartition(":")[0])
            self._loaded = True
            self._seeds = sorted({*self._seeds, *self.masters()})
            for gone in [a for a in self._nodes if a not in self.masters()]:
                node = self._nodes.pop(gone)
                self._spawn(node.aclose())
            return
        raise aioredis.ConnectionError(f"no Redis Cluster node answered CLUSTER SLOTS: {last}")

    def _spawn(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(lambda t: t.cancelled() or t.exception())  # logged below, never raised

    def _refresh_soon(self) -> None:
        async def quietly() -> None:
            try:
                await self.refresh()
            except _UNREACHABLE as exc:
                log.warning("Redis Cluster slot map refresh failed: %s", exc)
        self._spawn(quietly())

    # -- commands -----------------------------------------------------------------
    async def run(self, commands: Sequence[Command]) -> list[Any]:
        if not self._loaded:
            await self.refresh()
        replies: list[Any] = [None] * len(commands)
        pending = units(commands)
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        redirects = 0
        while True:
            retry, unreachable, pause = self._route(await self._send(pending), replies)
            if not retry:
                return replies
            if unreachable or pause:
                deadline = deadline if deadline is not None else loop.time() + self.retry_seconds
                if loop.time() >= deadline:
                    raise aioredis.ConnectionError("Redis Cluster: the slot's master cannot be reached")
                await asyncio.sleep(0.05 if unreachable else 0.01)
                if unreachable:
                    try:
                        await self.refresh()
                    except _UNREACHABLE:
                        pass
            else:
                redirects += 1
                if redirects > _MAX_REDIRECTS:
                    raise aioredis.ConnectionError("Redis Cluster: too many redirections")
            pending = retry

    async def _send(self, pending: list[Unit]) -> list[tuple[list[Unit], list[Any] | BaseException]]:
        """Each node's units in one batch, all nodes at once: (units, replies or the error)."""
        groups: dict[str | None, list[Unit]] = {}
        for unit in pending:
            groups.setdefault(unit.ask or self._table[unit.slot], []).append(unit)
        unserved = groups.pop(None, None)
        served = [(a, group) for a, group in groups.items() if a is not None]
        sends = [self._node(a).writer.submit(_flatten(group)) for a, group in served]
        results: list[Any] = list(await asyncio.gather(*sends, return_exceptions=True))
        out: list[tuple[list[Unit], list[Any] | BaseException]] = [
            (group, result) for (_, group), result in zip(served, results)]
        if unserved:
            out.append((unserved, aioredis.ConnectionError("slot not served")))
        return out

    def _route(self, results: list[tuple[list[Unit], list[Any] | BaseException]],
               replies: list[Any]) -> tuple[list[Unit], bool, bool]:
        """Store each unit's replies; return the units to send again, and
        whether a node was unreachable or asked for a pause."""
        retry: list[Unit] = []
        unreachable = pause = False
        for group, result in results:
            if isinstance(result, BaseException):
                if not isinstance(result, _UNREACHABLE):
                    raise result
                unreachable = True
                for unit in group:
                    unit.ask = None
                    retry.append(unit)
                continue
            at = 0
            for unit in group:
                at += 1 if unit.ask else 0  # ASKING's own +OK
                mine = result[at:at + len(unit.commands)]
                at += len(unit.commands)
                redirect = redirect_of(mine[0])
                if redirect is None:
                    replies[unit.start:unit.start + len(mine)] = mine
                    continue
                self.redirects += 1
                unit.ask = None
                if redirect.kind == "down":
                    raise ClusterDown(str(mine[0]))
                if redirect.kind == "moved":
                    self._table[redirect.slot] = redirect.address
                    self._refresh_soon()
                elif redirect.kind == "ask":
                    unit.ask = redirect.address
                else:
                    pause = True
                retry.append(unit)
        return retry, unreachable, pause

    # -- the rest of the facade -------------------------------------------------------
    def pubsub_client(self, channel: bytes) -> tuple[str, aioredis.Redis] | None:
        address = self.address_of(channel)
        return None if address is None else (address, self._node(address).client)

    async def health(self) -> dict[str, Any]:
        try:
            await self.refresh()
        except _UNREACHABLE:
            return {"redis": False, "topology": self.topology, "slotsServed": 0}
        masters = sorted(self.masters())
        pings = await asyncio.gather(*(self._node(a).writer.submit([("PING",)]) for a in masters),
                                     return_exceptions=True)
        up = [a for a, reply in zip(masters, pings) if not isinstance(reply, BaseException)
              and not isinstance(reply[0], Exception)]
        served = sum(1 for address in self._table if address in up)
        return {"redis": served == SLOTS, "topology": self.topology, "masters": len(up),
                "slotsServed": served}

    async def aclose(self) -> None:
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        nodes, self._nodes = list(self._nodes.values()), {}
        for node in nodes:
            await node.aclose()


def _flatten(group: list[Unit]) -> list[Command]:
    out: list[Command] = []
    for unit in group:
        if unit.ask:
            out.append(("ASKING",))
        out.extend(unit.commands)
    return out
