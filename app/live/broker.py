"""Redis pub/sub between processes: one channel per account, one connection per Redis node.

The commit script publishes `epoch\\ncursor\\nentry JSON` on the account's
channel (PUBLISH; SPUBLISH on a Redis Cluster, where a publication goes only
to the shard that owns the account's slot). This process subscribes to an
account's channel only while it has local subscribers of that account, on the
node that serves the channel (SSUBSCRIBE there, on a cluster), decodes each
publication once and hands it on.

Pub/sub may lose messages: a reconnect, a failover, a slot moved to another
master (the server then ends the subscription with SUNSUBSCRIBE). Each time,
the slot map is read again and the channel subscribed where it now lives, and
the listener is told whenever a subscription becomes active, so it finds any
gap by cursor itself (catch-up from the change log, or a reset)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import msgspec
import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.crc import key_slot

from app.storage import keys
from app.domain.changes import Change, entry_decoder
from app.domain.presence import is_publication as is_presence
from app.redis_io import REDIS_DOWN, Redis
from app.observability.tally import TALLY

log = logging.getLogger("app.live.broker")

OnChange = Callable[[Change], None]
OnSubscribed = Callable[[str], None]
OnPresence = Callable[[str, bytes], None]  # account, a presence publication (app.live.presence)
_FAILURES = (*REDIS_DOWN, aioredis.RedisError, RuntimeError)


class BadPublication(ValueError):
    pass


def parse_publication(account_id: str, data: bytes) -> Change:
    """`epoch\\ncursor\\nentry JSON` (commit.lua) -> Change (pure)."""
    try:
        epoch, cursor, raw = data.split(b"\n", 2)
        return Change(account_id=account_id, epoch=epoch.decode(), cursor=int(cursor), entry=entry_decoder.decode(raw))
    except (ValueError, msgspec.DecodeError) as exc:
        raise BadPublication(str(exc)) from None


def _by_slot(channels: list[bytes]) -> list[list[bytes]]:
    groups: dict[int, list[bytes]] = {}
    for channel in channels:
        groups.setdefault(key_slot(channel), []).append(channel)
    return list(groups.values())


class _Link:
    """One pub/sub connection to one node, and the channels subscribed on it."""

    def __init__(self, address: str, client: aioredis.Redis, sharded: bool, broker: Broker) -> None:
        self.address = address
        self.sharded = sharded
        self.pubsub: PubSub = client.pubsub()
        self.sent: set[bytes] = set()
        self.pending: dict[bytes, int] = {}  # SUBSCRIBEs sent, not yet confirmed
        self._broker = broker
        self._task: asyncio.Task[None] | None = None
        self.closed = False

    async def apply(self, wanted: set[bytes]) -> None:
        """Make the channels subscribed here equal `wanted`, in command order."""
        add = [c for c in wanted if c not in self.sent]
        drop = [c for c in self.sent if c not in wanted]
        if add:
            for c in add:
                self.pending[c] = self.pending.get(c, 0) + 1
            self.sent.update(add)
            if self.sharded:  # one SSUBSCRIBE per slot: the channels of one command must share a slot
                for group in _by_slot(add):
                    await self.pubsub.ssubscribe(*group)
            else:
                await self.pubsub.subscribe(*add)
        if drop:
            self.sent.difference_update(drop)
            if self.sharded:
                for group in _by_slot(drop):
                    await self.pubsub.sunsubscribe(*group)
            else:
                await self.pubsub.unsubscribe(*drop)
        if self._task is None and self.sent:
            self._task = asyncio.create_task(self._read(), name=f"live-broker-{self.address}")

    def confirmed(self, channel: bytes) -> bool:
        return channel in self.sent and not self.pending.get(channel)

    async def _read(self) -> None:
        while True:
            try:
                message = await self.pubsub.get_message(ignore_subscribe_messages=False, timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure: a new connection, resubscribe
                log.warning("pub/sub connection to %s lost (%s); resubscribing", self.address, exc)
                self._broker.lost(self)
                return
            if message is not None:
                self._broker.dispatch(self, message)

    async def aclose(self) -> None:
        self.closed = True
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        try:
            await self.pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]  # typed from redis-py 8.2
        except _FAILURES:
            pass


class Broker:
    """Subscribe/unsubscribe per account; follows the channel's node, reconnects
    and resubscribes on its own."""

    def __init__(self, redis: Redis, subscribe_timeout: float = 5.0) -> None:
        self._redis = redis
        self._timeout = subscribe_timeout
        self._wanted: dict[bytes, str] = {}  # channel -> account
        self._links: dict[str, _Link] = {}  # node address -> its connection
        self._where: dict[bytes, str] = {}  # channel -> the node it is subscribed on
        self._waiters: dict[bytes, list[asyncio.Future[None]]] = {}
        self._lock = asyncio.Lock()
        self._dirty = asyncio.Event()
        self._stale_map = False
        self._task: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self._on_change: OnChange = lambda change: None
        self._on_subscribed: OnSubscribed = lambda account: None
        self.on_presence: OnPresence = lambda account, data: None  # set by app.composition

    async def start(self, on_change: OnChange, on_subscribed: OnSubscribed) -> None:
        self._on_change, self._on_subscribed = on_change, on_subscribed
        self._task = asyncio.create_task(self._run(), name="live-broker")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        links, self._links, self._where = list(self._links.values()), {}, {}
        for link in links:
            await link.aclose()
        await asyncio.gather(*self._closing, return_exceptions=True)
        for futures in self._waiters.values():
            for f in futures:
                f.cancel()

    async def subscribe(self, account_id: str) -> None:
        """Returns once Redis confirms the subscription: from then on every
        publication of the account reaches this process (or a gap shows)."""
        channel = keys.live_channel(account_id).encode()
        self._wanted[channel] = account_id
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(channel, []).append(waiter)
        try:
            try:
                await self._reconcile()
            except _FAILURES as exc:
                log.warning("pub/sub subscribe failed, retrying: %s", exc)
                self._retry_later()
            link = self._links.get(self._where.get(channel, ""))
            if link is not None and link.confirmed(channel):
                return  # already subscribed and confirmed
            await asyncio.wait_for(asyncio.shield(waiter), self._timeout)
        finally:
            if not waiter.done():
                waiter.cancel()
            self._waiters[channel] = [w for w in self._waiters.get(channel, []) if w is not waiter]

    async def unsubscribe(self, account_id: str) -> None:
        self._wanted.pop(keys.live_channel(account_id).encode(), None)
        try:
            await self._reconcile()
        except _FAILURES as exc:
            log.warning("pub/sub unsubscribe failed: %s", exc)
            self._retry_later()

    # -- called by the links -------------------------------------------------------
    def lost(self, link: _Link) -> None:
        """A link's connection failed: forget it; resubscribe its channels where
        the (re-read) slot map says they live."""
        if self._links.get(link.address) is link:
            del self._links[link.address]
            for channel in [c for c, a in self._where.items() if a == link.address]:
                del self._where[channel]
        self._close_soon(link)
        TALLY.pubsub_reconnects += 1
        self._retry_later()

    def dispatch(self, link: _Link, message: dict[str, Any]) -> None:
        kind, channel = message["type"], message["channel"]
        channel = channel if isinstance(channel, bytes) else str(channel).encode()
        account = self._wanted.get(channel)
        if kind in ("subscribe", "ssubscribe"):
            link.pending[channel] = max(0, link.pending.get(channel, 0) - 1)
            if link.pending[channel] == 0:
                for waiter in self._waiters.get(channel, []):
                    if not waiter.done():
                        waiter.set_result(None)
            if account is not None:
                self._on_subscribed(account)  # (re)subscribed: anything may have been missed
        elif kind in ("sunsubscribe", "unsubscribe"):
            if channel in link.sent:  # not asked for: the server moved the slot elsewhere
                log.info("pub/sub: %r left %s (slot moved); resubscribing", channel, link.address)
                link.sent.discard(channel)
                if self._where.get(channel) == link.address:
                    del self._where[channel]
                TALLY.pubsub_reconnects += 1
                self._retry_later()
        elif kind in ("message", "smessage") and account is not None:
            data = message["data"]
            data = data if isinstance(data, bytes) else str(data).encode()
            if is_presence(data):  # joins and leaves share the account's channel
                self.on_presence(account, data)
                return
            try:
                change = parse_publication(account, data)
            except BadPublication as exc:
                log.error("bad publication on %r: %s", channel, exc)
                self._on_subscribed(account)
                return
            self._on_change(change)

    # -- internals -------------------------------------------------------------------
    def _retry_later(self) -> None:
        self._stale_map = True
        self._dirty.set()

    async def _reconcile(self) -> None:
        """Subscribe every wanted channel on the node that serves it, and nothing else."""
        async with self._lock:
            redis = await self._redis.ready()
            plan: dict[str, set[bytes]] = {address: set() for address in self._links}
            clients: dict[str, aioredis.Redis] = {}
            unplaced = False
            for channel in self._wanted:
                target = redis.pubsub_client(channel)
                if target is None:
                    unplaced = True
                    continue
                address, client = target
                clients[address] = client
                plan.setdefault(address, set()).add(channel)
            failed: BaseException | None = None
            for address, channels in plan.items():
                link = self._links.get(address)
                if link is None:
                    if not channels:
                        continue
                    link = self._links[address] = _Link(address, clients[address], redis.sharded, self)
                try:
                    await link.apply(channels)
                except _FAILURES as exc:
                    failed = exc
                    self.lost(link)
                    continue
                for channel in channels:
                    self._where[channel] = address
                if not channels:
                    del self._links[address]
                    self._close_soon(link)
            if failed is not None:
                raise failed
            if unplaced:
                raise aioredis.ConnectionError("a live channel's slot has no master right now")

    def _close_soon(self, link: _Link) -> None:
        task = asyncio.ensure_future(link.aclose())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _run(self) -> None:
        """Re-read the slot map and resubscribe after any loss, with backoff."""
        backoff = 0.05
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            try:
                if self._stale_map:
                    self._stale_map = False
                    await self._redis.refresh()
                await self._reconcile()
                backoff = 0.05
            except asyncio.CancelledError:
                raise
            except _FAILURES as exc:
                log.warning("pub/sub resubscribe failed (%s); again in %.2fs", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                self._stale_map = True
                self._dirty.set()
