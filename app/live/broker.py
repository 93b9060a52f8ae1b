"""Redis pub/sub between processes: one connection per process, one channel per account.

The commit script PUBLISHes `epoch\\ncursor\\nentry JSON` on the account's
channel. This process subscribes to an account's channel only while it has
local subscribers of that account, decodes each publication once and hands it
on. Pub/sub may lose messages (reconnects, a slow reader); the listener is told
each time a subscription becomes active, and finds gaps by cursor itself."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import msgspec
import redis.asyncio as aioredis
from redis.asyncio.client import PubSub

from app import keys
from app.changes import Change, entry_decoder
from app.observability.tally import TALLY

log = logging.getLogger("app.live.broker")

OnChange = Callable[[Change], None]
OnSubscribed = Callable[[str], None]


class BadPublication(ValueError):
    pass


def parse_publication(account_id: str, data: bytes) -> Change:
    """`epoch\\ncursor\\nentry JSON` (commit.lua) -> Change (pure)."""
    try:
        epoch, cursor, raw = data.split(b"\n", 2)
        return Change(account_id=account_id, epoch=epoch.decode(), cursor=int(cursor), entry=entry_decoder.decode(raw))
    except (ValueError, msgspec.DecodeError) as exc:
        raise BadPublication(str(exc)) from None


class Broker:
    """Subscribe/unsubscribe per account; reconnects and resubscribes on its own."""

    def __init__(self, redis: aioredis.Redis, subscribe_timeout: float = 5.0) -> None:
        self._redis = redis
        self._timeout = subscribe_timeout
        self._wanted: dict[bytes, str] = {}  # channel -> account
        self._sent: set[bytes] = set()
        self._pending: dict[bytes, int] = {}  # SUBSCRIBEs sent, not yet confirmed
        self._waiters: dict[bytes, list[asyncio.Future[None]]] = {}
        self._pubsub: PubSub | None = None
        self._lock = asyncio.Lock()
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._on_change: OnChange = lambda change: None
        self._on_subscribed: OnSubscribed = lambda account: None

    async def start(self, on_change: OnChange, on_subscribed: OnSubscribed) -> None:
        self._on_change, self._on_subscribed = on_change, on_subscribed
        self._task = asyncio.create_task(self._run(), name="live-broker")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self._drop_connection()
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
            await self._reconcile()
            if channel in self._sent and not self._pending.get(channel):
                return  # already subscribed and confirmed
            await asyncio.wait_for(asyncio.shield(waiter), self._timeout)
        finally:
            if not waiter.done():
                waiter.cancel()
            self._waiters[channel] = [w for w in self._waiters.get(channel, []) if w is not waiter]

    async def unsubscribe(self, account_id: str) -> None:
        self._wanted.pop(keys.live_channel(account_id).encode(), None)
        await self._reconcile()

    # -- internals -------------------------------------------------------------
    async def _reconcile(self) -> None:
        """Make the subscribed set equal the wanted set, in command order."""
        async with self._lock:
            pubsub = await self._ensure_connection()
            add = [c for c in self._wanted if c not in self._sent]
            drop = [c for c in self._sent if c not in self._wanted]
            try:
                if add:
                    for c in add:
                        self._pending[c] = self._pending.get(c, 0) + 1
                    self._sent.update(add)
                    await pubsub.subscribe(*add)
                if drop:
                    self._sent.difference_update(drop)
                    await pubsub.unsubscribe(*drop)
            except (aioredis.RedisError, OSError) as exc:
                log.warning("pub/sub command failed, will resubscribe: %s", exc)
                await self._drop_connection()
                return
            self._connected.set()  # wake the reader

    async def _ensure_connection(self) -> PubSub:
        if self._pubsub is None:
            self._pubsub = self._redis.pubsub()
            self._sent.clear()
            self._pending.clear()
        return self._pubsub

    async def _drop_connection(self, failed: PubSub | None = None) -> None:
        if failed is not None and self._pubsub is not failed:
            return  # already replaced
        pubsub, self._pubsub = self._pubsub, None
        self._sent.clear()
        self._pending.clear()
        self._connected.clear()
        if pubsub is not None:
            try:
                await pubsub.aclose()  # type: ignore[no-untyped-call]
            except (aioredis.RedisError, OSError):
                pass

    async def _run(self) -> None:
        backoff = 0.05
        while True:
            pubsub = self._pubsub
            if pubsub is None or pubsub.connection is None:
                if not self._wanted:
                    self._connected.clear()
                    await self._connected.wait()
                    continue
                await self._reconcile()
                if self._pubsub is None or self._pubsub.connection is None:
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
                continue
            try:
                message = await pubsub.get_message(ignore_subscribe_messages=False, timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure: new connection, resubscribe
                log.warning("pub/sub connection lost (%s); resubscribing in %.2fs", exc, backoff)
                TALLY.pubsub_reconnects += 1
                async with self._lock:
                    await self._drop_connection(failed=pubsub)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.05
            if message is not None:
                self._dispatch(message)

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind, channel = message["type"], message["channel"]
        channel = channel if isinstance(channel, bytes) else str(channel).encode()
        account = self._wanted.get(channel)
        if kind == "subscribe":
            self._pending[channel] = max(0, self._pending.get(channel, 0) - 1)
            if self._pending[channel] == 0:
                for waiter in self._waiters.get(channel, []):
                    if not waiter.done():
                        waiter.set_result(None)
            if account is not None:
                self._on_subscribed(account)  # (re)subscribed: anything may have been missed
        elif kind == "message" and account is not None:
            data = message["data"]
            try:
                change = parse_publication(account, data if isinstance(data, bytes) else str(data).encode())
            except BadPublication as exc:
                log.error("bad publication on %r: %s", channel, exc)
                self._on_subscribed(account)
                return
            self._on_change(change)
